"""What the bank and the payment network (the outside party that moves money between banks) must
spell the same way in the messages they exchange. The bank's payments context writes them and the
network simulator reads them, so each rule is written once, here.

- **ISPB**: a participant's 8-digit code at the central bank (`FINTECH_BANK_ISPB` is ours).
- **End-to-end id**: the network-wide id of one payment, `E` + the ISPB of the bank that starts it
  + the minute it started (UTC, `yyyyMMddHHmm`) + 11 letters or digits: 32 characters, the PIX
  format. Our outbound payments carry one we make; an inbound credit carries the sender's.
- **The sealed beneficiary**: `payment.requested` travels over the bank's Kafka, where the bank's
  other consumers read too, but the beneficiary's name, document, account and PIX key are
  personal data that only the network needs. They travel as one AES-256-GCM token
  (`fintech.crypto.cipher`) under a key shared with the network (`FINTECH_PAYMENT_NETWORK_KEYS`,
  a key ring like `FINTECH_ENCRYPTION_KEYS`), bound to the payment's id: a block copied into
  another payment's request does not open. See docs/adr/0005-payments-and-the-network.md.
- **The settlement file**: what the network settled on a day, as CSV (`SETTLEMENT_COLUMNS`); the
  simulator writes it, `manage.py reconcile_settlement` reads it.
"""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import string
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from django.conf import settings

from fintech.crypto.cipher import decrypt, encrypt
from fintech.crypto.keyring import KeyRing, configured_key_ring

ISPB = re.compile(r"^[0-9]{8}$")
END_TO_END_ID = re.compile(r"^E[0-9]{8}[0-9]{12}[A-Za-z0-9]{11}$")
_END_TO_END_ALPHABET = string.ascii_letters + string.digits


def is_ispb(code: str) -> bool:
    return bool(ISPB.match(code)) and code.isascii()


def new_end_to_end_id(*, ispb: str, at: datetime) -> str:
    """A fresh end-to-end id for a payment that the participant `ispb` starts at `at`."""
    if not is_ispb(ispb):
        raise ValueError("An ISPB is 8 digits.")
    tail = "".join(secrets.choice(_END_TO_END_ALPHABET) for _ in range(11))
    return f"E{ispb}{at.astimezone(UTC):%Y%m%d%H%M}{tail}"


def network_key_ring() -> KeyRing:
    """The keys shared with the payment network: the first seals, every one opens."""
    return configured_key_ring(
        settings.FINTECH_PAYMENT_NETWORK_KEYS,
        setting="FINTECH_PAYMENT_NETWORK_KEYS",
        dev_path=str(settings.FINTECH_DEV_PAYMENT_NETWORK_KEY_PATH),
    )


def _beneficiary_purpose(payment_id: uuid.UUID | str) -> str:
    return f"payment.requested.beneficiary:{uuid.UUID(str(payment_id))}"


def seal_beneficiary(block: Mapping[str, str], *, payment_id: uuid.UUID | str) -> str:
    """The beneficiary block of a payment request as a token only the network opens."""
    plaintext = json.dumps(dict(block), sort_keys=True, separators=(",", ":"))
    return encrypt(plaintext, purpose=_beneficiary_purpose(payment_id), ring=network_key_ring())


def unseal_beneficiary(token: str, *, payment_id: uuid.UUID | str) -> dict[str, str]:
    """The network's side: the block sealed for `payment_id` (fintech.crypto.CryptoError when it
    was altered, sealed for another payment or under a key the ring does not hold)."""
    block = json.loads(decrypt(token, purpose=_beneficiary_purpose(payment_id), ring=network_key_ring()))
    if not isinstance(block, dict):
        raise ValueError("A sealed beneficiary is a JSON object.")
    return {str(key): str(value) for key, value in block.items()}


# -- the settlement file ----------------------------------------------------------------------
#
# What the network settled, one CSV file a day: a header row, then one row per payment or credit
# with the network's final word on it. Amounts in minor units; dates in UTC.

SETTLEMENT_COLUMNS = (
    "date",
    "end_to_end_id",
    "payment_id",
    "direction",
    "status",
    "amount",
    "currency",
    "network_reference",
    "return_reason",
)
OUTBOUND = "outbound"  # our payment to another bank: settled or returned
INBOUND = "inbound"  # another bank's credit for our customer: credited, or returned by us
SETTLEMENT_STATUSES = {OUTBOUND: ("settled", "returned"), INBOUND: ("credited", "returned")}


class SettlementFileError(ValueError):
    """A row of a settlement file that is not one the network writes."""


@dataclass(frozen=True, slots=True)
class SettlementItem:
    date: str  # YYYY-MM-DD, the network's day of the item (UTC)
    end_to_end_id: str
    payment_id: str  # our payment's id for an outbound item, empty for an inbound one
    direction: str
    status: str
    amount: int
    currency: str
    network_reference: str
    return_reason: str = ""

    def row(self) -> dict[str, str]:
        return {column: str(getattr(self, column)) for column in SETTLEMENT_COLUMNS}


def settlement_item(row: Mapping[str, str | None], *, line: int) -> SettlementItem:
    """One row of a settlement file, checked; SettlementFileError names the line and the field."""
    values = {column: (row.get(column) or "").strip() for column in SETTLEMENT_COLUMNS}
    problems = []
    try:
        date.fromisoformat(values["date"])
    except ValueError:
        problems.append("date is not YYYY-MM-DD")
    if not END_TO_END_ID.match(values["end_to_end_id"]):
        problems.append("end_to_end_id is not an end-to-end id")
    if values["direction"] not in SETTLEMENT_STATUSES:
        problems.append(f"direction is not one of {', '.join(SETTLEMENT_STATUSES)}")
    elif values["status"] not in SETTLEMENT_STATUSES[values["direction"]]:
        problems.append(f"status is not one of {', '.join(SETTLEMENT_STATUSES[values['direction']])}")
    if values["direction"] == OUTBOUND:
        try:
            uuid.UUID(values["payment_id"])
        except ValueError:
            problems.append("payment_id is not a UUID")
    if not (values["amount"].isdigit() and values["amount"].isascii() and int(values["amount"]) > 0):
        problems.append("amount is not a positive whole number of minor units")
    if not re.fullmatch(r"[A-Z]{3}", values["currency"]):
        problems.append("currency is not ISO 4217")
    if problems:
        raise SettlementFileError(f"line {line}: {'; '.join(problems)}")
    return SettlementItem(**{**values, "amount": int(values["amount"])})  # type: ignore[arg-type]


def read_settlement_file(path: str | os.PathLike[str]) -> Iterator[SettlementItem | SettlementFileError]:
    """The items of a settlement file in order; a row that cannot be read is yielded as its error,
    so a reader reports every bad row, not only the first."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in SETTLEMENT_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise SettlementFileError(f"line 1: the header lacks {', '.join(missing)}")
        for row in reader:
            try:
                yield settlement_item(row, line=reader.line_num)
            except SettlementFileError as error:
                yield error


def write_settlement_file(path: str | os.PathLike[str], items: Iterable[SettlementItem]) -> None:
    """Write the file whole under a temporary name, then move it into place: a reader never sees
    half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with open(temporary, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SETTLEMENT_COLUMNS)
        writer.writeheader()
        writer.writerows(item.row() for item in items)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)
