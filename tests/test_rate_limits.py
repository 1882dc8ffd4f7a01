"""Abuse controls through the real HTTP stack: rate limits per caller, body-size and page-size caps.

The limits are made small here (a customer: 5 reads and 3 writes a minute, staff ten times
that). Without REDIS_URL they are counted in this process; with it (make test's PostgreSQL
pass) in Redis, where the concurrent tests prove the count is atomic across threads.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter

import pytest
from django.db import connections
from rest_framework.test import APIClient

from apps.accounts.api.views import AccountStatementView
from fintech.api.pagination import BankCursorPagination
from tests.factories import deposit, open_account, pending_customer

READS, MONEY, MULTIPLIER = 5, 3, 10


@pytest.fixture(autouse=True)
def small_limits(settings):
    settings.FINTECH_RATE_LIMIT_CUSTOMER_READS = READS
    settings.FINTECH_RATE_LIMIT_CUSTOMER_MONEY = MONEY
    settings.FINTECH_RATE_LIMIT_STAFF_MULTIPLIER = MULTIPLIER
    settings.FINTECH_RATE_LIMIT_WINDOW_SECONDS = 60
    settings.FINTECH_TRUSTED_PROXIES = 0


def customer_client(client_with, customer_id: uuid.UUID | None = None, scopes: str = "customers:read"):
    customer_id = customer_id or uuid.uuid4()
    return client_with(scopes, customer_id=customer_id, subject=f"customer-{customer_id}-{uuid.uuid4()}")


def assert_rate_limited(response, budget: str, quota: int, *, problem: bool = True) -> None:
    assert response.status_code == 429, response.content
    if problem:  # the API's errors; the Swagger UI page answers in HTML
        assert response["Content-Type"].startswith("application/problem+json")
        assert response.json()["code"] == "rate_limited"
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 60
    # The reset the RateLimit field gives is the same point in time as Retry-After.
    assert response["RateLimit"] == f'"{budget}";r=0;t={retry_after}'
    assert response["RateLimit-Policy"] == f'"{budget}";q={quota};w=60'


# --- quotas --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_customer_past_its_read_quota_gets_429_with_retry_after_and_ratelimit_headers(client_with):
    client = customer_client(client_with)
    for remaining in range(READS - 1, -1, -1):
        response = client.get("/api/v1/customers")
        assert response.status_code == 200
        assert response["RateLimit-Policy"] == f'"read";q={READS};w=60'
        assert response["RateLimit"].startswith(f'"read";r={remaining};t=')
    assert_rate_limited(client.get("/api/v1/customers"), "read", READS)


@pytest.mark.django_db
def test_every_token_of_one_customer_draws_on_the_same_quota(client_with):
    customer_id = uuid.uuid4()
    phone, laptop = customer_client(client_with, customer_id), customer_client(client_with, customer_id)
    for _ in range(READS):
        assert phone.get("/api/v1/customers").status_code == 200
    assert_rate_limited(laptop.get("/api/v1/customers"), "read", READS)
    assert customer_client(client_with).get("/api/v1/customers").status_code == 200  # another customer


@pytest.mark.django_db
def test_money_moving_requests_have_their_own_budget_and_reads_still_pass(client_with):
    client = customer_client(client_with, scopes="transfers:read transfers:write")
    for n in range(MONEY):
        refused_as_bad_input = client.post(
            "/api/v1/transfers", {"amount": 1}, format="json", HTTP_IDEMPOTENCY_KEY=f"k-{n}"
        )
        assert refused_as_bad_input.status_code == 400  # counted all the same: the throttle comes first
        assert refused_as_bad_input["RateLimit-Policy"] == f'"money";q={MONEY};w=60'
    assert_rate_limited(
        client.post("/api/v1/transfers", {"amount": 1}, format="json", HTTP_IDEMPOTENCY_KEY="k-last"), "money", MONEY
    )
    read = client.get("/api/v1/transfers")
    assert read.status_code == 200
    assert read["RateLimit"].startswith(f'"read";r={READS - 1};')


@pytest.mark.django_db
def test_a_body_that_is_not_an_object_is_counted_before_it_is_refused(client_with):
    customer = pending_customer()
    client = customer_client(client_with, customer.id, scopes="accounts:write")
    account = open_account(balance=0)  # another customer's: the body is refused before the view looks
    url = f"/api/v1/accounts/{account.id}/close"
    for _ in range(MONEY):
        malformed = client.post(url, "false", content_type="application/json")
        assert (malformed.status_code, malformed.json()["code"]) == (400, "malformed_request")
    assert_rate_limited(client.post(url, "false", content_type="application/json"), "money", MONEY)


@pytest.mark.django_db
def test_staff_tokens_get_ten_times_the_customer_quota(client_with):
    staff = client_with("customers:read", subject="clerk-7")
    statuses = Counter(staff.get("/api/v1/customers").status_code for _ in range(READS * MULTIPLIER + 1))
    assert statuses == {200: READS * MULTIPLIER, 429: 1}
    other_clerk = client_with("customers:read", subject="clerk-8")
    assert other_clerk.get("/api/v1/customers").status_code == 200


# --- addresses of anonymous callers --------------------------------------------------------


@pytest.mark.django_db
def test_a_spoofed_forwarded_for_does_not_reset_the_quota_without_trusted_proxies(anonymous):
    for n in range(READS):
        assert anonymous.get("/api/docs/", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code == 200
    refused = anonymous.get("/api/docs/", HTTP_X_FORWARDED_FOR="198.51.100.250")
    assert_rate_limited(refused, "read", READS, problem=False)


@pytest.mark.django_db
def test_behind_one_trusted_proxy_only_the_address_it_saw_counts(anonymous, settings):
    settings.FINTECH_TRUSTED_PROXIES = 1
    for n in range(READS):
        spoofed = anonymous.get("/api/docs/", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}, 203.0.113.7")
        assert spoofed.status_code == 200
    refused = anonymous.get("/api/docs/", HTTP_X_FORWARDED_FOR="198.51.100.250, 203.0.113.7")
    assert_rate_limited(refused, "read", READS, problem=False)
    # Another client behind the same proxy has its own quota.
    assert anonymous.get("/api/docs/", HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 200


# --- when Redis does not answer ------------------------------------------------------------


@pytest.mark.django_db
def test_without_redis_the_bank_stays_open_and_each_process_still_holds_the_quota(client_with, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    client = customer_client(client_with)
    statuses = [client.get("/api/v1/customers").status_code for _ in range(READS + 1)]
    assert statuses == [200] * READS + [429]


# --- twenty clients at twice their quota ---------------------------------------------------

CLIENTS, QUOTA = 20, 10


def burst_of_clients(client_with) -> list[Counter[int]]:
    """Twenty customers, one thread each, all released together, each sending twice its quota."""
    clients = [customer_client(client_with) for _ in range(CLIENTS)]
    barrier = threading.Barrier(CLIENTS)
    results: list[Counter[int]] = [Counter() for _ in clients]
    failures: list[BaseException] = []

    def run(index: int, client: APIClient) -> None:
        try:
            connections["default"].ensure_connection()
            barrier.wait(timeout=60)
            for _ in range(2 * QUOTA):
                results[index][client.get("/api/v1/customers").status_code] += 1
        except BaseException as error:
            failures.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, c), daemon=True) for i, c in enumerate(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, 120 - (time.monotonic() - started)))
    assert not any(thread.is_alive() for thread in threads), "a client did not finish"
    assert not failures, failures[0]
    return results


def assert_exactly_the_quota_through(results: list[Counter[int]]) -> None:
    for counts in results:
        assert counts == {200: QUOTA, 429: QUOTA}, counts  # never more than the quota, and no 5xx


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_clients_at_twice_their_quota_get_exactly_the_quota_in_process(client_with, settings):
    settings.REDIS_URL = ""
    settings.FINTECH_RATE_LIMIT_CUSTOMER_READS = QUOTA
    assert_exactly_the_quota_through(burst_of_clients(client_with))


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_clients_at_twice_their_quota_get_exactly_the_quota_through_redis(client_with, settings):
    settings.FINTECH_RATE_LIMIT_CUSTOMER_READS = QUOTA
    assert_exactly_the_quota_through(burst_of_clients(client_with))


# --- request caps --------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_body_over_the_limit_is_refused_with_413_before_it_is_parsed(staff):
    body = json.dumps({"name": "x" * 100_000, "email": "big@example.com", "document": "52998224725"})
    response = staff.post("/api/v1/customers", body, content_type="application/json")
    assert response.status_code == 413
    assert response["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "request_too_large"
    assert problem["max_bytes"] == 64 * 1024


@pytest.mark.django_db
def test_a_body_under_the_limit_is_read_as_usual(staff, settings):
    settings.FINTECH_MAX_BODY_BYTES = 200_000
    body = json.dumps({"name": "x" * 100_000, "email": "big@example.com", "document": "52998224725"})
    response = staff.post("/api/v1/customers", body, content_type="application/json")
    assert response.status_code == 400  # the serializer's own length rule, not the size cap
    assert response.json()["code"] == "validation_error"


@pytest.mark.django_db
def test_a_list_page_size_above_the_maximum_is_clamped(staff, monkeypatch):
    monkeypatch.setattr(BankCursorPagination, "max_page_size", 2)
    for name in ("Ana", "Bia", "Caio"):
        pending_customer(name)
    page = staff.get("/api/v1/customers?page_size=100000")
    assert page.status_code == 200
    assert len(page.json()["results"]) == 2
    assert page.json()["next"]


@pytest.mark.django_db
def test_a_statement_page_size_above_the_maximum_is_clamped(staff, monkeypatch):
    monkeypatch.setattr(AccountStatementView, "max_page_size", 2)
    account = open_account(balance=100)
    deposit(account, 200)
    deposit(account, 300)
    page = staff.get(f"/api/v1/accounts/{account.id}/statement?page_size=100000")
    assert page.status_code == 200
    assert len(page.json()["results"]) == 2
    assert page.json()["next"]


def test_the_default_page_size_caps_are_200():
    assert BankCursorPagination.max_page_size == 200
    assert AccountStatementView.max_page_size == 200
