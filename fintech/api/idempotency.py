"""The `Idempotency-Key` machinery for POSTs that move money or create resources.

- Same key, same body, within the TTL: the original response is replayed, the same status and
  the same body it was sent with (the stored response is the one sent; nothing rewrites it).
- Same key, another body: 422 `idempotency_key_reuse`.
- Two concurrent requests with one key: the first reserves the key; the second gets 409
  `idempotency_request_in_progress` with `Retry-After` while the first runs, and the replay
  afterwards: never a different answer, never a second effect.
- The effect and the stored response commit in one transaction, so a crash leaves either
  both or neither. On PostgreSQL the request that reserved a key holds a session advisory lock
  while it works: if its process dies, the database ends the session and frees the lock, and
  the next request with the key takes over at once. On the embedded default (SQLite, one host)
  the reservation names its process (host, pid and start time) and a request that finds that
  process gone takes over at once; a holder on another host is waited out
  (`FINTECH_IDEMPOTENCY_LOCK_SECONDS`).
- A request that fails before producing a response (bad input, a refused rule) stores
  nothing and frees the key, as a client would expect when it corrects and retries.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from fintech.api.models import IdempotencyRecord
from fintech.errors import Conflict, Unprocessable, ValidationFailed
from fintech.faults import crash_point
from fintech.sql import lost_to_another_transaction

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
# Runs of a request's work that the database may abort to break a deadlock before it is answered 503.
CONFLICT_ATTEMPTS = 3
# A key is 1 to 255 printable ASCII characters, spaces only inside it (a header's edges are
# whitespace that proxies strip, so a key ending in one could not be replayed faithfully).
KEY_MAX_LENGTH = 255
KEY_PATTERN = r"^[!-~](?:[ -~]*[!-~])?$"


def idempotency_key_parameter(*, required: bool) -> OpenApiParameter:
    """How an operation says in the OpenAPI schema that it takes the header: the same rule
    `_key` enforces."""
    return OpenApiParameter(
        HEADER,
        {"type": "string", "minLength": 1, "maxLength": KEY_MAX_LENGTH, "pattern": KEY_PATTERN},
        OpenApiParameter.HEADER,
        required=required,
        description=(
            "Required: one effect per key." if required else "Optional: with a key, a retry replays the first answer."
        )
        + f" 1 to {KEY_MAX_LENGTH} printable ASCII characters, no space at either end.",
    )


IDEMPOTENCY_KEY_PARAMETER = idempotency_key_parameter(required=True)
OPTIONAL_IDEMPOTENCY_KEY_PARAMETER = idempotency_key_parameter(required=False)

Handler = Callable[..., Response]


class _RolledBack(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _owner(request: Request) -> str:
    principal = request.user
    subject = getattr(principal, "subject", None)
    return str(subject) if subject else "anonymous"


def _key(request: Request) -> str:
    key = request.headers.get(HEADER, "")
    if not key:
        raise ValidationFailed(
            f"This operation requires an {HEADER} header.",
            code="idempotency_key_missing",
            errors={HEADER: ["This header is required."]},
        )
    if len(key) > KEY_MAX_LENGTH or not re.fullmatch(KEY_PATTERN, key):
        raise ValidationFailed(
            f"The {HEADER} must be 1 to {KEY_MAX_LENGTH} printable ASCII characters, no space at either end.",
            code="idempotency_key_invalid",
            errors={HEADER: [f"Must be 1 to {KEY_MAX_LENGTH} printable ASCII characters, no space at either end."]},
        )
    return key


def fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), cls=JSONEncoder)
    raw = f"{request.method}\n{request.path}\n{body}"
    return hashlib.sha256(raw.encode()).hexdigest()


def _plain(data: Any) -> Any:
    return json.loads(json.dumps(data, cls=JSONEncoder))


class RequestInProgress(Conflict):
    code = "idempotency_request_in_progress"
    title = "A request with this key is still being processed"
    retry_after = 1


def _lock_id(owner: str, key: str) -> int:
    """The advisory lock of one (owner, key): 63 bits of its SHA-256."""
    return int.from_bytes(hashlib.sha256(f"{owner}\n{key}".encode()).digest()[:8], "big") >> 1


def _process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot), or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_process_start(os.getpid()) or '?'}"


def _holder_alive(holder: str) -> bool | None:
    """Whether the process that holds a reservation still runs: True, False, or None when this
    process cannot tell (another host, or no /proc)."""
    host, _, rest = holder.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit() or started == "?":
        return None
    return _process_start(int(pid)) == started


def _advisory(function: str, lock_id: int) -> bool:
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s)", [lock_id])
        return bool(cursor.fetchone()[0])


def _reserve(request: Request, key: str, print_: str) -> IdempotencyRecord | Response:
    """Reserve the key for this request, or answer from what an earlier one left. The reserving
    request holds the key's advisory lock (PostgreSQL) until `_release`."""
    now = timezone.now()
    lock = timedelta(seconds=settings.FINTECH_IDEMPOTENCY_LOCK_SECONDS)
    fresh = {
        "method": request.method or "",
        "path": request.path,
        "fingerprint": print_,
        "state": IdempotencyRecord.State.IN_PROGRESS,
        "status_code": None,
        "response_body": None,
        "created_at": now,
        "locked_until": now + lock,
        "expires_at": now + timedelta(seconds=settings.FINTECH_IDEMPOTENCY_TTL_SECONDS),
        "holder": this_process(),
    }
    owner = _owner(request)
    lock_id = _lock_id(owner, key)
    with transaction.atomic():
        record, created = IdempotencyRecord.objects.select_for_update().get_or_create(
            owner=owner, key=key, defaults=fresh
        )
        if created:
            # Taken before the reservation commits: a concurrent request that sees it waits on the
            # row until then, and finds the lock held.
            _advisory("pg_advisory_lock", lock_id)
            return record
        if record.expires_at <= now:
            if not _advisory("pg_try_advisory_lock", lock_id):
                raise RequestInProgress(f"A request with this {HEADER} is still being processed; retry shortly.")
            for field, value in fresh.items():
                setattr(record, field, value)
            record.save()
            return record
        if record.fingerprint != print_:
            raise Unprocessable(
                f"This {HEADER} was already used with a different request.", code="idempotency_key_reuse"
            )
        if record.state == IdempotencyRecord.State.COMPLETED:
            response = Response(record.response_body, status=record.status_code)
            response[REPLAY_HEADER] = "true"
            return response
        if connection.vendor == "postgresql":
            # The lock is free only if the request that reserved the key has ended: it finished
            # without a response (its record is gone by then) or its process died.
            alive = not _advisory("pg_try_advisory_lock", lock_id)
        else:
            # One host (the embedded default): ask the operating system whether the holder runs.
            holder_alive = _holder_alive(record.holder)
            alive = record.locked_until > now if holder_alive is None else holder_alive
        if alive:
            raise RequestInProgress(f"A request with this {HEADER} is still being processed; retry shortly.")
        # The request that reserved the key died before committing anything: take over.
        record.locked_until = now + lock
        record.holder = this_process()
        record.save(update_fields=["locked_until", "holder"])
        return record


