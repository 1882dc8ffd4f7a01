#!/usr/bin/env python3
"""An external consumer of the bank's events: copy it, then replace `handle()` with your effect.

Self-contained on purpose: it needs only confluent-kafka, jsonschema and the standard library
(see requirements.txt), never the bank's code. Over 400 lines because it is one file to copy
whole, not a package. What it shows:

* Subscribing as a consumer group of your own (one group per consuming system), with the
  cooperative-sticky assignor, `enable.auto.commit=true` and `enable.auto.offset.store=false`:
  the offset of a record is *stored* only after the record was processed, and librdkafka
  commits stored offsets in the background and on close. A crash therefore redelivers the
  records after the last commit, never skips one: delivery is at least once.
* Validating every record: the CloudEvents 1.0 envelope (specversion, id, type = topic, source,
  subject = record key, time, dataschema `<type>/v<N>`, data) and `data` against the published
  JSON Schema named by `dataschema` (the bank's `fintech/events/schemas/<type>/v<N>.json`).
* Upcasting: a record of an older version than the newest schema you know is brought up to the
  newest shape by upcasters (see `UPCASTERS`), so `handle()` sees one shape per type.
* Deduplicating by the CloudEvent `id`: at least once means the same event can arrive twice
  (a relay that died before it marked a batch sent ships it again; a consumer that died before
  its commit reads records again). Here a bounded in-memory LRU of processed ids drops the
  repeats; a real consumer persists the processed ids in the same database transaction as
  its effect (an "inbox" table with a unique id), so a restart cannot apply an event twice.
* Per-key order: the record key is the aggregate id (the CloudEvent `subject`), and the
  producer's partitioner sends one key to one partition, so one aggregate's events arrive in
  the order they were written. Records are processed one at a time in the order `poll()` gives
  them, which keeps that order. To go parallel, shard by key (never by record). The order is
  per topic: a topic is an event type, so a customer's `customer.verified` (another topic) may
  arrive before its `customer.created`.
* Invalid records are reported on stderr and skipped (their offset is stored, so they do not
  block the partition). A real consumer sends them to a dead-letter topic of its own and alerts.
* SIGTERM/SIGINT finish the record in progress, then close the consumer (final commit, leave
  the group so the partitions move at once). `--max-events` and `--idle-timeout` stop it by
  itself, for tests and batch jobs.

Output: one JSON line per accepted event on stdout: {"type", "id", "subject", "data"}.

    python consumer.py --bootstrap-servers 127.0.0.1:59092 --group acme.crm \\
        --topics customer.created,customer.verified,account.created
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import FrameType
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError, best_match

DEFAULT_SCHEMAS = Path(__file__).resolve().parent.parent.parent / "fintech" / "events" / "schemas"
SCHEMA_FILE = re.compile(r"^v(\d+)\.json$")
DATASCHEMA = re.compile(r"^(?P<type>[a-z0-9_.]+)/v(?P<version>[1-9]\d*)$")
RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)
# A consumer that was never given partitions after this long counts as idle, too.
JOIN_GRACE_SECONDS = 30.0
POLL_SECONDS = 0.5


# -- schemas and upcasters -------------------------------------------------------------------


def parse_rfc3339(value: str) -> datetime:
    """An RFC 3339 date-time (with an offset, as in the CloudEvents `time`); ValueError otherwise."""
    match = RFC3339.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    offset = timedelta(0) if zulu else timedelta(hours=int(off_h), minutes=int(off_m))
    if sign == "-":
        offset = -offset
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    # RFC 3339 allows a leap second (:60); datetime does not, and nothing here needs it exact.
    moment = datetime(int(year), int(month), int(day), int(hour), int(minute), min(int(second), 59), micro)
    return moment.replace(tzinfo=timezone(offset))


def _format_checker() -> FormatChecker:
    """`uuid` and `date-time`, the formats the bank's schemas use, checked with the standard
    library (jsonschema checks `date-time` only when an optional package is installed)."""
    checker = FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def is_date_time(value: object) -> bool:
        if isinstance(value, str):
            parse_rfc3339(value)
        return True

    return checker


class SchemaRegistry:
    """The published JSON Schemas, one file per type and version: `<dir>/<type>/v<N>.json`."""

    def __init__(self, validators: dict[tuple[str, int], Draft202012Validator]) -> None:
        self.validators = validators
        self.latest: dict[str, int] = {}
        for event_type, version in validators:
            self.latest[event_type] = max(version, self.latest.get(event_type, 0))

    @classmethod
    def load(cls, directory: Path) -> SchemaRegistry:
        if not directory.is_dir():
            raise SystemExit(f"schema directory not found: {directory}")
        checker = _format_checker()
        validators: dict[tuple[str, int], Draft202012Validator] = {}
        for type_dir in sorted(path for path in directory.iterdir() if path.is_dir()):
            for file in sorted(type_dir.iterdir()):
                match = SCHEMA_FILE.match(file.name)
                if not match:
                    continue
                schema = json.loads(file.read_text(encoding="utf-8"))
                try:
                    Draft202012Validator.check_schema(schema)
                except SchemaError as error:
                    raise SystemExit(f"{file}: not a valid JSON Schema: {error.message}") from None
                validators[(type_dir.name, int(match.group(1)))] = Draft202012Validator(schema, format_checker=checker)
        if not validators:
            raise SystemExit(f"no schemas (<type>/v<N>.json) under {directory}")
        return cls(validators)

    def validate(self, event_type: str, version: int, data: dict[str, Any]) -> None:
        validator = self.validators.get((event_type, version))
        if validator is None:
            known = sorted(v for (t, v) in self.validators if t == event_type)
            raise InvalidRecord(
                f"no schema for {event_type}/v{version} (known versions: {known or 'none'}); "
                "a newer version than you know means your copy of the schemas needs updating"
            )
        error = best_match(validator.iter_errors(data))
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "(root)"
            raise InvalidRecord(f"data does not match {event_type}/v{version} at {where}: {error.message}")


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
# (type, from_version) -> a function from the data of that version to the data of the next one.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    def register(func: Upcaster) -> Upcaster:
        UPCASTERS[(event_type, from_version)] = func
        return func

    return register


# Where an upcaster goes. Every published type is at v1 today, so none is registered. When the
# bank publishes, say, `customer.created/v2.json` with a new required field `segment`, copy the
# new schema file into your schema directory and register the step from v1 to v2, e.g.:
#
#   @upcaster("customer.created", 1)
#   def customer_created_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
#       return {**data, "segment": "retail"}  # what v1 events meant implicitly
#
# Old records (still in the topic, or replayed) are then validated against v1, upcast, and
# validated again against v2: `handle()` only ever sees the newest shape.


def upcast(registry: SchemaRegistry, event_type: str, version: int, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Bring `data` from `version` up to the newest version of `event_type` in `registry`."""
    target = registry.latest[event_type]
    while version < target:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise InvalidRecord(f"no upcaster from {event_type}/v{version} to v{version + 1}")
        data = step(dict(data))
        version += 1
        registry.validate(event_type, version, data)
    return version, data


