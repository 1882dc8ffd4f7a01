"""Response headers that keep browsers from misusing the bank's pages (a Content-Security-Policy
per kind of page, `Cache-Control: no-store` on the API), and the body-size cap. What each page
may load, and why: docs/architecture.md, "Abuse controls"."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import NoReverseMatch, reverse
from drf_spectacular.views import SpectacularSwaggerView

from fintech.api.problems import PROBLEM_CONTENT_TYPE, problem

_API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def _sources(url: str) -> str:
    """'self', plus the origin of `url` when it names another one."""
    parts = urlsplit(url)
    return f"'self' {parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "'self'"


def _static_sources() -> str:
    return _sources(str(settings.STATIC_URL))  # a CDN, when the static files are served from one


def admin_policy() -> str:
    static = _static_sources()
    forms = _sources(settings.OIDC_ISSUER)
    return (
        f"default-src 'self'; script-src {static}; style-src {static}; img-src {static}; font-src {static}; "
        f"object-src 'none'; base-uri 'self'; form-action {forms}; frame-ancestors 'none'"
    )


def docs_policy() -> str:
    static = _static_sources()
    return (
        f"default-src 'none'; script-src {static}; style-src {static} 'unsafe-inline'; img-src {static} data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def _under_admin(request: HttpRequest) -> bool:
    try:
        return request.path.startswith(reverse("admin:index"))
    except NoReverseMatch:
        return False


def content_security_policy(request: HttpRequest) -> str:
    if _under_admin(request):
        return admin_policy()
    match = request.resolver_match
    if match is not None:
        view_class = getattr(match.func, "view_class", None)
        if isinstance(view_class, type) and issubclass(view_class, SpectacularSwaggerView):
            return docs_policy()
    return _API_POLICY


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = content_security_policy(request)
        response.headers.setdefault("Content-Security-Policy", policy)
        if policy == _API_POLICY:
            response.headers.setdefault("Cache-Control", "no-store")
        return response


class RequestBodyLimitMiddleware:
    """Refuses a body above `FINTECH_MAX_BODY_BYTES` (or the path's own limit in
    `FINTECH_BODY_LIMIT_OVERRIDES`, e.g. a batch of transfers) with 413 before anything reads it.

    Django's own cap (`DATA_UPLOAD_MAX_MEMORY_SIZE`, set to the largest of these limits) applies
    only when `request.body` is read, after the body was received; this answers from the
    declared length, per path.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.FINTECH_BODY_LIMIT_OVERRIDES.get(request.path, settings.FINTECH_MAX_BODY_BYTES)
        if limit is not None:
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0  # Django reads such a body as empty too
            if length > limit:
                body = problem(
                    status=413,
                    code="request_too_large",
                    title="Request body too large",
                    detail=f"The request body is {length} bytes; at most {limit} are accepted.",
                    max_bytes=limit,
                )
                return JsonResponse(body, status=413, content_type=PROBLEM_CONTENT_TYPE)
        return self.get_response(request)
