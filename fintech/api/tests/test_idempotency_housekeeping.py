"""Stored Idempotency-Key outcomes do not outlive their TTL."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from fintech.api.idempotency import purge_expired
from fintech.api.models import IdempotencyRecord

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


def stored(key, *, expires_in, locked_for=-HOUR):
    now = timezone.now()
    return IdempotencyRecord.objects.create(
        owner="staff-tester",
        key=key,
        method="POST",
        path="/api/v1/customers",
        fingerprint="0" * 64,
        state=IdempotencyRecord.State.COMPLETED,
        status_code=201,
        response_body={"name": "Ana Souza"},
        locked_until=now + locked_for,
        expires_at=now + expires_in,
    )


def test_expired_outcomes_go_and_live_ones_stay():
    stored("expired", expires_in=-HOUR)
    stored("live", expires_in=HOUR)
    stored("still-running", expires_in=-HOUR, locked_for=timedelta(minutes=1))  # its request holds the lock

    out = StringIO()
    call_command("purge_idempotency_keys", stdout=out)

    assert "deleted 1 expired idempotency record(s)" in out.getvalue()
    assert set(IdempotencyRecord.objects.values_list("key", flat=True)) == {"live", "still-running"}


def test_the_purge_works_through_any_number_of_chunks():
    for n in range(5):
        stored(f"expired-{n}", expires_in=-HOUR)
    stored("live", expires_in=HOUR)
    assert purge_expired(chunk=2) == 5
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["live"]
