"""The simulated payment network: what it answers to our payment requests, the credits it brings
for our customers, and its record of the day (the settlement file). No transport here: the Kafka
runner and the in-process simulator carry what it says.

How it decides, so that demos and tests can count on it:

- a beneficiary's account number starting with `99999`, or a PIX e-mail key at
  `@closed.example`, is closed at the beneficiary's bank: the payment is returned
  (`AC04 closed account number`);
- a beneficiary block that does not open with the shared key is returned (`FF01 ...`);
- otherwise a payment is returned at random with `return_rate` (a reason drawn from
  `RETURN_REASONS`), else settled;
- each answer and credit is sent twice with `duplicate_rate` (the same message: networks deliver
  at least once);
- a payment asked for again (a redelivered request) gets the answer it got the first time.

Its messages are CloudEvents like the bank's, from `/payment-network-simulator`, checked against
the same schemas before they are sent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import random
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from fintech.crypto import CryptoError
from fintech.events import rfc3339, validate
from fintech.payment_network import (
    INBOUND,
    OUTBOUND,
    SettlementFileError,
    SettlementItem,
    new_end_to_end_id,
    read_settlement_file,
    unseal_beneficiary,
    write_settlement_file,
)

logger = logging.getLogger("fintech.payment_network_simulator")

SOURCE = "/payment-network-simulator"
# The bank on the other side of the simulator's credits.
SENDER_ISPB = "88888888"
CLOSED_ACCOUNT_PREFIX = "99999"
CLOSED_EMAIL_DOMAIN = "@closed.example"
CLOSED_ACCOUNT = "AC04 closed account number"
UNREADABLE_BENEFICIARY = "FF01 the beneficiary block does not open"
RETURN_REASONS = (
    "AC03 invalid creditor account number",
    "AC06 blocked account",
    "BE01 the beneficiary's name does not match the document",
    "AG03 transaction type not supported by the account",
)


def network_message(event_type: str, *, subject: str, data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A CloudEvent of the network, its data checked against the type's schema."""
    validate(event_type, 1, data)
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "type": event_type,
        "source": SOURCE,
        "subject": subject,
        "time": rfc3339(now),
        "dataschema": f"{event_type}/v1",
        "datacontenttype": "application/json",
        "data": data,
    }


def _key(item: SettlementItem) -> tuple[str, str]:
    return item.direction, item.payment_id if item.direction == OUTBOUND else item.end_to_end_id


