"""Every operation of the OpenAPI schema, walked with no token, a token without its scope,
another customer's token and the right token. An operation missing from MATRIX fails the
suite: a new endpoint must say who may call it before it ships."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

from apps.accounts import services as accounts
from apps.fraud import services as fraud
from apps.payments import services as payments
from apps.transactions import services as transactions
from conftest import ALL_STAFF_SCOPES
from fintech.auth.scopes import KNOWN_SCOPES, OPERATION_SCOPES, RESERVED_SCOPES
from outbox.dispatcher import dispatch
from tests.factories import deposit, open_account, pending_customer, verified_customer
from tests.payments_support import ACCOUNT_BENEFICIARY

pytestmark = pytest.mark.django_db

STAFF_ONLY = "staff-only"  # customer tokens are refused (403) even with the scope
OWNER = "owner"  # another customer's resource answers 404
LISTING = "listing"  # a customer sees only its own items
OWNER_PER_ITEM = "owner-per-item"  # a batch: 207, and each item naming another customer's account answers 404


@dataclass(frozen=True)
class Rule:
    scopes: tuple[str, ...]
    access: str
    success: int = 200
    body: Callable[[World], dict[str, Any]] | None = None
    prepare: Callable[[World], None] | None = None


@dataclass
class World:
    owner: Any
    account: Any  # the owner's funded account
    empty_account: Any  # the owner's account with nothing in it
    other_account: Any  # another customer's account
    pending: Any  # a customer awaiting KYC
    transfer: Any
    journal_id: uuid.UUID
    extra: dict[str, Any] = field(default_factory=dict)

    def path_value(self, name: str) -> str:
        return {
            "customer_id": str(self.owner.id),
            "account_id": str(self.account.id),
            "transfer_id": str(self.transfer.id),
            "transaction_id": str(self.journal_id),
            "payment_id": str(self.extra["payment"].id),
        }[name]


def _transfer_body(world: World) -> dict[str, Any]:
    return {
        "from_account_id": str(world.account.id),
        "to_account_id": str(world.other_account.id),
        "amount": 100,
        "currency": "BRL",
    }


def _payment_body(world: World) -> dict[str, Any]:
    return {"account_id": str(world.account.id), "amount": 100, "currency": "BRL", "beneficiary": ACCOUNT_BENEFICIARY}


def _block(world: World) -> None:
    accounts.account_block(account_id=world.account.id, reason="test", changed_by="ops")


def _deliver_events(world: World) -> None:
    """Run what the world's events call for (its deposits and transfer tell the owner)."""
    dispatch(limit=1000)


def _held_for_review(world: World) -> None:
    """The world's transfer (left to a worker) screened under an amount rule it exceeds: in review."""
    fraud.rule_change(name="amount", parameters={"threshold": 50}, changed_by="ops", changer_kind="staff")
    dispatch(limit=1000)
    world.transfer.refresh_from_db()
    assert world.transfer.status == "review"


MATRIX: dict[tuple[str, str], Rule] = {
    ("GET", "/api/v1/customers"): Rule(("customers:read",), LISTING),
    ("POST", "/api/v1/customers"): Rule(
        ("customers:write",),
        STAFF_ONLY,
        201,
        body=lambda w: {"name": "New", "email": "new@example.com", "document": "11144477735"},
    ),
    ("GET", "/api/v1/customers/{customer_id}"): Rule(("customers:read",), OWNER),
    ("POST", "/api/v1/customers/{customer_id}/verify"): Rule(("kyc:review",), STAFF_ONLY),
    ("POST", "/api/v1/customers/{customer_id}/reject"): Rule(("kyc:review",), STAFF_ONLY),
    ("POST", "/api/v1/customers/{customer_id}/erase"): Rule(("customers:erase",), STAFF_ONLY),
    ("GET", "/api/v1/accounts"): Rule(("accounts:read",), LISTING),
    ("POST", "/api/v1/accounts"): Rule(
        ("accounts:write",), OWNER, 201, body=lambda w: {"customer_id": str(w.owner.id)}
    ),
    ("GET", "/api/v1/accounts/{account_id}"): Rule(("accounts:read",), OWNER),
    ("POST", "/api/v1/accounts/{account_id}/block"): Rule(("accounts:write",), STAFF_ONLY),
    ("POST", "/api/v1/accounts/{account_id}/unblock"): Rule(("accounts:write",), STAFF_ONLY, prepare=_block),
    ("POST", "/api/v1/accounts/{account_id}/close"): Rule(("accounts:write",), OWNER),
    ("GET", "/api/v1/accounts/{account_id}/statement"): Rule(("accounts:read",), OWNER),
    ("GET", "/api/v1/transfers"): Rule(("transfers:read",), LISTING),
    ("POST", "/api/v1/transfers"): Rule(("transfers:write",), OWNER, 202, body=_transfer_body),
    ("GET", "/api/v1/transfers/{transfer_id}"): Rule(("transfers:read",), OWNER),
    ("POST", "/api/v1/transfers/batch"): Rule(
        ("transfers:write",),
        OWNER_PER_ITEM,
        207,
        body=lambda w: {"transfers": [{"id": str(uuid.uuid4()), **_transfer_body(w)}]},
    ),
    ("POST", "/api/v1/deposits"): Rule(
        ("deposits:write",),
        STAFF_ONLY,
        201,
        body=lambda w: {"account_id": str(w.account.id), "amount": 500, "currency": "BRL", "reference": "matrix"},
    ),
    ("GET", "/api/v1/ledger/transactions/{transaction_id}"): Rule(("ledger:read",), STAFF_ONLY),
    # The contract names no payments:read: payments are the transfers that leave the bank.
    ("GET", "/api/v1/payments"): Rule(("transfers:read",), LISTING),
    ("POST", "/api/v1/payments"): Rule(("payments:write",), OWNER, 202, body=_payment_body),
    ("GET", "/api/v1/payments/{payment_id}"): Rule(("transfers:read",), OWNER),
    ("GET", "/api/v1/notifications"): Rule(("customers:read",), LISTING, prepare=_deliver_events),
    ("GET", "/api/v1/analytics/summary"): Rule(("analytics:read",), STAFF_ONLY),
    ("GET", "/api/v1/fraud/alerts"): Rule(("fraud:review",), STAFF_ONLY, prepare=_held_for_review),
    ("POST", "/api/v1/fraud/reviews/{transfer_id}/approve"): Rule(
        ("fraud:review",), STAFF_ONLY, prepare=_held_for_review
    ),
    ("POST", "/api/v1/fraud/reviews/{transfer_id}/reject"): Rule(
        ("fraud:review",), STAFF_ONLY, prepare=_held_for_review
    ),
}

