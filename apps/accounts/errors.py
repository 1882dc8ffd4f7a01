"""Refusals of the accounts context. Other contexts see them through `apps.accounts.public`."""

from __future__ import annotations

from fintech.errors import Conflict, NotFound


class AccountNotFound(NotFound):
    code = "account_not_found"
    title = "Account not found"


class CustomerNotVerified(Conflict):
    code = "customer_not_verified"
    title = "The customer has not passed KYC"


class InvalidAccountStatus(Conflict):
    code = "invalid_account_status"
    title = "The account's status does not allow this"


class AccountNotEmpty(Conflict):
    code = "account_not_empty"
    title = "Only an account with a zero balance and no holds can be closed"


class AccountBlocked(Conflict):
    code = "account_blocked"
    title = "The account is blocked"


class AccountClosed(Conflict):
    code = "account_closed"
    title = "The account is closed"
