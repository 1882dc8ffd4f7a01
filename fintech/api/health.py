"""Liveness and readiness probes."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

# Checks other parts of the bank add (outbox/apps.py adds the dispatcher's): each returns
# {"ok": bool, "critical": bool, ...}; a failing critical check makes the bank unready, another
# one only degraded.
_extra_checks: dict[str, Callable[[], dict[str, Any]]] = {}


def add_readiness_check(name: str, check: Callable[[], dict[str, Any]]) -> None:
    _extra_checks[name] = check


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True, "vendor": connection.vendor}
    except Exception as error:  # noqa: BLE001 - readiness reports, it does not raise
        return {"ok": False, "error": type(error).__name__}


def _check_tcp(servers: str) -> dict[str, Any]:
    """Reachability of the first answering bootstrap server (host:port, comma-separated)."""
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1.0):
                return {"ok": True}
        except (OSError, ValueError):
            continue
    return {"ok": False, "error": "unreachable"}


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, dict[str, Any]] = {"database": _check_database()}
    if settings.KAFKA_BOOTSTRAP_SERVERS:
        checks["broker"] = _check_tcp(settings.KAFKA_BOOTSTRAP_SERVERS)
    if checks["database"]["ok"]:
        checks.update((name, check()) for name, check in _extra_checks.items())
    ready = all(check["ok"] for check in checks.values() if check.get("critical", True))
    degraded = not all(check["ok"] for check in checks.values())
    status = "not_ready" if not ready else "degraded" if degraded else "ready"
    return JsonResponse({"status": status, "checks": checks}, status=200 if ready else 503)
