"""The fraud context on its own: its tests screen operations that no other context made, so the
other contexts' handlers (which would look for the transfer behind a screening) are left out."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from apps.fraud.rules import Operation
from fintech import bus

NOON_UTC = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # noon in São Paulo


@pytest.fixture(autouse=True)
def _only_fraud_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    kept = {event_type: [s for s in subs if s.context == "fraud"] for event_type, subs in bus._subscriptions.items()}
    monkeypatch.setattr(bus, "_subscriptions", kept)


OperationFactory = Callable[..., Operation]


@pytest.fixture
def transfer() -> OperationFactory:
    """`transfer(amount=..., source=..., destination=...)`: a transfer as transaction.initiated tells it."""

    def make(
        *,
        amount: int = 100,
        source: uuid.UUID | None = None,
        destination: uuid.UUID | None = None,
        destination_customer: uuid.UUID | None = None,
        at: datetime = NOON_UTC,
        by_customer: bool = False,
        currency: str = "BRL",
    ) -> Operation:
        return Operation(
            subject_type="transfer",
            subject_id=uuid.uuid4(),
            account_id=source or uuid.uuid4(),
            customer_id=uuid.uuid4(),
            amount=amount,
            currency=currency,
            occurred_at=at,
            initiated_by_customer=by_customer,
            counterparty_account_id=destination or uuid.uuid4(),
            counterparty_customer_id=destination_customer or uuid.uuid4(),
        )

    return make