# -- reading a record --------------------------------------------------------------------------


class InvalidRecord(ValueError):
    """The record is not a valid event of its topic: no retry can make it one."""


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    version: int  # after upcasting: the newest version this consumer knows
    source: str
    subject: str
    time: datetime
    data: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def record_headers(message: Message) -> dict[str, str]:
    """Transport headers: ce_type, ce_id, traceparent, correlation_id, causation_id (if any)."""
    headers = message.headers() or []
    items = headers.items() if isinstance(headers, dict) else headers
    return {
        name: value if isinstance(value, str) else (value or b"").decode("utf-8", errors="replace")
        for name, value in items
    }


def _text(envelope: dict[str, Any], name: str) -> str:
    value = envelope.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRecord(f"envelope field {name!r} is missing or not a non-empty string")
    return value


def read_event(message: Message, registry: SchemaRegistry) -> Event:
    """The record as a validated, upcast event of its topic, or `InvalidRecord`."""
    topic = message.topic() or ""
    try:
        envelope = json.loads(message.value() or b"")
    except ValueError as error:
        raise InvalidRecord(f"the value is not JSON: {error}") from None
    if not isinstance(envelope, dict):
        raise InvalidRecord("the value is not a JSON object (a CloudEvent in structured mode)")
    if envelope.get("specversion") != "1.0":
        raise InvalidRecord(f"specversion {envelope.get('specversion')!r} is not '1.0'")
    event_id = _text(envelope, "id")
    try:
        uuid.UUID(event_id)
    except ValueError:
        raise InvalidRecord(f"id {event_id!r} is not a UUID") from None
    event_type = _text(envelope, "type")
    if event_type != topic:
        raise InvalidRecord(f"an event of type {event_type!r} on topic {topic!r} (topic = event type)")
    source = _text(envelope, "source")
    subject = _text(envelope, "subject")
    key = message.key()
    if key is not None and key.decode("utf-8", errors="replace") != subject:
        raise InvalidRecord(f"record key {key!r} is not the subject {subject!r} (key = aggregate id)")
    try:
        moment = parse_rfc3339(_text(envelope, "time"))
    except ValueError as error:
        raise InvalidRecord(f"time: {error}") from None
    match = DATASCHEMA.match(_text(envelope, "dataschema"))
    if match is None or match.group("type") != event_type:
        raise InvalidRecord(f"dataschema {envelope.get('dataschema')!r} is not '{event_type}/v<N>'")
    if envelope.get("datacontenttype", "application/json") != "application/json":
        raise InvalidRecord(f"datacontenttype {envelope.get('datacontenttype')!r} is not application/json")
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise InvalidRecord("data is missing or not a JSON object")
    if event_type not in registry.latest:
        raise InvalidRecord(f"no schema for type {event_type!r} in the schema directory")
    version = int(match.group("version"))
    registry.validate(event_type, version, data)
    version, data = upcast(registry, event_type, version, data)
    return Event(
        id=event_id,
        type=event_type,
        version=version,
        source=source,
        subject=subject,
        time=moment,
        data=data,
        headers=record_headers(message),
    )


