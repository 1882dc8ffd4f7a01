from __future__ import annotations

import uuid

import pytest

from fintech.auth.principal import Principal

CUSTOMER = uuid.UUID("6f1c1a52-7d0e-4d1e-9a57-0d6f3c1f2b11")


def test_claims_become_scopes_customer_link_and_client() -> None:
    principal = Principal.from_claims(
        {"sub": "u-1", "scope": "customers:read  accounts:read", "customer_id": str(CUSTOMER), "azp": "mobile"}
    )

    assert principal.subject == "u-1"
    assert principal.scopes == frozenset({"customers:read", "accounts:read"})
    assert principal.customer_id == CUSTOMER
    assert principal.client_id == "mobile"
    assert principal.is_authenticated
    assert principal.is_customer
    assert not principal.is_staff


def test_token_without_customer_link_is_staff_and_sees_every_customer() -> None:
    principal = Principal.from_claims({"sub": "teller-7", "scope": "customers:read"})

    assert principal.is_staff
    assert not principal.is_customer
    assert principal.may_access_customer(uuid.uuid4())
    assert principal.may_access_customer(str(uuid.uuid4()))


def test_customer_token_sees_only_its_own_customer() -> None:
    principal = Principal.from_claims({"sub": "u-1", "customer_id": str(CUSTOMER)})

    assert principal.may_access_customer(CUSTOMER)
    assert principal.may_access_customer(str(CUSTOMER).upper())
    assert not principal.may_access_customer(uuid.uuid4())
    assert not principal.may_access_customer("not-a-uuid")


def test_has_scopes_needs_every_scope_named() -> None:
    principal = Principal.from_claims({"sub": "u-1", "scope": "customers:read accounts:read"})

    assert principal.has_scopes()
    assert principal.has_scopes("customers:read", "accounts:read")
    assert not principal.has_scopes("customers:read", "customers:write")


def test_missing_scope_claim_means_no_scopes() -> None:
    assert Principal.from_claims({"sub": "u-1"}).scopes == frozenset()


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "u-1", "customer_id": "42"},
        {"sub": "u-1", "customer_id": 42},
        {"sub": "u-1", "scope": ["customers:read"]},
        {"sub": ""},
        {"sub": 7},
    ],
)
def test_malformed_claims_are_refused(claims: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        Principal.from_claims(claims)


def test_repr_leaves_out_the_claims() -> None:
    principal = Principal.from_claims({"sub": "u-1", "email": "ana@example.com"})

    assert "ana@example.com" not in repr(principal)
