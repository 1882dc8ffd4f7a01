"""Rate limits per caller: sliding-window logs, atomic in Redis (one Lua script) or in this
process, two budgets ("read" for GET, HEAD and OPTIONS; "money" for every write) and the IETF
RateLimit headers. A customer-linked token is counted per customer, a staff or service token per
subject, an anonymous caller per address (per /64 for IPv6, through `FINTECH_TRUSTED_PROXIES`
proxies). When Redis does not answer, each process limits on its own for a while. Who is
counted, what, how much and why: docs/architecture.md, "Abuse controls".
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from fintech.auth.principal import Principal

logger = logging.getLogger(__name__)

READ = "read"
MONEY = "money"
BUDGETS = frozenset({READ, MONEY})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Where the throttle leaves its verdict for RateLimitHeadersMiddleware (on the Django request).
_STATE_ATTRIBUTE = "fintech_rate_limit"

REFUSED = Counter("fintech_rate_limit_refusals_total", "Requests refused with 429", ["budget", "partition_kind"])
STORE_FAILURES = Counter(
    "fintech_rate_limit_store_failures_total", "Rate-limit checks that fell back to the per-process log"
)


@dataclass(frozen=True, slots=True)
class Usage:
    allowed: bool
    remaining: int
    # Milliseconds until the oldest request in the window leaves it, freeing a unit of quota.
    reset_ms: int


class WindowLog(Protocol):
    def consume(self, key: str, *, limit: int, window_ms: int) -> Usage: ...


class LocalWindowLog:
    """The sliding-window log in this process: the embedded default, and the fallback."""

    _SWEEP_EVERY = 1024

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._logs: dict[str, deque[float]] = {}
        self._calls = 0

    def consume(self, key: str, *, limit: int, window_ms: int) -> Usage:
        window = window_ms / 1000
        with self._lock:
            now = self._clock()
            log = self._logs.setdefault(key, deque())
            while log and log[0] <= now - window:
                log.popleft()
            allowed = len(log) < limit
            if allowed:
                log.append(now)
            reset = log[0] + window - now if log else window
            remaining = max(0, limit - len(log))
            self._calls += 1
            if self._calls % self._SWEEP_EVERY == 0:
                self._sweep(now - window)
        return Usage(allowed=allowed, remaining=remaining, reset_ms=math.ceil(reset * 1000))

    def _sweep(self, horizon: float) -> None:
        """Forget callers with nothing left in the window, so the store does not grow forever."""
        for key in [key for key, log in self._logs.items() if not log or log[-1] <= horizon]:
            del self._logs[key]

    def clear(self) -> None:
        with self._lock:
            self._logs.clear()


# KEYS[1] = the partition's log (a sorted set of request ids scored by time in microseconds);
# ARGV = quota, window in microseconds, a unique id for this request.
# Returns {allowed 0|1, remaining, microseconds until the oldest entry leaves the window}.
_SLIDING_WINDOW_LUA = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
local allowed = 0
if used < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  used = used + 1
  allowed = 1
end
local reset = window
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then
  reset = tonumber(oldest[2]) + window - now
end
return {allowed, limit - used, reset}
"""


class RedisWindowLog:
    """The sliding-window log in Redis, shared by every server; one atomic script per check."""

    def __init__(self, url: str, *, timeout: float) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        # register_script runs EVALSHA and loads the script on NOSCRIPT (after a Redis restart).
        self._script = self._client.register_script(_SLIDING_WINDOW_LUA)
        self._retry_at = 0.0

    def consume(self, key: str, *, limit: int, window_ms: int) -> Usage:
        allowed, remaining, reset_us = self._script(keys=[key], args=[limit, window_ms * 1000, uuid.uuid4().hex])
        return Usage(allowed=bool(allowed), remaining=max(0, int(remaining)), reset_ms=math.ceil(int(reset_us) / 1000))

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._retry_at

    def fail(self, *, retry_after: float) -> None:
        self._retry_at = time.monotonic() + retry_after

    def recover(self) -> None:
        self._retry_at = 0.0

    def close(self) -> None:
        self._client.close()

    def clear(self, prefix: str) -> None:
        keys = list(self._client.scan_iter(match=f"{prefix}*", count=500))
        for start in range(0, len(keys), 500):
            self._client.delete(*keys[start : start + 500])


_local = LocalWindowLog()
_remote: dict[str, RedisWindowLog] = {}
_remote_lock = threading.Lock()


def _redis_log(url: str) -> RedisWindowLog:
    with _remote_lock:
        log = _remote.get(url)
        if log is None:
            log = _remote[url] = RedisWindowLog(url, timeout=settings.FINTECH_RATE_LIMIT_REDIS_TIMEOUT_SECONDS)
        return log


def consume(key: str, *, limit: int, window_ms: int) -> Usage:
    """Counts one request against `key` if it fits the quota: Redis when configured, else here."""
    url = settings.REDIS_URL
    if url:
        remote = _redis_log(url)
        if remote.available:
            try:
                return remote.consume(key, limit=limit, window_ms=window_ms)
            except redis.RedisError as error:
                retry = settings.FINTECH_RATE_LIMIT_REDIS_RETRY_SECONDS
                remote.fail(retry_after=retry)
                STORE_FAILURES.inc()
                logger.warning(
                    "rate-limit store unavailable (%s); limiting per process for %ss", type(error).__name__, retry
                )
        else:
            STORE_FAILURES.inc()
    return _local.consume(key, limit=limit, window_ms=window_ms)


