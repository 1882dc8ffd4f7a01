"""The ways a notification leaves the bank: e-mail through Django's e-mail backends, and push
through the push provider's webhook.

Both carry the notification's idempotency key where the provider sees it (the e-mail's
Message-ID and an `Idempotency-Key` header; the webhook's `Idempotency-Key` header), so a
message sent again after a crash between sending and recording is recognised as the same one.

The webhook body is signed: `X-Fintech-Signature: t=<unix seconds>,v1=<hex>` where the hex is
HMAC-SHA256 under `FINTECH_NOTIFICATIONS_WEBHOOK_SECRET` of `<t>.<body>`. A receiver recomputes
it over the raw body, compares in constant time and refuses a `t` more than five minutes away
from its clock (a replayed request), as `verify_signature` does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage

SIGNATURE_HEADER = "X-Fintech-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300
MESSAGE_ID_DOMAIN = "notifications.fintech"


class DeliveryFailed(Exception):
    """The provider did not take the message; the worker tries again later."""


def send_email(*, key: str, to: str, subject: str, body: str) -> None:
    message = EmailMessage(
        subject=subject,
        body=body,
        from_email=settings.FINTECH_NOTIFICATIONS_FROM_EMAIL,
        to=[to],
        headers={"Message-ID": f"<{key}@{MESSAGE_ID_DOMAIN}>", "Idempotency-Key": key},
    )
    try:
        message.send(fail_silently=False)
    except (OSError, ValueError) as error:  # smtplib's errors are OSErrors; a refused address a ValueError
        raise DeliveryFailed(f"e-mail not accepted: {type(error).__name__}: {error}") from error


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: float | None = None, tolerance: int = SIGNATURE_TOLERANCE_SECONDS
) -> bool:
    """Whether `header` signs `body` under `secret`, made within `tolerance` seconds of `now`."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(parts.get("v1", ""), signature(secret, timestamp, body))


def send_push(*, key: str, payload: dict[str, Any]) -> None:
    url = settings.FINTECH_NOTIFICATIONS_WEBHOOK_URL
    secret = settings.FINTECH_NOTIFICATIONS_WEBHOOK_SECRET
    if not url or not secret:
        raise DeliveryFailed("the push webhook needs FINTECH_NOTIFICATIONS_WEBHOOK_URL and _SECRET")
    if not url.startswith(("https://", "http://")):
        raise DeliveryFailed("FINTECH_NOTIFICATIONS_WEBHOOK_URL must be an http(s) URL")
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            SIGNATURE_HEADER: signature_header(secret, int(time.time()), body),
            "User-Agent": "fintech-notifications/1",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.FINTECH_NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS):  # noqa: S310
            return
    except urllib.error.HTTPError as error:
        raise DeliveryFailed(f"the push provider answered HTTP {error.code}") from error
    except (urllib.error.URLError, OSError) as error:
        raise DeliveryFailed(f"the push provider did not answer: {error}") from error
