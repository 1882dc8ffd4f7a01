"""Builders of bank state for tests, through the services (so events and ledger rows exist)."""

from __future__ import annotations

import random
import uuid

from apps.accounts import services as accounts
from apps.accounts.models import BankAccount
from apps.customers import services as customers
from apps.customers.models import Customer
from apps.transactions import services as transactions


def new_cpf(rng: random.Random | None = None) -> str:
    """A random CPF with valid check digits."""
    rng = rng or random.Random()
    while True:
        body = [rng.randint(0, 9) for _ in range(9)]
        if len(set(body)) == 1:
            continue

        def digit(digits: list[int], weights: range) -> int:
            remainder = sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
            return 0 if remainder < 2 else 11 - remainder

        first = digit(body, range(10, 1, -1))
        second = digit([*body, first], range(11, 1, -1))
        return "".join(map(str, [*body, first, second]))


def pending_customer(name: str = "Bia Lima") -> Customer:
    return customers.customer_create(name=name, email="bia@example.com", document=new_cpf())


def verified_customer(name: str = "Ana Souza") -> Customer:
    customer = customers.customer_create(name=name, email="ana@example.com", document=new_cpf())
    return customers.customer_verify(customer_id=customer.id, reviewer="kyc-tester")


def open_account(*, customer: Customer | None = None, currency: str = "BRL", balance: int = 0) -> BankAccount:
    """A verified customer's active account, funded with `balance` by a deposit."""
    account = accounts.account_open(customer_id=(customer or verified_customer()).id, currency=currency)
    if balance:
        deposit(account, balance)
    return account


def deposit(account: BankAccount, amount: int) -> None:
    transactions.deposit_make(
        account_id=account.id,
        amount=amount,
        currency=account.currency,
        reference=f"test-{uuid.uuid4()}",
        made_by="teller-tester",
    )


def block(account: BankAccount, reason: str = "fraud") -> None:
    accounts.account_block(account_id=account.id, reason=reason, changed_by="ops-tester")
