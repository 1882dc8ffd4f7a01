"""Create the contract's topics (idempotently) and list them."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from fintech.kafka.config import admin_config


def ensure_topics(topics: list[str], *, partitions: int, replication: int, timeout: float = 30.0) -> list[str]:
    """Create the missing topics; returns the ones created now."""
    admin = AdminClient(admin_config())
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [topic for topic in topics if topic not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=replication) for topic in missing],
        operation_timeout=timeout,
    )
    created = []
    for topic, future in futures.items():
        try:
            future.result()
            created.append(topic)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return sorted(created)


def describe_topics(timeout: float = 30.0) -> dict[str, int]:
    """Topic name -> number of partitions, for every topic on the cluster."""
    admin = AdminClient(admin_config())
    metadata = admin.list_topics(timeout=timeout)
    return {name: len(topic.partitions) for name, topic in metadata.topics.items() if not name.startswith("__")}
