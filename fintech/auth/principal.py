"""Who is calling: the verified claims of a bearer token, in the bank's terms."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

CUSTOMER_CLAIM = "customer_id"
SCOPE_CLAIM = "scope"


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    scopes: frozenset[str]
    customer_id: uuid.UUID | None
    client_id: str | None
    # Left out of repr and equality: claims may carry personal data (name, email) that must not
    # reach logs, and two principals are the same caller whatever else the issuer added.
    claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), repr=False, compare=False)

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Principal:
        """The principal of already verified claims; ValueError when a claim has the wrong shape."""
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise ValueError("sub must be a non-empty string")
        raw_scope = claims.get(SCOPE_CLAIM, "")
        if not isinstance(raw_scope, str):
            raise ValueError(f"{SCOPE_CLAIM} must be a space-separated string")
        raw_customer = claims.get(CUSTOMER_CLAIM)
        customer_id: uuid.UUID | None = None
        if raw_customer is not None:
            if not isinstance(raw_customer, str):
                raise ValueError(f"{CUSTOMER_CLAIM} must be a UUID string")
            customer_id = uuid.UUID(raw_customer)  # ValueError on anything else
        # Keycloak names the client `azp`; RFC 9068 access tokens name it `client_id`.
        client_id = claims.get("azp") or claims.get("client_id")
        return cls(
            subject=subject,
            scopes=frozenset(raw_scope.split()),
            customer_id=customer_id,
            client_id=str(client_id) if client_id is not None else None,
            claims=MappingProxyType(dict(claims)),
        )

    # DRF and Django treat request.user as a user object; these are the parts they read.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    @property
    def pk(self) -> str:
        # DRF's UserRateThrottle keys its buckets on request.user.pk.
        return self.subject

    @property
    def is_customer(self) -> bool:
        return self.customer_id is not None

    @property
    def is_staff(self) -> bool:
        return self.customer_id is None

    @property
    def kind(self) -> str:
        """`customer`, `service` or `staff`. A customer's token names the customer; a
        client-credentials token is the client itself (RFC 9068: its subject is the client id;
        Keycloak names its user service-account-<client>); any other token is a back-office
        person's."""
        if self.customer_id is not None:
            return "customer"
        username = str(self.claims.get("preferred_username") or "")
        if self.subject == self.client_id or username.startswith("service-account-"):
            return "service"
        return "staff"

    def has_scopes(self, *scopes: str) -> bool:
        return all(scope in self.scopes for scope in scopes)

    def may_access_customer(self, customer_id: uuid.UUID | str) -> bool:
        if self.customer_id is None:
            return True
        try:
            wanted = customer_id if isinstance(customer_id, uuid.UUID) else uuid.UUID(customer_id)
        except ValueError:
            return False
        return wanted == self.customer_id
