import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection, transaction
from django.db.models import F

from apps.audit.models import GENESIS_HASH, AuditRecord, record_hash
from apps.audit.services import audit_append
from apps.audit.tests.tampering import DATABASE_REFUSALS

pytestmark = pytest.mark.django_db


def append(**overrides):
    facts = {"action": "POST /api/v1/transfers", "actor": "staff-tester", "actor_type": "staff", "outcome": 201}
    return audit_append(**{**facts, **overrides})


def test_records_form_one_chain_from_the_genesis_hash():
    first, second, third = append(), append(actor="other"), append(actor_type="anonymous", actor="anonymous")
    assert [r.seq for r in (first, second, third)] == [1, 2, 3]
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash
    assert len({first.hash, second.hash, third.hash}) == 3


def test_the_stored_record_hashes_to_its_hash_as_read_back_from_the_database():
    written = append(
        occurred_at=datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        client_id="fintech-dev",
        customer_id=str(uuid.uuid4()),
        resource_type="transfers",
        resource_id=str(uuid.uuid4()),
        reason="insufficient_funds",
        source_ip="2001:DB8:0::1",
        user_agent="curl/8 \x00" + "x" * 400,
        correlation_id="corr-1",
        trace_id="a" * 32,
        before={"amount": 1.5, "when": datetime(2025, 1, 1, tzinfo=UTC), "id": uuid.UUID(int=1), "nul": "a\x00b"},
        after={"nested": [{"z": 1, "a": None}], "flag": True, "blob": b"\x00\x01", "odd": object},
        details={"request": "POST /api/v1/transfers"},
    )
    stored = AuditRecord.objects.get(seq=written.seq)
    assert record_hash(stored.fields_for_hash()) == stored.hash == written.hash
    assert stored.source_ip == "2001:db8::1"
    assert len(stored.user_agent) == 256
    assert "\x00" not in stored.user_agent
    assert stored.after is not None
    assert stored.after["blob"] == "[2 bytes]"
    assert stored.after["odd"] == "<class 'object'>"
    assert stored.before == {
        "amount": "1.5",  # floats as text: they read back the same from jsonb
        "when": "2025-01-01T00:00:00Z",
        "id": "00000000-0000-0000-0000-000000000001",
        "nul": "ab",
    }


def test_an_address_that_is_not_one_is_left_out():
    assert append(source_ip="localhost").source_ip == ""


def test_a_record_appended_in_a_transaction_that_rolls_back_leaves_no_gap():
    def work_that_fails():
        with transaction.atomic():
            append()
            raise RuntimeError("the caller's work failed")

    append()
    with pytest.raises(RuntimeError):
        work_that_fails()
    assert append().seq == 2


def test_the_database_refuses_to_change_a_record():
    record = append()
    with pytest.raises(DATABASE_REFUSALS, match="append-only"), transaction.atomic():
        AuditRecord.objects.filter(seq=record.seq).update(actor="mallory")
    with pytest.raises(DATABASE_REFUSALS, match="append-only"), transaction.atomic():
        AuditRecord.objects.filter(seq=record.seq).update(outcome=F("outcome") + 1)
    record.actor = "mallory"
    with pytest.raises(DATABASE_REFUSALS, match="append-only"), transaction.atomic():
        record.save()
    if connection.vendor == "postgresql":  # SQLite lets the test framework empty the tables with DELETE
        with pytest.raises(DATABASE_REFUSALS, match="append-only"), transaction.atomic():
            AuditRecord.objects.filter(seq=record.seq).delete()
        with pytest.raises(DATABASE_REFUSALS, match="append-only"), transaction.atomic():
            record.delete()
    assert AuditRecord.objects.get(seq=record.seq).actor == "staff-tester"
