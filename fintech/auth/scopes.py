"""The OAuth scopes a token may be granted (`manage.py issue_token` refuses any other), as the
realm in deploy/keycloak/realm.json grants them.

The contract also names `fraud:admin`: no operation requires it yet and the realm does not
grant it.
"""

from __future__ import annotations

# Required by an operation of the API today (tests/test_authorization_matrix.py checks it).
OPERATION_SCOPES: frozenset[str] = frozenset(
    {
        "customers:read",
        "customers:write",
        "customers:erase",
        "kyc:review",
        "accounts:read",
        "accounts:write",
        "transfers:read",
        "transfers:write",
        "deposits:write",
        "ledger:read",
        "analytics:read",
        "fraud:review",
        "payments:write",
    }
)
# The contract's scopes of operations not built yet: the realm grants them already, so clients
# can hold them before the operations ship. When one ships, its scope moves up to
# OPERATION_SCOPES.
RESERVED_SCOPES: frozenset[str] = frozenset()

KNOWN_SCOPES: frozenset[str] = OPERATION_SCOPES | RESERVED_SCOPES
