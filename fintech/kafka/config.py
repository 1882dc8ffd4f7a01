from __future__ import annotations

import logging
import socket
from typing import Any

from django.conf import settings


def _base() -> dict[str, Any]:
    if not settings.KAFKA_BOOTSTRAP_SERVERS:
        raise RuntimeError("KAFKA_BOOTSTRAP_SERVERS is not set")
    return {
        "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
        "client.id": f"fintech-{socket.gethostname()}",
        # librdkafka's own log lines (a refused connection each second while the broker is
        # away) go through Python logging as JSON lines like the rest, not raw to stderr.
        "logger": logging.getLogger("fintech.kafka.client"),
        **settings.KAFKA_EXTRA_CONFIG,
    }


def producer_config(**overrides: Any) -> dict[str, Any]:
    """An idempotent producer: no duplicates or reordering from its own retries, per partition.

    `murmur2_random` is librdkafka's Java-compatible partitioner, so a key lands on the same
    partition as it would from a Java producer (and keyless records spread at random).
    """
    return {
        **_base(),
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": "murmur2_random",
        "linger.ms": settings.KAFKA_LINGER_MS,
        "compression.type": settings.KAFKA_COMPRESSION,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 500_000,
        "message.timeout.ms": settings.KAFKA_DELIVERY_TIMEOUT_MS,
        **overrides,
    }


def consumer_config(group_id: str, **overrides: Any) -> dict[str, Any]:
    """At-least-once: offsets are stored by the runner only after the handler's transaction
    committed; librdkafka then commits the stored offsets in the background and on close."""
    return {
        **_base(),
        "group.id": group_id,
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": 30_000,
        "max.poll.interval.ms": 300_000,
        **overrides,
    }


def admin_config() -> dict[str, Any]:
    return _base()
