"""The OAuth scopes of the public contract: what a token may be granted, and nothing else."""

from __future__ import annotations

KNOWN_SCOPES: frozenset[str] = frozenset(
    {
        "customers:read",
        "customers:write",
        "kyc:review",
        "accounts:read",
        "accounts:write",
        "transfers:read",
        "transfers:write",
        "payments:write",
        "deposits:write",
        "fraud:review",
        "ledger:read",
        "analytics:read",
    }
)
