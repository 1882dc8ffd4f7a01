"""Fixtures shared by every test: API clients holding tokens from the dev issuer."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from fintech.auth.tokens import issue_dev_token

ALL_STAFF_SCOPES = (
    "customers:read customers:write customers:erase kyc:review accounts:read accounts:write transfers:read "
    "transfers:write payments:write deposits:write fraud:review ledger:read analytics:read"
)

ClientFactory = Callable[..., APIClient]


@pytest.fixture(autouse=True)
def _books_reconcile_after_each_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that touched the database, the ledger still proves itself: whatever the
    test did through the bank's code, money was neither created nor lost."""
    yield
    uses_db = any(name in request.fixturenames for name in ("db", "transactional_db", "django_db_setup")) or (
        request.node.get_closest_marker("django_db") is not None
    )
    if not uses_db or request.node.get_closest_marker("corrupts_books"):
        return
    from apps.ledger.reconciliation import reconcile_ledger

    report = reconcile_ledger()
    assert report.ok, "the books do not reconcile after this test:\n" + "\n".join(report.problems)


@pytest.fixture
def client_with() -> ClientFactory:
    """`client_with("customers:read", customer_id=...)`: an API client holding such a token."""

    def make(scopes: str, *, customer_id: uuid.UUID | None = None, subject: str | None = None) -> APIClient:
        token = issue_dev_token(
            subject=subject or (f"customer-{customer_id}" if customer_id else "staff-tester"),
            scopes=scopes,
            customer_id=customer_id,
        )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    return make


@pytest.fixture
def staff(client_with: ClientFactory) -> APIClient:
    """A back-office client with every scope."""
    return client_with(ALL_STAFF_SCOPES)


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


@pytest.fixture
def payments_answered_by_the_test(settings: Any) -> Iterator[None]:
    """The payment network is outside the bank (the test answers for it) and the test plays the
    screening's decisions itself (tests/payments_support.py)."""
    from tests.payments_support import screening_by_the_test

    settings.FINTECH_PAYMENT_NETWORK = "kafka"
    with screening_by_the_test():
        yield


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """Every test starts with untouched rate-limit budgets (the suite reuses one staff subject)."""
    from fintech.api.throttling import reset_rate_limits

    reset_rate_limits()


def require_postgres() -> None:
    """Tests marked `postgres` prove a guarantee of the system of record: fail, never skip."""
    if connection.vendor != "postgresql":
        pytest.fail("This test needs PostgreSQL: run it with DATABASE_URL set (make test does).")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        pytest.fail("This test needs PostgreSQL: run it with DATABASE_URL set (make test does).", pytrace=False)
    if item.get_closest_marker("kafka") and not _kafka_answers():
        pytest.fail(
            "This test needs the Kafka broker: run it with KAFKA_BOOTSTRAP_SERVERS set to a running broker "
            "(make test starts one).",
            pytrace=False,
        )
    if item.get_closest_marker("redis") and not _redis_answers():
        pytest.fail(
            "This test needs Redis: run it with REDIS_URL set to a running server (make test starts one).",
            pytrace=False,
        )
    if item.get_closest_marker("keycloak"):
        from tests.keycloak_support import keycloak_answers

        if not keycloak_answers():
            pytest.fail(
                "This test needs Keycloak: run it with FINTECH_TEST_KEYCLOAK_ISSUER set to the fintech realm of a "
                "running Keycloak, e.g. http://127.0.0.1:58080/realms/fintech (make test starts one).",
                pytrace=False,
            )


def _redis_answers() -> bool:
    import redis
    from django.conf import settings

    if not settings.REDIS_URL:
        return False
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        with client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def _kafka_answers() -> bool:
    from django.conf import settings

    from fintech.api.health import _check_tcp

    servers = settings.KAFKA_BOOTSTRAP_SERVERS
    return bool(servers) and bool(_check_tcp(servers)["ok"])
