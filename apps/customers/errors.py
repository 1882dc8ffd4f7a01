"""Refusals of the customers context. Other contexts see them through `apps.customers.public`."""

from __future__ import annotations

from fintech.errors import Conflict, NotFound


class CustomerNotFound(NotFound):
    code = "customer_not_found"
    title = "Customer not found"


class DuplicateDocument(Conflict):
    code = "duplicate_document"
    title = "A customer with this document already exists"


class KycAlreadyDecided(Conflict):
    code = "kyc_already_decided"
    title = "The KYC decision for this customer was already taken"


class CustomerErasedAlready(Conflict):
    code = "customer_erased"
    title = "The personal data of this customer was erased"


class CustomerHasOpenAccounts(Conflict):
    code = "customer_has_open_accounts"
    title = "The customer still has accounts that are not closed"


class CustomerHasPendingMoney(Conflict):
    code = "customer_has_pending_money"
    title = "Money of the customer is still on its way"