def _release(request: Request, key: str) -> None:
    try:
        _advisory("pg_advisory_unlock", _lock_id(_owner(request), key))
    except DatabaseError:
        logger.warning("could not release an idempotency lock; the session's end releases it", exc_info=True)


def run_idempotent(request: Request, handle: Callable[[], Response], *, required: bool = True) -> Response:
    if not required and HEADER not in request.headers:
        return handle()  # the key is optional here; without one, a retry is a new request
    key = _key(request)
    reserved = _reserve(request, key, fingerprint(request))
    if isinstance(reserved, Response):
        return reserved
    record = reserved
    try:
        attempts = 1
        while True:
            try:
                with transaction.atomic():
                    response = handle()
                    if response.status_code >= 500:
                        raise _RolledBack(response)
                    record.state = IdempotencyRecord.State.COMPLETED
                    record.status_code = response.status_code
                    record.response_body = _plain(response.data)
                    record.save(update_fields=["state", "status_code", "response_body"])
                break
            except DatabaseError as error:
                # The database broke a deadlock with a worker (which may lock accounts in several
                # statements) by aborting this request's work: none of it stayed, so run it again.
                if attempts == CONFLICT_ATTEMPTS or not lost_to_another_transaction(error):
                    raise
                attempts += 1
    except _RolledBack as rolled_back:
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        return rolled_back.response
    except BaseException:
        IdempotencyRecord.objects.filter(pk=record.pk, state=IdempotencyRecord.State.IN_PROGRESS).delete()
        raise
    finally:
        _release(request, key)
    crash_point("after_commit_before_response")
    return response


def idempotent(*, required: bool = True) -> Callable[[Handler], Handler]:
    """Decorate a DRF view method (post) so it runs under the `Idempotency-Key` rules.

    `required=True` for operations that move money (the contract demands the header there);
    elsewhere the header is honoured when sent. The response the view returns is the one stored
    for replays: a view answers with the state its work left, choreography steps included.
    """

    def decorator(method: Handler) -> Handler:
        @functools.wraps(method)
        def wrapper(self: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
            return run_idempotent(request, lambda: method(self, request, *args, **kwargs), required=required)

        return wrapper

    return decorator


def purge_expired(*, now: datetime | None = None, chunk: int = 5_000) -> int:
    """Delete stored outcomes past their TTL, in chunks; returns how many went.

    A stored response may carry personal data (a customer's name in an onboarding response),
    so records are not kept beyond the window in which a client may retry. A reservation whose
    lock is still held stays, even past its expiry, until its request has finished or died.
    """
    now = now or timezone.now()
    expired = IdempotencyRecord.objects.filter(expires_at__lte=now, locked_until__lte=now).order_by("pk")
    deleted = 0
    while ids := list(expired.values_list("pk", flat=True)[:chunk]):
        deleted += IdempotencyRecord.objects.filter(pk__in=ids).delete()[0]
    return deleted
