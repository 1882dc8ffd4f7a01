"""Refusals of the payments context. The account's refusals (`account_not_found`,
`account_blocked`, `account_closed`, `currency_mismatch`) belong to the accounts context and the
ledger's (`insufficient_funds`) to the ledger: they reach the API as those contexts raise them."""

from __future__ import annotations

from fintech.errors import Conflict, NotFound, Unprocessable


class PaymentNotFound(NotFound):
    code = "payment_not_found"
    title = "Payment not found"


class SameBankBeneficiary(Unprocessable):
    code = "same_bank_beneficiary"
    title = "The beneficiary's account is at this bank: make a transfer"


class PaymentStateError(Conflict):
    """The payment and the books disagree (a hold already voided for a payment being sent):
    a person must look."""

    code = "payment_state_conflict"
    title = "The payment is in a state that does not allow this"
