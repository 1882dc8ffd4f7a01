"""Events the customers context publishes. Ids and primitives only: no names, documents or
e-mails leave the context in an event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fintech.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class CustomerCreated(DomainEvent):
    event_type: ClassVar[str] = "customer.created"
    version: ClassVar[int] = 1
    source: ClassVar[str] = "customers"
    aggregate_field: ClassVar[str] = "customer_id"

    customer_id: str
    document_type: str
    status: str
    created_at: str


@dataclass(frozen=True, kw_only=True)
class CustomerVerified(DomainEvent):
    event_type: ClassVar[str] = "customer.verified"
    version: ClassVar[int] = 1
    source: ClassVar[str] = "customers"
    aggregate_field: ClassVar[str] = "customer_id"

    customer_id: str
    reviewed_by: str
    verified_at: str


@dataclass(frozen=True, kw_only=True)
class CustomerRejected(DomainEvent):
    event_type: ClassVar[str] = "customer.rejected"
    version: ClassVar[int] = 1
    source: ClassVar[str] = "customers"
    aggregate_field: ClassVar[str] = "customer_id"

    customer_id: str
    reviewed_by: str
    reason: str
    rejected_at: str


@dataclass(frozen=True, kw_only=True)
class CustomerErased(DomainEvent):
    """The customer's personal data was erased (LGPD/GDPR request). Every context that keeps a
    copy of it (contact details for notifications, ...) erases its copy; ids, accounts and the
    ledger stay."""

    event_type: ClassVar[str] = "customer.erased"
    version: ClassVar[int] = 1
    source: ClassVar[str] = "customers"
    aggregate_field: ClassVar[str] = "customer_id"

    customer_id: str
    erased_by: str
    erased_at: str
