from prometheus_client import Counter

EVENTS_PUBLISHED = Counter("fintech_events_published_total", "Events written to the outbox", ["event_type"])
EVENTS_HANDLED = Counter("fintech_events_handled_total", "Events applied by a handler", ["handler"])
HANDLER_FAILURES = Counter("fintech_handler_failures_total", "Handler attempts that raised", ["handler"])
DEAD_LETTERS = Counter("fintech_dead_letters_total", "Deliveries given up and dead-lettered", ["handler"])
EVENTS_RELAYED = Counter("fintech_events_relayed_total", "Events acknowledged by a relay sink", ["sink"])
KAFKA_RECORDS_CONSUMED = Counter(
    "fintech_kafka_records_consumed_total",
    "Kafka records a consumer group finished with (every handler committed); offset stored",
    ["group", "topic"],
)
KAFKA_RECORDS_DEAD_LETTERED = Counter(
    "fintech_kafka_records_dead_lettered_total",
    "Kafka records a consumer group sent to the dlq. topic (reason: poison or handler)",
    ["group", "topic", "reason"],
)
KAFKA_RECORDS_DEFERRED = Counter(
    "fintech_kafka_records_deferred_total",
    "Kafka records put back for redelivery because the database or the broker was unavailable",
    ["group", "topic"],
)
KAFKA_DEAD_LETTERS_REPLAYED = Counter(
    "fintech_kafka_dead_letters_replayed_total", "Records re-published from a dlq. topic", ["topic"]
)
CHOREOGRAPHY_DEFERRED = Counter(
    "fintech_choreography_deferred_total",
    "Units of work whose choreography steps raised and were rolled back, left to the dispatcher",
)
