import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from apps.audit.models import GENESIS_HASH, HASHED_FIELDS, canonical_json, record_hash


def fields(**overrides):
    base: dict[str, Any] = dict.fromkeys(HASHED_FIELDS, "")
    base.update(
        seq=1,
        occurred_at=datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
        actor="staff-tester",
        actor_type="staff",
        customer_id=None,
        outcome=201,
        before=None,
        after=None,
        details={"b": 1, "a": ["x", None]},
        prev_hash=GENESIS_HASH,
    )
    base.update(overrides)
    return base


def test_the_canonical_form_is_sorted_compact_utc_and_versioned():
    text = canonical_json(fields(customer_id=uuid.UUID(int=7)))
    assert text.startswith('{"action":"","actor":"staff-tester","actor_type":"staff","after":null,"before":null,')
    assert '"customer_id":"00000000-0000-0000-0000-000000000007"' in text
    assert '"details":{"a":["x",null],"b":1}' in text
    assert '"occurred_at":"2025-03-01T12:00:00.123456Z"' in text
    assert text.endswith('"v":1}')
    assert " " not in text.replace("staff-tester", "")


def test_the_hash_is_the_same_whatever_the_key_order_or_time_zone():
    reordered = dict(reversed(list(fields().items())))
    brasilia = fields(occurred_at=datetime(2025, 3, 1, 9, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-3))))
    assert record_hash(reordered) == record_hash(fields()) == record_hash(brasilia)
    assert len(record_hash(fields())) == 64


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("seq", 2),
        ("occurred_at", datetime(2025, 3, 1, 12, 0, 0, 123457, tzinfo=UTC)),
        ("actor", "mallory"),
        ("outcome", 200),
        ("source_ip", "10.0.0.1"),
        ("before", {"status": "active"}),
        ("details", {"b": 1, "a": ["x"]}),
        ("prev_hash", "1" * 64),
    ],
)
def test_every_field_and_the_link_are_covered_by_the_hash(name, value):
    assert record_hash(fields(**{name: value})) != record_hash(fields())
