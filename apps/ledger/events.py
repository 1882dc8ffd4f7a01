from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from fintech.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class LedgerEntryWritten(DomainEvent):
    """A journal transaction was posted. One event per journal transaction, with its entries."""

    event_type: ClassVar[str] = "ledger.entry_written"
    version: ClassVar[int] = 1
    source: ClassVar[str] = "ledger"
    aggregate_field: ClassVar[str] = "transaction_id"

    transaction_id: str
    posting_key: str
    kind: str
    reference: str
    reverses: str | None
    posted_at: str
    entries: list[dict[str, Any]]
