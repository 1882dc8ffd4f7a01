"""Commands of the customers context: onboarding, the KYC decision and erasure."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from django.db import IntegrityError
from django.utils import timezone

from apps.accounts import public as accounts
from apps.customers.errors import (
    CustomerErasedAlready,
    CustomerHasOpenAccounts,
    CustomerHasPendingMoney,
    CustomerNotFound,
    DuplicateDocument,
    KycAlreadyDecided,
)
from apps.customers.events import CustomerCreated, CustomerErased, CustomerRejected, CustomerVerified
from apps.customers.models import ERASED_NAME, Customer
from apps.customers.selectors import customer_exists_with_document, document_index
from apps.fraud import public as fraud
from apps.ledger import public as ledger
from apps.payments import public as payments
from apps.transactions import public as transactions
from fintech.contacts import InvalidPhone, normalize_email, normalize_phone
from fintech.documents import InvalidDocument, normalize_document
from fintech.errors import ValidationFailed
from fintech.events import rfc3339
from outbox.publisher import publish
from outbox.unit_of_work import unit_of_work


def customer_create(
    *,
    name: str,
    email: str,
    document: str,
    birth_date: date | None = None,
    phone: str | None = None,
    language: str = Customer.Language.PT_BR,
    now: datetime | None = None,
) -> Customer:
    now = now or timezone.now()
    if language not in Customer.Language.values:
        raise ValidationFailed(
            f"The bank writes in {', '.join(Customer.Language.values)}.",
            code="unsupported_language",
            errors={"language": ["Unsupported."]},
        )
    try:
        document_type, digits = normalize_document(document)
    except InvalidDocument as error:
        raise ValidationFailed(str(error), code="invalid_document", errors={"document": [str(error)]}) from None
    try:
        phone = normalize_phone(phone) if phone else None
    except InvalidPhone as error:
        raise ValidationFailed(str(error), code="invalid_phone", errors={"phone": [str(error)]}) from None
    if customer_exists_with_document(digits=digits):
        raise DuplicateDocument("A customer with this document already exists.")
    try:
        with unit_of_work(savepoint=True):
            customer = Customer.objects.create(
                name=name.strip(),
                email=normalize_email(email),
                phone=phone,
                document_type=document_type.value,
                document=digits,
                document_index=document_index(digits),
                birth_date=birth_date,
                language=language,
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
    if customer.is_erased:
        raise CustomerErasedAlready("This customer's personal data was erased; KYC cannot be decided.")
    if customer.status != Customer.Status.PENDING:
        raise KycAlreadyDecided(f"This customer is already {customer.status}.", status_now=customer.status)
    return customer


def customer_verify(*, customer_id: uuid.UUID, reviewer: str, now: datetime | None = None) -> Customer:
    now = now or timezone.now()
    with unit_of_work():
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
    with unit_of_work():
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


def _erasure_refusal(customer_id: uuid.UUID) -> CustomerHasOpenAccounts | CustomerHasPendingMoney | None:
    """Why the customer's personal data may not be erased yet: while an account is open, or money
    of theirs is on its way, the bank still does business with them and must know who they are
    (and the law keeps the records of that business: LGPD art. 16, I)."""
    held_accounts = accounts.accounts_of_customer(customer_id)
    still_open = [account for account in held_accounts if account.status != "closed"]
    if still_open:
        return CustomerHasOpenAccounts(
            f"The customer has {len(still_open)} account(s) not closed; close them before erasing.",
            open_accounts=[str(account.id) for account in still_open],
        )
    account_ids = [account.id for account in held_accounts]
    pending = {
        "holds": sum(1 for balance in ledger.balances_of(account_ids).values() if balance.held),
        "transfers": transactions.transfers_in_flight(customer_id),
        "payments": payments.payments_not_final(customer_id),
        "reviews": fraud.open_reviews(customer_id=customer_id, account_ids=account_ids),
    }
    if any(pending.values()):
        waiting = ", ".join(f"{count} {what}" for what, count in pending.items() if count)
        return CustomerHasPendingMoney(
            f"Money of the customer is still on its way ({waiting}); erase once it has arrived.",
            pending=pending,
        )
    return None


def customer_erase(*, customer_id: uuid.UUID, erased_by: str, now: datetime | None = None) -> Customer:
    """Erase the customer's personal data (an LGPD/GDPR request) and publish `customer.erased`:
    the id, the document type, the KYC outcome and the dates stay, because the books point at
    them (docs/architecture.md, "Personal data", says what goes and why). Refused (409) while an
    account of theirs is not closed or money of theirs is on its way. Accounts, the journal,
    transfers and payments stay: they are the records the law requires the bank to keep.
    Erasing an erased customer changes nothing and publishes nothing, so a retried request
    succeeds."""
    now = now or timezone.now()
    with unit_of_work():
        # The lock makes an account opening for this customer wait (accounts asks for it locked).
        customer = Customer.objects.select_for_update().filter(pk=customer_id).first()
        if customer is None:
            raise CustomerNotFound(f"No customer {customer_id}.")
        if customer.is_erased:
            return customer
        refusal = _erasure_refusal(customer.id)
        if refusal is not None:
            raise refusal
        customer.name = ERASED_NAME
        customer.email = None
        customer.phone = None
        customer.birth_date = None
        customer.document = None
        customer.document_index = None
        customer.kyc_reason = ""
        customer.erased_at = now
        customer.updated_at = now
        customer.save(
            update_fields=[
                "name",
                "email",
                "phone",
                "birth_date",
                "document",
                "document_index",
                "kyc_reason",
                "erased_at",
                "updated_at",
            ]
        )
        publish(
            CustomerErased(customer_id=str(customer.id), erased_by=erased_by, erased_at=rfc3339(now)),
            occurred_at=now,
        )
    return customer