# Operations whose path parameter names a customer rather than the owner's account.
PENDING_CUSTOMER_OPERATIONS = {
    ("POST", "/api/v1/customers/{customer_id}/verify"),
    ("POST", "/api/v1/customers/{customer_id}/reject"),
    # The owner has open accounts: erasure waits until they are closed (a customer with none may go).
    ("POST", "/api/v1/customers/{customer_id}/erase"),
}
EMPTY_ACCOUNT_OPERATIONS = {("POST", "/api/v1/accounts/{account_id}/close")}


def schema_operations() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    )


def test_every_operation_in_the_schema_is_classified():
    unclassified = [op for op in schema_operations() if op not in MATRIX]
    assert not unclassified, f"classify these operations in MATRIX: {unclassified}"
    stale = [op for op in MATRIX if op not in schema_operations()]
    assert not stale, f"MATRIX names operations the API no longer has: {stale}"


def test_the_scopes_of_the_operations_are_the_scopes_tokens_may_hold():
    required = {scope for rule in MATRIX.values() for scope in rule.scopes}
    assert required <= KNOWN_SCOPES, f"issue_token and the realm do not know {required - KNOWN_SCOPES}"
    assert required == OPERATION_SCOPES, "fintech/auth/scopes.py: OPERATION_SCOPES are the scopes operations require"
    assert not required & RESERVED_SCOPES


@pytest.fixture
def world(settings) -> World:
    settings.FINTECH_EVENT_DISPATCH = "worker"  # requests below should not run the choreography
    owner = verified_customer("Owner")
    account = open_account(customer=owner, balance=10_000)
    empty = open_account(customer=owner)
    other = open_account(balance=1_000)
    transfer = transactions.transfer_initiate(
        from_account_id=account.id, to_account_id=other.id, amount=100, currency="BRL", initiated_by="owner"
    )
    deposit(other, 50)
    from apps.ledger.models import JournalTransaction

    journal = JournalTransaction.objects.order_by("-posted_at").first()
    assert journal is not None
    payment = payments.payment_initiate(
        account_id=account.id, amount=100, currency="BRL", beneficiary=ACCOUNT_BENEFICIARY, initiated_by="owner"
    )
    return World(owner, account, empty, other, pending_customer(), transfer, journal.id, extra={"payment": payment})


def url_for(world: World, method: str, template: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if (method, template) in PENDING_CUSTOMER_OPERATIONS:
            return str(world.pending.id)
        if (method, template) in EMPTY_ACCOUNT_OPERATIONS:
            return str(world.empty_account.id)
        return world.path_value(name)

    return re.sub(r"{(\w+)}", value, template)


def call(client, method: str, url: str, body: dict[str, Any] | None):
    return client.generic(
        method,
        url,
        data=json.dumps(body or {}) if method != "GET" else "",
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )


def scopes_without(required: tuple[str, ...]) -> str:
    return " ".join(s for s in ALL_STAFF_SCOPES.split() if s not in required)


@pytest.mark.parametrize(("method", "template"), sorted(MATRIX))
def test_each_operation_serves_only_the_right_caller(method, template, world, client_with, anonymous):
    rule = MATRIX[(method, template)]
    url = url_for(world, method, template)
    body = rule.body(world) if rule.body else None
    if rule.prepare:
        rule.prepare(world)

    # No token: 401.
    assert call(anonymous, method, url, body).status_code == 401

    # A staff token with every scope but the required ones: 403 insufficient_scope.
    response = call(client_with(scopes_without(rule.scopes)), method, url, body)
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"

    # Another customer's token, holding every scope (BOLA and BFLA).
    stranger = client_with(ALL_STAFF_SCOPES, customer_id=verified_customer("Stranger").id)
    response = call(stranger, method, url, body)
    if rule.access == STAFF_ONLY:
        assert response.status_code == 403, response.content
    elif rule.access == OWNER:
        assert response.status_code == 404, response.content
    elif rule.access == OWNER_PER_ITEM:
        assert response.status_code == 207, response.content
        assert {item["status"] for item in response.json()["results"]} == {404}, response.content
    else:
        assert response.status_code == 200
        assert str(world.owner.id) not in response.content.decode()
        assert str(world.account.id) not in response.content.decode()

    # The right caller: the owner's own token (staff for staff-only operations).
    if rule.access == STAFF_ONLY:
        right = client_with(" ".join(rule.scopes))
    else:
        right = client_with(" ".join(rule.scopes), customer_id=world.owner.id)
    response = call(right, method, url, body)
    assert response.status_code == rule.success, response.content
    if rule.access == OWNER_PER_ITEM:
        assert {item["status"] for item in response.json()["results"]} <= {201, 202}, response.content
    if rule.access == LISTING:
        assert str(world.owner.id) in response.content.decode() or str(world.account.id) in response.content.decode()
