"""Security headers on the admin, the API and the API docs, in development and in production."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.spine.support import PRODUCTION_ENV

ROOT = Path(__file__).resolve().parent.parent

# What a strict CSP (no 'unsafe-inline') would block: inline scripts, style blocks and
# attributes, event-handler attributes, javascript: URLs.
INLINE_CODE = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|<style|\sstyle=\"|\son[a-z]+=\"|javascript:", re.IGNORECASE)


def directives(policy: str) -> dict[str, str]:
    return {part.split()[0]: part.strip() for part in policy.split(";") if part.strip()}


def assert_common_headers(response) -> None:
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_the_admin_login_page_has_a_strict_policy_it_can_live_with():
    response = Client().get("/admin/login/")
    assert response.status_code == 200
    assert_common_headers(response)
    policy = directives(response["Content-Security-Policy"])
    assert policy["default-src"] == "default-src 'self'"
    assert policy["script-src"] == "script-src 'self'"
    assert policy["style-src"] == "style-src 'self'"
    assert policy["form-action"] == "form-action 'self'"
    assert "unsafe" not in response["Content-Security-Policy"]
    assert not INLINE_CODE.findall(response.content.decode())


@pytest.mark.django_db
def test_the_admin_pages_need_no_inline_code():
    clerk = User.objects.create_superuser("csp-clerk", "clerk@bank.example", "a-long-test-password")
    client = Client()
    client.force_login(clerk)
    for page in ("/admin/", "/admin/customers/customer/", "/admin/auth/user/", f"/admin/auth/user/{clerk.pk}/change/"):
        response = client.get(page)
        assert response.status_code == 200, page
        assert "unsafe" not in response["Content-Security-Policy"]
        assert not INLINE_CODE.findall(response.content.decode()), page


@pytest.mark.django_db
def test_api_responses_may_load_nothing_and_are_not_cached(staff, anonymous):
    for response in (staff.get("/api/v1/customers"), anonymous.get("/api/v1/customers"), anonymous.get("/nowhere")):
        assert_common_headers(response)
        policy = directives(response["Content-Security-Policy"])
        assert policy["default-src"] == "default-src 'none'"
        assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_the_api_docs_load_only_the_banks_own_assets(anonymous):
    page = anonymous.get("/api/docs/")
    assert page.status_code == 200
    assert_common_headers(page)
    policy = directives(page["Content-Security-Policy"])
    assert policy["default-src"] == "default-src 'none'"
    assert policy["script-src"] == "script-src 'self'"
    assert policy["connect-src"] == "connect-src 'self'"
    html = page.content.decode()
    assert "https://" not in html  # no CDN: Swagger UI comes from the bank's static files
    assert not re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html)  # the script is a file, not inline
    script = re.search(r'<script src="(/api/docs/[^"]+)"', html)
    assert script, html
    served = anonymous.get(script.group(1))
    assert served.status_code == 200
    assert "javascript" in served["Content-Type"]


# --- production ----------------------------------------------------------------------------


# Runs under the production settings: the deployment checks, then requests through the test
# client (none of them touches the database), printing what came back.
PRODUCTION_PROBE = textwrap.dedent(
    """
    import json, django
    django.setup()
    from django.core.management import call_command
    from django.test import Client

    call_command("check", deploy=True, fail_level="WARNING")
    client = Client(HTTP_HOST="bank.example")
    seen = {}
    for name, path, secure in (
        ("healthz", "/healthz", True),
        ("api", "/api/v1/customers", True),
        ("admin", "/admin/login/", True),
        ("plain_http", "/api/v1/customers", False),
    ):
        response = client.get(path, secure=secure)
        seen[name] = {"status": response.status_code, "headers": dict(response.headers)}
    print(json.dumps(seen))
    """
)


def test_production_passes_the_deployment_checks_and_sends_hsts():
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECRET_KEY", "DATABASE_URL"))}
    result = subprocess.run(
        [sys.executable, "-c", PRODUCTION_PROBE],
        cwd=ROOT,
        env={**base, **PRODUCTION_ENV, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    for name in ("healthz", "api", "admin"):
        headers = seen[name]["headers"]
        assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload", name
        assert headers["X-Content-Type-Options"] == "nosniff", name
        assert headers["X-Frame-Options"] == "DENY", name
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], name
    assert seen["api"]["status"] == 401
    # The back-office login sends staff to the identity provider; its forms may post there.
    admin_policy = directives(seen["admin"]["headers"]["Content-Security-Policy"])
    assert admin_policy["script-src"] == "script-src 'self'"
    assert admin_policy["form-action"] == "form-action 'self' https://id.bank.example"
    # Plain HTTP is sent to HTTPS before anything else happens.
    assert seen["plain_http"]["status"] == 301
    assert seen["plain_http"]["headers"]["Location"].startswith("https://bank.example/")
