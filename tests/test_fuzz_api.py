"""The API fuzzed from its own live OpenAPI schema (schemathesis), as every kind of caller.

Every operation of `/api/schema/` gets requests the schema calls valid and requests it calls
invalid (schemathesis's negative mode), from a staff token with every scope, a customer's token
with the customer's scopes, a token without scopes and no token at all. Path parameters are
either generated or the ids of a real customer's resources, so that requests get past 404.
Whatever arrives:

- no answer is a 5xx (`not_a_server_error`);
- every answer is one the schema documents: its status, its content type, its body;
- a request the schema calls invalid is never answered 2xx, and one it calls valid is never
  refused as malformed (400): the schema says exactly what the server accepts;
- the books still balance afterwards (the suite's autouse reconciliation).

A second test walks the operations as schemathesis's state machine, following the links it
infers from the schema (a created resource's id into the operations that take it).

The budget is CI-sized: `FINTECH_FUZZ_EXAMPLES` examples per operation, mode and caller (6 by
default); `make fuzz` runs twenty times as many.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from apps.ledger.models import JournalTransaction
from apps.payments import services as payments
from apps.transactions import services as transactions
from fintech.auth.scopes import KNOWN_SCOPES
from fintech.auth.tokens import issue_dev_token
from tests.factories import open_account, verified_customer
from tests.keycloak_support import CUSTOMER_SCOPES
from tests.payments_support import ACCOUNT_BENEFICIARY

EXAMPLES = int(os.environ.get("FINTECH_FUZZ_EXAMPLES", "6"))

# The WSGI handler runs in this thread on the test's connection: each request may commit, and
# the events it publishes are dispatched after the commit, as in the running bank.
# The time allowed grows with the budget (on two shared cores a request may take 100 ms).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300 * EXAMPLES)]


@pytest.fixture
def bank(settings) -> Iterator[dict[str, str]]:
    """A customer with money, a transfer, a ledger transaction and a payment: the path ids."""
    settings.FINTECH_RATE_LIMIT_CUSTOMER_READS = 1_000_000
    settings.FINTECH_RATE_LIMIT_CUSTOMER_MONEY = 1_000_000
    # Django's test client does the same: the handler must not close the test's connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        owner = verified_customer("Fuzz Owner")
        account = open_account(customer=owner, balance=1_000_000)
        other = open_account(balance=1_000)
        transfer = transactions.transfer_initiate(
            from_account_id=account.id, to_account_id=other.id, amount=100, currency="BRL", initiated_by="fuzz"
        )
        journal = JournalTransaction.objects.order_by("-posted_at").first()
        assert journal is not None
        payment = payments.payment_initiate(
            account_id=account.id, amount=100, currency="BRL", beneficiary=ACCOUNT_BENEFICIARY, initiated_by="fuzz"
        )
        yield {
            "customer_id": str(owner.id),
            "account_id": str(account.id),
            "transfer_id": str(transfer.id),
            "transaction_id": str(journal.id),
            "payment_id": str(payment.id),
        }
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def token_of(caller: str, bank: dict[str, str]) -> str | None:
    if caller == "staff":
        return issue_dev_token(subject="fuzz-staff", scopes=" ".join(sorted(KNOWN_SCOPES)))
    if caller == "customer":
        return issue_dev_token(
            subject="fuzz-customer", scopes=" ".join(sorted(CUSTOMER_SCOPES)), customer_id=bank["customer_id"]
        )
    if caller == "scopeless":
        return issue_dev_token(subject="fuzz-scopeless", scopes="")
    return None


def live_schema() -> Any:
    return schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler())


def budget(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
        derandomize=True,
        database=None,
    )


def cases(
    operation: Any, mode: GenerationMode, bank: dict[str, str], headers: dict[str, str]
) -> st.SearchStrategy[Any]:
    """Generated path ids (mostly 404s) or the real ones, which get a request into the view. The
    caller's token is fixed, so a negative case never counts a dropped token as its invalid part."""
    generated: st.SearchStrategy[Any] = operation.as_strategy(generation_mode=mode, headers=headers)
    names = [parameter.name for parameter in operation.path_parameters]
    if not names:
        return generated
    real = operation.as_strategy(
        generation_mode=mode, headers=headers, path_parameters={name: bank[name] for name in names}
    )
    return st.one_of(real, generated)