class SettlementBook:
    """The network's record of what it settled, one settlement file a day when `path` is given
    (`{date}` in it is replaced by the day, YYYY-MM-DD; without it, one file for every day).

    Every change is written to the file under an exclusive lock, read again first, so several
    processes (a web process and a dispatcher, both simulating in process) keep one record."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self.items: dict[tuple[str, str], SettlementItem] = {}
        if path:
            self.items.update(self._read(self._file(datetime.now(UTC).date().isoformat())))

    def _file(self, day: str) -> Path:
        assert self.path is not None
        return Path(self.path.replace("{date}", day))

    @staticmethod
    def _read(file: Path) -> dict[tuple[str, str], SettlementItem]:
        if not file.exists():
            return {}
        found = {}
        for item in read_settlement_file(file):
            if isinstance(item, SettlementFileError):
                logger.warning("unreadable settlement row left out", extra={"file": str(file), "error": str(item)})
                continue
            found[_key(item)] = item
        return found

    @contextlib.contextmanager
    def _locked(self, file: Path) -> Iterator[None]:
        file.parent.mkdir(parents=True, exist_ok=True)
        with open(file.with_name(f".{file.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def record(self, item: SettlementItem) -> None:
        self.items[_key(item)] = item
        if not self.path:
            return
        file = self._file(item.date)
        with self._locked(file):
            current = self._read(file)
            current[_key(item)] = item
            write_settlement_file(file, current.values())
        self.items.update(current)

    def outbound(self, payment_id: str) -> SettlementItem | None:
        return self.items.get((OUTBOUND, payment_id))

    def inbound(self, end_to_end_id: str) -> SettlementItem | None:
        return self.items.get((INBOUND, end_to_end_id))


class PaymentNetwork:
    def __init__(
        self,
        *,
        book: SettlementBook | None = None,
        return_rate: float = 0.0,
        duplicate_rate: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        for name, rate in (("return_rate", return_rate), ("duplicate_rate", duplicate_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} is between 0 and 1")
        self.book = book or SettlementBook()
        self.return_rate = return_rate
        self.duplicate_rate = duplicate_rate
        self.rng = rng or random.Random()

    def _times(self, envelope: dict[str, Any]) -> list[dict[str, Any]]:
        return [envelope, envelope] if self.rng.random() < self.duplicate_rate else [envelope]

    def _reference(self) -> str:
        return f"SIM{self.rng.getrandbits(64):016X}"

    def _return_reason(self, request: Mapping[str, Any]) -> str | None:
        """Why the beneficiary's bank refuses the payment, or None when it pays."""
        try:
            block = unseal_beneficiary(request["beneficiary_sealed"], payment_id=request["payment_id"])
        except (CryptoError, ValueError):
            return UNREADABLE_BENEFICIARY
        if block.get("kind") == "account" and block.get("account_number", "").startswith(CLOSED_ACCOUNT_PREFIX):
            return CLOSED_ACCOUNT
        if block.get("pix_key_type") == "email" and block.get("pix_key", "").endswith(CLOSED_EMAIL_DOMAIN):
            return CLOSED_ACCOUNT
        if self.rng.random() < self.return_rate:
            return self.rng.choice(RETURN_REASONS)
        return None

    def answer(self, request: Mapping[str, Any], *, now: datetime) -> list[dict[str, Any]]:
        """The `payment.processed` message(s) for a `payment.requested`: once, or twice."""
        payment_id = str(request["payment_id"])
        item = self.book.outbound(payment_id)
        if item is None:
            reason = self._return_reason(request)
            item = SettlementItem(
                date=now.astimezone(UTC).date().isoformat(),
                end_to_end_id=request["end_to_end_id"],
                payment_id=payment_id,
                direction=OUTBOUND,
                status="returned" if reason else "settled",
                amount=int(request["amount"]),
                currency=str(request["currency"]),
                network_reference=self._reference(),
                return_reason=reason or "",
            )
            self.book.record(item)
        data = {
            "payment_id": payment_id,
            "status": item.status,
            "network_reference": item.network_reference,
            "return_reason": item.return_reason or None,
            "processed_at": rfc3339(now),
            "amount": item.amount,
            "currency": item.currency,
            "end_to_end_id": item.end_to_end_id,
        }
        return self._times(network_message("payment.processed", subject=payment_id, data=data, now=now))

    def credit(
        self, *, account_number: str, amount: int, currency: str, now: datetime, branch: str = "0001"
    ) -> list[dict[str, Any]]:
        """A credit from another bank for our account `branch`/`account_number`."""
        end_to_end_id = new_end_to_end_id(ispb=SENDER_ISPB, at=now)
        item = SettlementItem(
            date=now.astimezone(UTC).date().isoformat(),
            end_to_end_id=end_to_end_id,
            payment_id="",
            direction=INBOUND,
            status="credited",
            amount=amount,
            currency=currency,
            network_reference=self._reference(),
        )
        self.book.record(item)
        data = {
            "end_to_end_id": end_to_end_id,
            "amount": amount,
            "currency": currency,
            "creditor_ispb": settings.FINTECH_BANK_ISPB,
            "creditor_branch": branch,
            "creditor_account_number": account_number,
            "debtor_ispb": SENDER_ISPB,
            "network_reference": item.network_reference,
            "sent_at": rfc3339(now),
        }
        return self._times(network_message("payment.received", subject=end_to_end_id, data=data, now=now))

    def credit_returned(self, returned: Mapping[str, Any]) -> None:
        """The bank refused one of our credits (`payment.credit_returned`): the money goes back."""
        item = self.book.inbound(str(returned["end_to_end_id"]))
        if item is None:
            logger.warning("a return for a credit this network never sent", extra={"returned": dict(returned)})
            return
        self.book.record(dataclasses.replace(item, status="returned", return_reason=str(returned["return_reason"])))
