"""The sliding-window log in the real Redis: one atomic step per check, shared by every server."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings

from fintech.api.throttling import RedisWindowLog

pytestmark = pytest.mark.redis


@pytest.fixture
def log() -> Iterator[RedisWindowLog]:
    store = RedisWindowLog(settings.REDIS_URL, timeout=5)
    yield store
    store.clear(settings.FINTECH_RATE_LIMIT_KEY_PREFIX)
    store.close()


@pytest.fixture
def key() -> str:
    return f"{settings.FINTECH_RATE_LIMIT_KEY_PREFIX}unit:{uuid.uuid4()}"


def test_twenty_threads_on_one_key_let_exactly_the_quota_through(log, key):
    quota, threads, attempts = 50, 20, 5  # 100 attempts, twice the quota, all at once
    barrier = threading.Barrier(threads)
    allowed: list[bool] = []

    def hammer() -> None:
        barrier.wait()
        allowed.extend(log.consume(key, limit=quota, window_ms=60_000).allowed for _ in range(attempts))

    workers = [threading.Thread(target=hammer) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(allowed) == threads * attempts
    assert sum(allowed) == quota


def test_a_refusal_says_when_the_oldest_request_leaves_the_window(log, key):
    first = log.consume(key, limit=2, window_ms=60_000)
    second = log.consume(key, limit=2, window_ms=60_000)
    refused = log.consume(key, limit=2, window_ms=60_000)
    assert (first.allowed, second.allowed, refused.allowed) == (True, True, False)
    assert (first.remaining, second.remaining, refused.remaining) == (1, 0, 0)
    assert 59_000 < refused.reset_ms <= 60_000


def test_the_window_slides(log, key):
    assert log.consume(key, limit=1, window_ms=300).allowed
    assert not log.consume(key, limit=1, window_ms=300).allowed
    time.sleep(0.35)
    assert log.consume(key, limit=1, window_ms=300).allowed


def test_the_log_expires_with_its_window(log, key):
    log.consume(key, limit=5, window_ms=60_000)
    client = redis.Redis.from_url(settings.REDIS_URL)
    with client:
        assert 0 < client.pttl(key) <= 60_000


def test_the_script_is_loaded_again_after_redis_forgot_it(log, key):
    log.consume(key, limit=5, window_ms=60_000)
    client = redis.Redis.from_url(settings.REDIS_URL)
    with client:
        client.script_flush()
    assert log.consume(key, limit=5, window_ms=60_000).remaining == 3
