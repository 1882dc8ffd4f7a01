"""Who and what the rate limits count, and the sliding-window log they count with."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from fintech.api import throttling
from fintech.api.throttling import (
    MONEY,
    READ,
    LocalWindowLog,
    RateLimitState,
    Usage,
    budget_of,
    client_address,
    partition_of,
)
from fintech.auth.principal import Principal

CUSTOMER = uuid.UUID("5b0c7a34-2f0e-4b8e-9d53-7c1a2e9f4d10")


def principal(subject: str, customer_id: uuid.UUID | None = None) -> Principal:
    return Principal(subject=subject, scopes=frozenset(), customer_id=customer_id, client_id="mobile-app")


def drf_request(method: str = "get", user: Principal | None = None, **meta: str) -> Request:
    request = Request(getattr(APIRequestFactory(), method)("/api/v1/anything", **meta))
    if user is not None:
        request.user = user  # type: ignore[assignment]  # the bank's principal, as authentication sets it
    return request


class View:
    pass


class ReadByPostView:
    throttle_budget = "read"


# --- budgets -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "head", "options"])
def test_safe_methods_spend_the_read_budget(method):
    assert budget_of(drf_request(method), View()) == READ


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_every_write_spends_the_money_budget(method):
    assert budget_of(drf_request(method), View()) == MONEY


def test_a_view_may_declare_its_budget():
    assert budget_of(drf_request("post"), ReadByPostView()) == READ


def test_an_unknown_declared_budget_is_a_configuration_error():
    view = View()
    view.throttle_budget = "gold"  # type: ignore[attr-defined]
    with pytest.raises(ImproperlyConfigured):
        budget_of(drf_request("get"), view)


# --- partitions ----------------------------------------------------------------------------


def test_every_token_of_one_customer_shares_the_customer_partition():
    web = partition_of(drf_request(user=principal("session-web", CUSTOMER)))
    phone = partition_of(drf_request(user=principal("session-phone", CUSTOMER)))
    assert web == phone
    assert web.key == f"customer:{CUSTOMER}"
    assert web.multiplier == 1


def test_staff_and_service_tokens_are_counted_per_subject_with_the_multiplier(settings):
    settings.FINTECH_RATE_LIMIT_STAFF_MULTIPLIER = 7
    clerk = partition_of(drf_request(user=principal("clerk-1")))
    other = partition_of(drf_request(user=principal("clerk-2")))
    assert clerk.key == "staff:clerk-1"
    assert other.key == "staff:clerk-2"
    assert clerk.multiplier == 7


def test_a_customer_token_is_not_keyed_by_its_address(settings):
    settings.FINTECH_TRUSTED_PROXIES = 1
    one = partition_of(drf_request(user=principal("s", CUSTOMER), HTTP_X_FORWARDED_FOR="198.51.100.1"))
    two = partition_of(drf_request(user=principal("s", CUSTOMER), HTTP_X_FORWARDED_FOR="198.51.100.2"))
    assert one == two


def test_an_anonymous_caller_is_keyed_by_its_address():
    partition = partition_of(drf_request(REMOTE_ADDR="192.0.2.10"))
    assert partition.key == "address:192.0.2.10"


def test_quotas_come_from_settings(settings):
    settings.FINTECH_RATE_LIMIT_CUSTOMER_READS = 9
    settings.FINTECH_RATE_LIMIT_CUSTOMER_MONEY = 2
    settings.FINTECH_RATE_LIMIT_STAFF_MULTIPLIER = 10
    customer = partition_of(drf_request(user=principal("s", CUSTOMER)))
    staff = partition_of(drf_request(user=principal("clerk")))
    assert (throttling.quota(READ, customer), throttling.quota(MONEY, customer)) == (9, 2)
    assert (throttling.quota(READ, staff), throttling.quota(MONEY, staff)) == (90, 20)


# --- client addresses behind proxies -------------------------------------------------------


def address(trusted: int, *, peer: str = "10.0.0.5", forwarded: str | None = None) -> str:
    meta: dict[str, Any] = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_address(RequestFactory().get("/", **meta), trusted_proxies=trusted)


def test_without_trusted_proxies_the_forwarded_header_is_ignored():
    assert address(0, peer="192.0.2.7", forwarded="203.0.113.99") == "192.0.2.7"


def test_one_trusted_proxy_names_the_client_in_the_rightmost_entry():
    assert address(1, forwarded="203.0.113.7") == "203.0.113.7"


def test_entries_the_client_wrote_left_of_the_trusted_hop_never_change_the_key():
    keys = {address(1, forwarded=f"198.51.100.{n}, 203.0.113.7") for n in range(1, 6)}
    assert keys == {"203.0.113.7"}


def test_two_trusted_proxies_take_the_second_entry_from_the_right():
    assert address(2, forwarded="6.6.6.6, 203.0.113.7, 10.1.1.1") == "203.0.113.7"


def test_a_header_shorter_than_the_proxy_chain_falls_back_to_the_peer():
    assert address(2, peer="10.0.0.5", forwarded="203.0.113.7") == "10.0.0.5"
    assert address(1, peer="10.0.0.5") == "10.0.0.5"


def test_an_unparsable_entry_falls_back_to_the_peer():
    assert address(1, peer="10.0.0.5", forwarded="unknown") == "10.0.0.5"


def test_ports_and_mapped_addresses_are_normalised():
    assert address(1, forwarded="203.0.113.7:4711") == "203.0.113.7"
    assert address(1, forwarded="[2001:db8::1]:443") == "2001:db8::/64"
    assert address(0, peer="::ffff:192.0.2.9") == "192.0.2.9"


def test_an_ipv6_client_is_counted_per_64_block():
    assert address(1, forwarded="2001:db8:0:1::1") == address(1, forwarded="2001:db8:0:1:ffff::9")
    assert address(1, forwarded="2001:db8:0:1::1") != address(1, forwarded="2001:db8:0:2::1")


# --- the sliding-window log ----------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_log_lets_the_quota_through_and_refuses_the_next():
    log = LocalWindowLog(Clock())
    outcomes = [log.consume("k", limit=3, window_ms=60_000) for _ in range(4)]
    assert [usage.allowed for usage in outcomes] == [True, True, True, False]
    assert [usage.remaining for usage in outcomes] == [2, 1, 0, 0]
    assert outcomes[-1].reset_ms == 60_000


def test_a_unit_frees_when_the_oldest_request_leaves_the_window():
    clock = Clock()
    log = LocalWindowLog(clock)
    log.consume("k", limit=2, window_ms=60_000)
    clock.now += 20
    log.consume("k", limit=2, window_ms=60_000)
    clock.now += 39.5
    refused = log.consume("k", limit=2, window_ms=60_000)
    assert not refused.allowed
    assert refused.reset_ms == 500  # the first request leaves the window in half a second
    clock.now += 0.5
    assert log.consume("k", limit=2, window_ms=60_000).allowed
    assert not log.consume("k", limit=2, window_ms=60_000).allowed  # the second is still in it


def test_no_window_ever_holds_more_than_the_quota():
    clock = Clock()
    log = LocalWindowLog(clock)
    allowed_at = []
    for _ in range(600):  # a request every 0.25 s for 150 s against 10 per 60 s
        if log.consume("k", limit=10, window_ms=60_000).allowed:
            allowed_at.append(clock.now)
        clock.now += 0.25
    assert max(sum(1 for t in allowed_at if start <= t < start + 60) for start in allowed_at) == 10


def test_partitions_do_not_share_a_log():
    log = LocalWindowLog(Clock())
    assert log.consume("a", limit=1, window_ms=1000).allowed
    assert log.consume("b", limit=1, window_ms=1000).allowed
    assert not log.consume("a", limit=1, window_ms=1000).allowed


def test_idle_partitions_are_forgotten():
    clock = Clock()
    log = LocalWindowLog(clock)
    for n in range(LocalWindowLog._SWEEP_EVERY - 1):
        log.consume(f"caller-{n}", limit=1, window_ms=1000)
    clock.now += 2
    log.consume("late", limit=1, window_ms=1000)  # the 1024th call sweeps
    assert list(log._logs) == ["late"]


def test_concurrent_checks_of_one_partition_let_exactly_the_quota_through():
    log = LocalWindowLog()
    quota, threads, attempts = 50, 20, 5  # 100 attempts against 50
    barrier = threading.Barrier(threads)
    allowed: list[bool] = []

    def hammer() -> None:
        barrier.wait()
        allowed.extend(log.consume("one", limit=quota, window_ms=60_000).allowed for _ in range(attempts))

    workers = [threading.Thread(target=hammer) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sum(allowed) == quota


# --- headers -------------------------------------------------------------------------------


def test_headers_follow_the_ietf_draft_syntax():
    state = RateLimitState(budget=READ, quota=600, window_seconds=60, usage=Usage(True, 599, 59_001))
    assert state.headers() == {"RateLimit-Policy": '"read";q=600;w=60', "RateLimit": '"read";r=599;t=60'}


def test_a_refusal_never_tells_the_client_to_retry_in_zero_seconds():
    state = RateLimitState(budget=MONEY, quota=60, window_seconds=60, usage=Usage(False, 0, 3))
    assert state.reset_seconds == 1


# --- when Redis does not answer ------------------------------------------------------------


def test_an_unreachable_redis_leaves_the_bank_open_but_limited_per_process(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.FINTECH_RATE_LIMIT_REDIS_RETRY_SECONDS = 30
    outcomes = [throttling.consume("fallback", limit=2, window_ms=60_000) for _ in range(3)]
    assert [usage.allowed for usage in outcomes] == [True, True, False]
    # Redis is not asked again until the retry delay passed: no timeout on every request.
    assert not throttling._redis_log(settings.REDIS_URL).available