# -- processing ----------------------------------------------------------------------------------


class SeenIds:
    """A bounded LRU of processed event ids. Enough to drop the duplicates at-least-once delivery
    brings close together; it forgets across restarts and past `capacity`. A real consumer keeps
    the processed ids in its database, written in the same transaction as the effect."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        if event_id in self._ids:
            self._ids.move_to_end(str(event_id))
            return True
        return False

    def add(self, event_id: str) -> None:
        self._ids[event_id] = None
        self._ids.move_to_end(event_id)
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)


def handle(event: Event) -> None:
    """The effect of one event: replace this. Here it prints one JSON line on stdout.

    For tracing, continue the producer's trace from `event.headers["traceparent"]`, and log
    `correlation_id` (and `causation_id`, the event whose handling published this one)."""
    line = {"type": event.type, "id": event.id, "subject": event.subject, "data": event.data}
    print(json.dumps(line, sort_keys=True), flush=True)  # noqa: T201 - the output of this example


def report(message: str, **details: Any) -> None:
    """One JSON line on stderr."""
    print(json.dumps({"message": message, **details}, default=str), file=sys.stderr, flush=True)  # noqa: T201


def report_invalid(message: Message, error: InvalidRecord) -> None:
    headers = record_headers(message)
    event_id = headers.get("ce_id")
    try:
        value = json.loads(message.value() or b"")
        if isinstance(value, dict) and isinstance(value.get("id"), str):
            event_id = value["id"]
    except ValueError:
        pass
    # A real consumer would produce the record (key, value, headers, plus the error and where it
    # came from) to a dead-letter topic of its own here, and store the offset only once that
    # produce was acknowledged.
    report(
        "invalid record skipped",
        topic=message.topic(),
        partition=message.partition(),
        offset=message.offset(),
        key=(message.key() or b"").decode("utf-8", errors="replace"),
        id=event_id,
        error=str(error),
    )


# -- the loop ------------------------------------------------------------------------------------


class Stop:
    """Set by SIGTERM or SIGINT; the loop finishes the record in progress, then closes."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


@dataclass
class Counts:
    accepted: int = 0
    duplicates: int = 0
    invalid: int = 0


