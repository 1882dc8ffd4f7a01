"""Commands of the customers context: onboarding and the KYC decision."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.customers.documents import InvalidDocument, normalize_document
from apps.customers.events import CustomerCreated, CustomerRejected, CustomerVerified
from apps.customers.models import Customer
from fintech.errors import Conflict, NotFound, ValidationFailed
from outbox.publisher import publish, rfc3339


class DuplicateDocument(Conflict):
    code = "duplicate_document"
    title = "A customer with this document already exists"


class KycAlreadyDecided(Conflict):
    code = "kyc_already_decided"
    title = "The KYC decision for this customer was already taken"


class CustomerNotFound(NotFound):
    code = "customer_not_found"
    title = "Customer not found"


def customer_create(
    *, name: str, email: str, document: str, birth_date: date | None = None, now: datetime | None = None
) -> Customer:
    now = now or timezone.now()
    try:
        document_type, digits = normalize_document(document)
    except InvalidDocument as error:
        raise ValidationFailed(str(error), code="invalid_document", errors={"document": [str(error)]}) from None
    if Customer.objects.filter(document=digits).exists():
        raise DuplicateDocument("A customer with this document already exists.")
    try:
        with transaction.atomic():
            customer = Customer.objects.create(
                name=name.strip(),
                email=email.strip().lower(),
                document_type=document_type.value,
                document=digits,
                birth_date=birth_date,
                created_at=now,
                updated_at=now,
            )
            publish(
                CustomerCreated(
                    customer_id=str(customer.id),
                    document_type=customer.document_type,
                    status=customer.status,
                    created_at=rfc3339(now),
                ),
                occurred_at=now,
            )
    except IntegrityError:
        # Two onboardings of one document raced past the check above.
        raise DuplicateDocument("A customer with this document already exists.") from None
    return customer


def _pending_customer_for_update(customer_id: uuid.UUID) -> Customer:
    customer = Customer.objects.select_for_update().filter(pk=customer_id).first()
    if customer is None:
        raise CustomerNotFound(f"No customer {customer_id}.")
    if customer.status != Customer.Status.PENDING:
        raise KycAlreadyDecided(f"This customer is already {customer.status}.", status_now=customer.status)
    return customer


def customer_verify(*, customer_id: uuid.UUID, reviewer: str, now: datetime | None = None) -> Customer:
    now = now or timezone.now()
    with transaction.atomic():
        customer = _pending_customer_for_update(customer_id)
        customer.status = Customer.Status.VERIFIED
        customer.kyc_reviewed_by = reviewer
        customer.kyc_reviewed_at = now
        customer.updated_at = now
        customer.save(update_fields=["status", "kyc_reviewed_by", "kyc_reviewed_at", "updated_at"])
        publish(
            CustomerVerified(customer_id=str(customer.id), reviewed_by=reviewer, verified_at=rfc3339(now)),
            occurred_at=now,
        )
    return customer


def customer_reject(*, customer_id: uuid.UUID, reviewer: str, reason: str, now: datetime | None = None) -> Customer:
    now = now or timezone.now()
    with transaction.atomic():
        customer = _pending_customer_for_update(customer_id)
        customer.status = Customer.Status.REJECTED
        customer.kyc_reviewed_by = reviewer
        customer.kyc_reviewed_at = now
        customer.kyc_reason = reason
        customer.updated_at = now
        customer.save(update_fields=["status", "kyc_reviewed_by", "kyc_reviewed_at", "kyc_reason", "updated_at"])
        publish(
            CustomerRejected(
                customer_id=str(customer.id), reviewed_by=reviewer, reason=reason, rejected_at=rfc3339(now)
            ),
            occurred_at=now,
        )
    return customer
