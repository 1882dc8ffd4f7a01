"""Which Content-Security-Policy a response gets, and the body-size cap."""

from __future__ import annotations

import json

from django.http import HttpResponse
from django.test import RequestFactory

from fintech.api.security import RequestBodyLimitMiddleware, admin_policy, content_security_policy, docs_policy


def test_the_admin_and_everything_under_it_get_the_admin_policy():
    for path in ("/admin/", "/admin/login/", "/admin/customers/customer/"):
        assert content_security_policy(RequestFactory().get(path)) == admin_policy()


def test_unrouted_paths_get_the_policy_that_loads_nothing():
    policy = content_security_policy(RequestFactory().get("/nowhere"))
    assert policy.startswith("default-src 'none'")


def test_static_files_on_a_cdn_are_allowed_by_origin(settings):
    settings.STATIC_URL = "https://static.bank.example/assets/"
    assert "script-src 'self' https://static.bank.example;" in admin_policy()
    assert "script-src 'self' https://static.bank.example;" in docs_policy()


def test_admin_forms_may_post_to_the_identity_provider(settings):
    settings.OIDC_ISSUER = "https://id.bank.example/realms/fintech"
    assert "form-action 'self' https://id.bank.example;" in admin_policy()
    settings.OIDC_ISSUER = ""
    assert "form-action 'self';" in admin_policy()


def cap(settings, limit: int | None, **meta: str) -> HttpResponse:
    settings.FINTECH_MAX_BODY_BYTES = limit
    middleware = RequestBodyLimitMiddleware(lambda request: HttpResponse("read"))
    request = RequestFactory().post("/api/v1/customers", data=b"{}", content_type="application/json")
    request.META.update(meta)
    return middleware(request)


def test_a_declared_length_over_the_limit_is_refused_unread(settings):
    response = cap(settings, 10, CONTENT_LENGTH="11")
    assert response.status_code == 413
    assert response["Content-Type"] == "application/problem+json"
    assert json.loads(response.content)["code"] == "request_too_large"


def test_a_length_at_the_limit_passes(settings):
    assert cap(settings, 10, CONTENT_LENGTH="10").content == b"read"


def test_a_malformed_length_is_left_to_django_which_reads_nothing(settings):
    assert cap(settings, 10, CONTENT_LENGTH="lots").content == b"read"


def test_no_limit_configured_means_no_cap(settings):
    assert cap(settings, None, CONTENT_LENGTH="999999999").content == b"read"
