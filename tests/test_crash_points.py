"""A process killed at each named crash point (fintech/faults.py), then the client's retry (or
the restarted process): the bank ends in the state of one clean run (one transfer, posted once,
its events written once; one notification, sent and recorded once)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.ledger.models import JournalTransaction, LedgerAccount
from apps.notifications.models import Notification
from apps.notifications.tests.providers import push_provider
from apps.transactions.models import Transfer
from fintech.faults import CRASH_STATUS
from outbox.models import OutboxEvent
from tests.factories import open_account
from tests.spine.support import ROOT, database_env, manage

pytestmark = pytest.mark.django_db(transaction=True)

FUNDS, AMOUNT = 10_000, 2_500
CHAIN = Counter(
    {
        "transaction.initiated": 1,
        "transaction.validated": 1,
        "ledger.entry_written": 1,
        "account.balance.updated": 2,
        "transaction.completed": 1,
    }
)

REQUEST = """
import json
from rest_framework.test import APIClient
from fintech.auth.tokens import issue_dev_token

client = APIClient()
client.credentials(HTTP_AUTHORIZATION="Bearer " + issue_dev_token(subject="staff-tester", scopes="transfers:write"))
response = client.post("/api/v1/transfers", json.loads({body!r}), format="json", HTTP_IDEMPOTENCY_KEY={key!r})
print(response.status_code)
"""


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + textwrap.dedent(code)],
        cwd=ROOT,
        env={**database_env(), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ledger_balance(account) -> tuple[int, int]:
    ledger = LedgerAccount.objects.get(owner_ref=account.id)
    return ledger.balance, ledger.held


def assert_one_clean_transfer(source, destination, shipped_path) -> None:
    transfer = Transfer.objects.get()
    assert transfer.status == Transfer.Status.COMPLETED
    assert JournalTransaction.objects.filter(kind="transfer").count() == 1
    assert ledger_balance(source) == (FUNDS - AMOUNT, 0)
    assert ledger_balance(destination) == (AMOUNT, 0)
    chain = Counter(OutboxEvent.objects.filter(event_type__in=list(CHAIN)).values_list("event_type", flat=True))
    assert chain == CHAIN, chain
    assert not OutboxEvent.objects.filter(dispatched_at__isnull=True).exists()
    call_command("relay_outbox", "--once", "--sink", "file", stdout=open("/dev/null", "w"))  # noqa: SIM115
    records = [json.loads(line) for line in shipped_path.read_text().splitlines()]
    ids = Counter(record["headers"]["ce_id"] for record in records if record["headers"]["ce_type"] in CHAIN)
    assert sum(1 for _ in ids) == sum(CHAIN.values())  # each event of the transfer reached the sink


@pytest.mark.parametrize("point", ["after_hold", "before_outbox_write", "after_commit_before_response"])
def test_a_request_killed_at_a_crash_point_then_retried_ends_as_one_clean_run(point, staff, settings, tmp_path):
    settings.FINTECH_RELAY_FILE = str(tmp_path / "shipped.jsonl")
    source, destination = open_account(balance=FUNDS), open_account()
    OutboxEvent.objects.all().delete()
    key = str(uuid.uuid4())
    body = {
        "from_account_id": str(source.id),
        "to_account_id": str(destination.id),
        "amount": AMOUNT,
        "currency": "BRL",
    }

    crashed = run_python(REQUEST.format(body=json.dumps(body), key=key), {"FINTECH_CRASH_AT": point})
    assert crashed.returncode == CRASH_STATUS, crashed.stderr[-3000:]

    retry = staff.post("/api/v1/transfers", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert retry.status_code == 201, retry.content
    assert retry.json()["status"] == "completed"
    # Only the last point committed the original work: its retry is the original's answer.
    assert (retry.get("Idempotent-Replayed") == "true") is (point == "after_commit_before_response")
    call_command("dispatch_events", "--once", "--grace", "0", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert_one_clean_transfer(source, destination, tmp_path / "shipped.jsonl")


def test_a_relay_killed_after_the_broker_acknowledged_ships_again_and_loses_nothing(staff, settings, tmp_path):
    shipped = tmp_path / "shipped.jsonl"
    settings.FINTECH_RELAY_FILE = str(shipped)
    source, destination = open_account(balance=FUNDS), open_account()
    body = {
        "from_account_id": str(source.id),
        "to_account_id": str(destination.id),
        "amount": AMOUNT,
        "currency": "BRL",
    }
    assert staff.post("/api/v1/transfers", body, format="json", HTTP_IDEMPOTENCY_KEY="once").status_code == 201
    waiting = OutboxEvent.objects.filter(sent_at__isnull=True).count()
    assert waiting > 0

    crashed = subprocess.run(
        [sys.executable, "manage.py", "relay_outbox", "--once", "--sink", "file"],
        cwd=ROOT,
        env={**database_env(), "FINTECH_CRASH_AT": "after_produce_before_mark", "FINTECH_RELAY_FILE": str(shipped)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert crashed.returncode == CRASH_STATUS, crashed.stderr[-3000:]
    assert OutboxEvent.objects.filter(sent_at__isnull=True).count() == waiting  # nothing was marked
    first = [json.loads(line)["headers"]["ce_id"] for line in shipped.read_text().splitlines()]
    assert len(first) == waiting  # the sink has them all already

    call_command("relay_outbox", "--once", "--sink", "file", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert not OutboxEvent.objects.filter(sent_at__isnull=True).exists()
    everything = Counter(json.loads(line)["headers"]["ce_id"] for line in shipped.read_text().splitlines())
    assert set(everything) == set(first)  # nothing lost
    assert set(everything.values()) == {2}  # each shipped twice: at least once, the consumers deduplicate


def test_a_sender_killed_between_sending_and_recording_is_followed_by_one_that_sends_it_once_more():
    now = timezone.now()
    notification = Notification.objects.create(
        event_id=uuid.uuid4(),
        event_type="transaction.completed",
        notice="transfer_sent",
        category="activity",
        channel="push",
        recipient="customer:x",
        customer_id=uuid.uuid4(),
        language="pt-BR",
        subject="Transferência enviada",
        body="Olá!",
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    with push_provider() as provider:
        sender_env = {
            "FINTECH_NOTIFICATIONS_WEBHOOK_URL": provider.url,
            "FINTECH_NOTIFICATIONS_WEBHOOK_SECRET": "s" * 40,
            "FINTECH_NOTIFICATIONS_LEASE_SECONDS": "1",  # the dead sender's lease runs out quickly
        }
        crashed = manage(
            "deliver_notifications", "--once", env={**sender_env, "FINTECH_CRASH_AT": "after_send_before_record"}
        )
        assert crashed.returncode == CRASH_STATUS, crashed.stderr[-3000:]
        assert len(provider.seen) == 1  # the provider has it
        notification.refresh_from_db()
        assert (notification.status, notification.attempts) == ("pending", 0)  # nothing recorded

        time.sleep(1.5)
        restarted = manage("deliver_notifications", "--once", env=sender_env)
        assert restarted.returncode == 0, restarted.stderr[-3000:]
        assert "sent=1" in restarted.stdout
        again = manage("deliver_notifications", "--once", env=sender_env)
        assert "sent=0" in again.stdout

    # Sent twice under one key (the provider recognises the second), recorded once.
    assert [request.headers["Idempotency-Key"] for request in provider.seen] == [str(notification.id)] * 2
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("sent", 1)
    assert notification.sent_at is not None


def test_a_point_given_a_number_of_passes_is_passed_that_often_before_the_process_dies_there():
    passing = "from fintech.faults import crash_point\nfor n in range(5):\n    crash_point('after_hold')\n"
    passing += "    crash_point('after_send_before_record')\n    print(n, flush=True)\n"
    done = subprocess.run(
        [sys.executable, "-c", passing],
        cwd=ROOT,
        env={**database_env(), "FINTECH_CRASH_AT": "after_send_before_record:9, after_hold:2"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == CRASH_STATUS, done.stderr[-3000:]
    assert done.stdout.split() == ["0", "1"]  # after_hold passed twice, then died at the third