def reset_rate_limits() -> None:
    """Forget every count under the configured key prefix (tests; an operator's clean slate)."""
    _local.clear()
    url = settings.REDIS_URL
    with _remote_lock:
        for stale in [other for other in _remote if other != url]:
            _remote.pop(stale).close()
        current = _remote.get(url) if url else None
    if current is not None:
        current.recover()
        try:
            current.clear(settings.FINTECH_RATE_LIMIT_KEY_PREFIX)
        except redis.RedisError:
            logger.warning("could not clear the rate-limit keys in Redis")


# --- Who and what is counted ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Partition:
    kind: str  # customer | staff | address
    ident: str
    multiplier: int

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.ident}"


def client_address(request: HttpRequest, *, trusted_proxies: int) -> str:
    """The caller's address as the outermost trusted proxy saw it; never one the client wrote.

    With N trusted proxies in front of the bank, the Nth `X-Forwarded-For` entry from the
    right was appended by the outermost of them. A header with fewer entries did not come
    through all of them (or was forged), so the connecting peer is used instead.
    """
    peer = str(request.META.get("REMOTE_ADDR") or "")
    address = peer
    if trusted_proxies > 0:
        hops = [hop.strip() for hop in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",") if hop.strip()]
        if len(hops) >= trusted_proxies:
            address = hops[-trusted_proxies]
    return _normalised(address) or _normalised(peer) or "unknown"


def _normalised(address: str) -> str | None:
    candidate = address.strip()
    if candidate.startswith("[") and "]" in candidate:  # [v6]:port
        candidate = candidate[1 : candidate.index("]")]
    elif candidate.count(":") == 1:  # v4:port
        candidate = candidate.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        if not ip.is_loopback:
            return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def partition_of(request: Request) -> Partition:
    principal: Any = getattr(request, "user", None)
    if isinstance(principal, Principal):
        if principal.customer_id is not None:
            return Partition("customer", str(principal.customer_id), 1)
        return Partition("staff", principal.subject, settings.FINTECH_RATE_LIMIT_STAFF_MULTIPLIER)
    address = client_address(request._request, trusted_proxies=settings.FINTECH_TRUSTED_PROXIES)
    return Partition("address", address, 1)


def budget_of(request: Request, view: Any) -> str:
    declared = getattr(view, "throttle_budget", None)
    if declared is not None:
        if declared not in BUDGETS:
            raise ImproperlyConfigured(f"{type(view).__name__}.throttle_budget must be one of {sorted(BUDGETS)}")
        return str(declared)
    return READ if (request.method or "").upper() in SAFE_METHODS else MONEY


def quota(budget: str, partition: Partition) -> int:
    base = settings.FINTECH_RATE_LIMIT_CUSTOMER_READS if budget == READ else settings.FINTECH_RATE_LIMIT_CUSTOMER_MONEY
    return int(base) * partition.multiplier


# --- The throttle and its headers ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimitState:
    budget: str
    quota: int
    window_seconds: int
    usage: Usage

    @property
    def reset_seconds(self) -> int:
        return max(1, math.ceil(self.usage.reset_ms / 1000))

    def headers(self) -> dict[str, str]:
        # draft-ietf-httpapi-ratelimit-headers-10/-11 (sections "RateLimit-Policy Field" and
        # "RateLimit Field"): a List of quota-policy Items named by a String, with q = quota,
        # w = window in seconds; and r = remaining units, t = seconds until quota frees up.
        # On a 429, t is the same point in time as Retry-After, as the draft asks.
        return {
            "RateLimit-Policy": f'"{self.budget}";q={self.quota};w={self.window_seconds}',
            "RateLimit": f'"{self.budget}";r={self.usage.remaining};t={self.reset_seconds}',
        }


class BankRateThrottle(BaseThrottle):
    """DRF's DEFAULT_THROTTLE_CLASSES entry: one atomic check-and-count per API request."""

    def __init__(self) -> None:
        self.state: RateLimitState | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        budget = budget_of(request, view)
        partition = partition_of(request)
        window = int(settings.FINTECH_RATE_LIMIT_WINDOW_SECONDS)
        limit = quota(budget, partition)
        key = f"{settings.FINTECH_RATE_LIMIT_KEY_PREFIX}{budget}:{partition.key}"
        usage = consume(key, limit=limit, window_ms=window * 1000)
        self.state = RateLimitState(budget=budget, quota=limit, window_seconds=window, usage=usage)
        setattr(request._request, _STATE_ATTRIBUTE, self.state)
        if not usage.allowed:
            REFUSED.labels(budget=budget, partition_kind=partition.kind).inc()
            logger.info("rate limited", extra={"budget": budget, "partition_kind": partition.kind, "quota": limit})
        return usage.allowed

    def wait(self) -> float | None:
        return float(self.state.reset_seconds) if self.state is not None else None


def rate_limited(request: Request) -> bool:
    """Whether the rate limit refused this request (it is answered 429)."""
    state: RateLimitState | None = getattr(request._request, _STATE_ATTRIBUTE, None)
    return state is not None and not state.usage.allowed


class RateLimitHeadersMiddleware:
    """Puts the throttle's `RateLimit` and `RateLimit-Policy` on the response, 2xx or 429 alike.

    DRF throttles see the request but not the response; the view leaves the state on the
    request and this writes it out.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        state = getattr(request, _STATE_ATTRIBUTE, None)
        if isinstance(state, RateLimitState):
            for name, value in state.headers().items():
                response[name] = value
        return response
