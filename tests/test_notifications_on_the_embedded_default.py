"""On the embedded default (`make run`: SQLite, in-process dispatch, the delivery worker beside
the web server), a transfer made through the API is told to its customer within seconds."""

from __future__ import annotations

import time
import uuid

import pytest
from django.conf import settings

from tests.factories import open_account
from tests.spine.support import start_manage

pytestmark = pytest.mark.django_db(transaction=True)

# A guard against a hang, not a speed target: on an idle machine it takes well under a second.
PATIENCE_SECONDS = 60


def test_a_transfer_through_the_api_is_listed_at_once_and_sent_by_the_worker(client_with, tmp_path):
    assert settings.FINTECH_EVENT_DISPATCH == "inline"
    source, destination = open_account(balance=50_000), open_account()
    worker = start_manage(
        "deliver_notifications",
        "--interval",
        "0.2",
        env={"EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend", "EMAIL_FILE_PATH": str(tmp_path)},
    )
    try:
        transfer = client_with("transfers:write").post(
            "/api/v1/transfers",
            {
                "from_account_id": str(source.id),
                "to_account_id": str(destination.id),
                "amount": 4_321,
                "currency": "BRL",
            },
            format="json",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        )
        assert transfer.status_code == 201, transfer.content
        reader = client_with("customers:read", customer_id=source.customer_id)

        # Recorded in the request's own after-commit dispatch: listed at once.
        listed = reader.get("/api/v1/notifications").json()["results"]
        assert [n["notice"] for n in listed if n["event_type"] == "transaction.completed"] == ["transfer_sent"]

        deadline = time.monotonic() + PATIENCE_SECONDS
        while time.monotonic() < deadline:
            listed = reader.get("/api/v1/notifications").json()["results"]
            sent = [n for n in listed if n["notice"] == "transfer_sent" and n["status"] == "sent"]
            if sent:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"not sent within {PATIENCE_SECONDS}s; worker said:\n{worker.output()[-3000:]}")
        assert sent[0]["subject"] == "Transferência de R$ 43,21 enviada"
        assert sent[0]["attempts"] == 1
        mails = "".join(path.read_text() for path in tmp_path.iterdir())
        assert f"Message-ID: <{sent[0]['id']}@notifications.fintech>" in mails
        assert "Sua transferência de R$ 43,21 da conta final" in mails
    finally:
        worker.terminate()
        worker.wait(timeout=30)