# Rules no JSON Schema states, each the field's owner's: a CPF's check digits, a bank's ISPB, a
# PIX key's kind, a period's `from` before its `to`, the customer a staff caller must name. A
# schema-valid request may be refused (400) for these fields and no other.
RULES_BEYOND_THE_SCHEMA: dict[tuple[str, str], set[str]] = {
    ("POST", "/api/v1/customers"): {"document", "birth_date"},
    ("POST", "/api/v1/payments"): {"beneficiary"},
    ("GET", "/api/v1/notifications"): {"customer_id"},
    ("GET", "/api/v1/fraud/alerts"): {"from"},
    ("GET", "/api/v1/accounts/{account_id}/statement"): {"from"},
    ("GET", "/api/v1/analytics/summary"): {"from"},
}


def valid_requests_are_not_refused_as_malformed(ctx: Any, response: Any, case: Any) -> bool | None:
    """A request the schema calls valid gets no 400, unless a field with a rule beyond the schema
    (RULES_BEYOND_THE_SCHEMA) is what it names. (schemathesis's positive_data_acceptance, with the
    bank's exceptions.)"""
    if case.meta is None or not case.meta.generation.mode.is_positive or response.status_code != 400:
        return None
    refused = {field.split(".")[0] for field in response.json().get("errors") or {"(no field)": []}}
    allowed = RULES_BEYOND_THE_SCHEMA.get((case.method.upper(), case.operation.path), set())
    assert refused <= allowed, f"a schema-valid request refused (400) for {sorted(refused - allowed)}: {response.text}"
    return None


@pytest.mark.parametrize("caller", ["staff", "customer", "scopeless", "anonymous"])
def test_every_operation_answers_every_caller_within_its_schema(bank, caller):
    token = token_of(caller, bank)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    operations = [result.ok() for result in live_schema().get_all_operations()]
    assert len(operations) >= 25, "the schema lists fewer operations than the bank has"
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @budget(EXAMPLES)
            @given(case=cases(operation, mode, bank, headers))
            def exercise(case: Any) -> None:
                case.call_and_validate(
                    excluded_checks=[positive_data_acceptance],
                    additional_checks=[valid_requests_are_not_refused_as_malformed],
                )

            try:
                exercise()
            except (Exception, BaseExceptionGroup) as error:  # every operation's failures, not the first's
                failures.append(f"{operation.method.upper()} {operation.path} ({mode}):\n{str(error)[:3000]}")
    assert not failures, f"{len(failures)} operation(s) answered outside their schema:\n\n" + "\n\n".join(failures)


@pytest.mark.parametrize("caller", ["staff", "customer"])
def test_linked_operations_answer_within_their_schema(bank, caller):
    """Sequences of calls along the links schemathesis infers from the schema: a customer
    onboarded, then verified, given an account, a deposit, a transfer, read back..."""
    token = token_of(caller, bank)
    schema = live_schema()
    # Sequences of valid requests: the invalid ones are each operation's test above.
    schema.config.generation.update(modes=[GenerationMode.POSITIVE])
    workflow = schema.as_state_machine()
    assert schema.statistic.transitions.total > 0, "schemathesis inferred no link between operations"

    linked: list[str] = []

    class AsCaller(workflow):  # type: ignore[misc,valid-type]
        def step(self, input: Any) -> Any:
            if input.transition is not None and input.is_applied:
                linked.append(input.case.operation.label)
            return super().step(input)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": {"Authorization": f"Bearer {token}"}}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(
                response,
                headers=self.get_call_kwargs(case)["headers"],
                excluded_checks=[positive_data_acceptance],
                additional_checks=[valid_requests_are_not_refused_as_malformed],
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    AsCaller.run(
        settings=settings(
            max_examples=2 * EXAMPLES,  # a sequence's first steps have no link to follow
            stateful_step_count=10,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate],
            derandomize=True,
            database=None,
        )
    )
    assert linked, "no step followed a link: the run tested operations one by one only"