class Membership:
    """When the group gave this consumer its partitions, and when it last had work."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.assigned_at: float | None = None
        self.active_at: float | None = None

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned_at = time.monotonic()
        report("partitions assigned", partitions=[f"{tp.topic}[{tp.partition}]" for tp in partitions])

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # auto-commit: librdkafka commits the stored offsets of these partitions before it lets go.
        report("partitions revoked", partitions=[f"{tp.topic}[{tp.partition}]" for tp in partitions])

    def idle_for(self) -> float:
        now = time.monotonic()
        if self.assigned_at is None:
            return max(0.0, now - self.started - JOIN_GRACE_SECONDS)
        return now - max(self.assigned_at, self.active_at or 0.0)


def consumer_config(args: argparse.Namespace) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": args.bootstrap_servers,
        "group.id": args.group,
        "client.id": f"{args.group}-{os.getpid()}",
        "partition.assignment.strategy": "cooperative-sticky",
        # At least once: commit in the background, but only offsets stored after processing.
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        # A new group starts at the beginning of the topics' retention (a week on our brokers).
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 30_000,
        "max.poll.interval.ms": 300_000,
        "error_cb": lambda error: report("kafka client error", error=str(error)),
    }
    for item in args.config:  # security.protocol, sasl.*, ssl.* ...
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"-X expects key=value, got {item!r}")
        config[name.strip()] = value.strip()
    return config


def store_offset(consumer: Consumer, message: Message) -> None:
    try:
        consumer.store_offsets(message=message)  # the next record to read: offset + 1
    except KafkaException as error:
        # The partition moved to another member meanwhile: it gets the record again.
        report("offset not stored", topic=message.topic(), partition=message.partition(), error=str(error))


def run(args: argparse.Namespace) -> Counts:
    registry = SchemaRegistry.load(Path(args.schemas))
    seen = SeenIds(args.dedup_capacity)
    counts = Counts()
    stop = Stop()
    stop.install()
    membership = Membership()
    consumer = Consumer(consumer_config(args))
    consumer.subscribe(args.topics, on_assign=membership.on_assign, on_revoke=membership.on_revoke)
    try:
        while not stop.requested:
            if args.max_events is not None and counts.accepted >= args.max_events:
                break
            if args.idle_timeout is not None and membership.idle_for() >= args.idle_timeout:
                break
            message = consumer.poll(POLL_SECONDS)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                if error.code() != KafkaError._PARTITION_EOF:
                    report("consumer error", error=str(error))
                continue
            membership.active_at = time.monotonic()
            try:
                event = read_event(message, registry)
            except InvalidRecord as invalid:
                counts.invalid += 1
                report_invalid(message, invalid)
            else:
                if event.id in seen:
                    counts.duplicates += 1  # delivered again: the effect already happened
                else:
                    handle(event)
                    seen.add(event.id)
                    counts.accepted += 1
            store_offset(consumer, message)
            membership.active_at = time.monotonic()
    finally:
        consumer.close()  # commits the stored offsets, then leaves the group
        report(
            "consumer closed",
            group=args.group,
            accepted=counts.accepted,
            duplicates=counts.duplicates,
            invalid=counts.invalid,
        )
    return counts


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Consume the bank's events from Kafka (an example).")
    parser.add_argument(
        "--bootstrap-servers",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:59092"),
        help="host:port[,host:port] (default: $KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:59092).",
    )
    parser.add_argument("--group", required=True, help="Your consumer group id: one per consuming system.")
    parser.add_argument("--topics", required=True, help="Comma-separated topics (= event types).")
    parser.add_argument("--schemas", default=str(DEFAULT_SCHEMAS), help="The published JSON Schemas directory.")
    parser.add_argument("--max-events", type=int, default=None, help="Stop after this many accepted events.")
    parser.add_argument(
        "--idle-timeout", type=float, default=None, help="Stop after this many seconds without records."
    )
    parser.add_argument("--dedup-capacity", type=int, default=100_000, help="Event ids remembered for dedup.")
    parser.add_argument(
        "-X",
        dest="config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Extra librdkafka setting, repeatable (security.protocol=SASL_SSL, sasl.mechanism=..., ...).",
    )
    args = parser.parse_args(argv)
    args.topics = [topic.strip() for topic in args.topics.split(",") if topic.strip()]
    if not args.topics:
        parser.error("--topics names no topic")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
