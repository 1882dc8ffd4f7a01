from __future__ import annotations

import uuid
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from pytest_django.fixtures import Settings

from fintech.auth.management.commands.issue_token import Command
from fintech.auth.scopes import KNOWN_SCOPES
from fintech.auth.tokens import default_validator


def _issue(*args: str) -> str:
    out = StringIO()
    # The command object, not its name: it resolves whether or not fintech.auth is in INSTALLED_APPS.
    call_command(Command(), *args, stdout=out)
    return out.getvalue()


def test_printed_token_is_accepted_by_the_api_validator() -> None:
    customer = uuid.uuid4()

    output = _issue("--sub", "ana", "--scopes", "customers:read accounts:read", "--customer", str(customer))

    token = output.strip()
    assert output == token + "\n"
    principal = default_validator().validate(token)
    assert principal.subject == "ana"
    assert principal.scopes == frozenset({"customers:read", "accounts:read"})
    assert principal.customer_id == customer


def test_ttl_sets_the_lifetime() -> None:
    principal = default_validator().validate(_issue("--sub", "ops", "--scopes", "ledger:read", "--ttl", "120").strip())

    assert principal.claims["exp"] - principal.claims["iat"] == 120
    assert principal.is_staff


def test_every_contract_scope_can_be_issued() -> None:
    token = _issue("--sub", "ops", "--scopes", " ".join(sorted(KNOWN_SCOPES))).strip()

    assert default_validator().validate(token).scopes == KNOWN_SCOPES
    assert len(KNOWN_SCOPES) == 13


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sub", "ana", "--scopes", "customers:read customers:delete"], "unknown scope"),
        (["--sub", "ana", "--scopes", "customers:read", "--customer", "42"], "must be a UUID"),
        (["--sub", "ana", "--scopes", "customers:read", "--ttl", "0"], "positive"),
        (["--sub", " ", "--scopes", "customers:read"], "must not be empty"),
    ],
)
def test_bad_arguments_are_refused(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        _issue(*args)


def test_refused_when_a_real_issuer_is_configured(settings: Settings) -> None:
    settings.OIDC_ISSUER = "https://id.bank.test/realms/fintech"

    with pytest.raises(CommandError, match="OIDC_ISSUER is set"):
        _issue("--sub", "ana", "--scopes", "customers:read")
