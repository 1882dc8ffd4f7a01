"""The platform around the contexts: health, metrics, schema, errors, production settings."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

from tests.spine.support import PRODUCTION_ENV

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.django_db


def test_liveness(anonymous):
    response = anonymous.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readiness_checks_the_database(anonymous):
    response = anonymous.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["database"]["ok"] is True


def test_readiness_fails_when_the_broker_is_unreachable(anonymous, settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"  # nothing listens on port 1
    response = anonymous.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False


def test_readiness_and_metrics_show_a_stalled_dispatcher(anonymous, settings):
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from apps.customers.events import CustomerVerified
    from outbox.models import OutboxEvent
    from outbox.publisher import publish

    settings.FINTECH_EVENT_DISPATCH = "worker"  # nobody delivers: the event waits
    with transaction.atomic():
        publish(
            CustomerVerified(customer_id=str(uuid.uuid4()), reviewed_by="probe", verified_at="2026-01-01T00:00:00Z")
        )
    OutboxEvent.objects.update(dispatched_at=None)  # waiting for a handler
    body = anonymous.get("/readyz").json()
    assert body["status"] == "ready"
    assert body["checks"]["dispatcher"]["undelivered_events"] == 1

    OutboxEvent.objects.update(
        created_at=timezone.now() - timedelta(seconds=settings.FINTECH_DISPATCH_STALL_SECONDS + 30)
    )
    response = anonymous.get("/readyz")
    assert response.status_code == 200  # the bank still takes requests: degraded, not unready
    assert response.json()["status"] == "degraded"
    dispatcher = response.json()["checks"]["dispatcher"]
    assert dispatcher["ok"] is False
    assert dispatcher["oldest_undelivered_seconds"] >= settings.FINTECH_DISPATCH_STALL_SECONDS + 30
    metrics = anonymous.get("/metrics").content.decode()
    age = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("fintech_outbox_oldest_undelivered_seconds ")
    )
    assert age >= settings.FINTECH_DISPATCH_STALL_SECONDS + 30
    assert "fintech_outbox_undelivered_events 1.0" in metrics


def test_metrics_are_exposed_for_prometheus(anonymous, staff):
    staff.get("/api/v1/customers")
    body = anonymous.get("/metrics").content.decode()
    assert "django_http_requests_total_by_method_total" in body
    assert "fintech_events_published_total" in body


def test_unknown_paths_are_problems(anonymous):
    response = anonymous.get("/no/such/page")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


def test_requests_carry_a_correlation_id_and_trace_context_back(anonymous):
    response = anonymous.get(
        "/healthz",
        HTTP_X_CORRELATION_ID="corr-123",
        HTTP_TRACEPARENT="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    assert response["X-Correlation-ID"] == "corr-123"
    assert response["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")


def test_events_carry_the_trace_and_correlation_of_the_request(staff):
    from outbox.models import OutboxEvent

    staff.post(
        "/api/v1/customers",
        {"name": "Ana", "email": "a@example.com", "document": "52998224725"},
        format="json",
        HTTP_X_CORRELATION_ID="onboarding-42",
        HTTP_TRACEPARENT="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    event = OutboxEvent.objects.get()
    assert event.headers["correlation_id"] == "onboarding-42"
    assert event.headers["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")


def test_schema_and_docs_are_served(anonymous):
    schema = anonymous.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/customers" in schema.content
    assert anonymous.get("/api/docs/").status_code == 200


def test_the_committed_openapi_schema_matches_the_code(tmp_path):
    generated = tmp_path / "openapi.yaml"
    call_command("spectacular", "--file", str(generated), "--validate")
    committed = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    assert yaml.safe_load(generated.read_text()) == committed, "run `make schema` and commit docs/openapi.yaml"


def _manage(*args, env):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECRET_KEY", "DATABASE_URL"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, check=False
    )


def test_production_refuses_insecure_settings():
    result = _manage("check", env={"DJANGO_ENV": "production"})
    assert result.returncode != 0
    assert "Refusing to start in production" in result.stderr
    for missing in (
        "SECRET_KEY",
        "OIDC_ISSUER",
        "DATABASE_URL",
        "ALLOWED_HOSTS",
        "FINTECH_ENCRYPTION_KEYS",
        "FINTECH_BLIND_INDEX_KEY",
        "FINTECH_PAYMENT_NETWORK_KEYS",
    ):
        assert missing in result.stderr


def test_production_settings_pass_the_deployment_checks():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env=PRODUCTION_ENV,
    )
    assert result.returncode == 0, result.stderr + result.stdout


def test_every_scheduled_task_is_a_registered_task(settings):
    from config.celery import app

    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"outbox.tasks.purge_outbox", "fintech.api.tasks.purge_idempotency_keys"} <= scheduled
    assert scheduled <= set(app.tasks)
