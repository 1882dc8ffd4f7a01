"""The bank's Kafka edge (confluent-kafka). Only the relay, the consumer runner and the
commands that manage topics import this package; contexts never talk to Kafka."""
