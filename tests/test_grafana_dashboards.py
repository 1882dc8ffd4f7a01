"""The Grafana dashboards under deploy/grafana/ query only metrics the bank really exports: each
metric name in each PromQL expression must be in what /metrics answers."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from apps.analytics import services
from fintech.events import ReceivedEvent

pytestmark = pytest.mark.django_db

DASHBOARDS = sorted((Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "dashboards").glob("*.json"))
_LABELS = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(r"\b(?:by|without)\s*\([^)]*\)")
_METRIC = re.compile(r"\b(?:fintech|django|process|python)_[a-zA-Z0-9_:]+")
_TYPE = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{| )", re.MULTILINE)


def exported(anonymous) -> set[str]:
    text = anonymous.get("/metrics").content.decode()
    names = set(_SAMPLE.findall(text))
    for name, kind in _TYPE.findall(text):
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def metrics_in(expr: str) -> set[str]:
    return set(_METRIC.findall(_GROUPING.sub("", _LABELS.sub("", expr))))


def test_there_is_a_business_and_an_operations_dashboard():
    assert [path.stem for path in DASHBOARDS] == ["business", "operations"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
def test_every_query_uses_only_exported_metrics(path, anonymous):
    dashboard = json.loads(path.read_text())
    available = exported(anonymous)
    assert "fintech_business_transfers_total" in available  # the business collector answered
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = metrics_in(target["expr"])
            assert names, f"{panel['title']}: no metric in {target['expr']!r}"
            missing = names - available
            assert not missing, f"{path.name}, panel {panel['title']!r}: {sorted(missing)} not exported"


def test_a_metric_that_does_not_exist_would_be_caught(anonymous):
    assert metrics_in('sum by (status) (rate(fintech_no_such_thing_total{a="b"}[5m]))') == {
        "fintech_no_such_thing_total"
    }
    assert "fintech_no_such_thing_total" not in exported(anonymous)


def booked(event_type: str, **data) -> ReceivedEvent:
    return ReceivedEvent(
        id=uuid.uuid4(),
        type=event_type,
        version=1,
        source="/fintech/test",
        subject="s",
        time=datetime.now(UTC),
        data=data,
    )


def test_the_business_figures_are_exported_with_their_values(anonymous):
    services.facts_record(
        events=[
            booked("transaction.completed", transfer_id="t1", amount=4_200, currency="BRL"),
            booked("payment.settled", payment_id="p1", amount=1_500, currency="BRL"),
            booked("payment.failed", payment_id="p2", amount=900, currency="BRL"),
            booked("payment.credited", credit_id="c1", amount=7_000, currency="BRL"),
            # The network's answer is not the bank's fact: nothing of it is exported.
            booked("payment.processed", payment_id="p3", status="returned", amount=300, currency="BRL"),
        ]
    )
    text = anonymous.get("/metrics").content.decode()
    assert 'fintech_business_transfers_total{currency="BRL",status="completed"} 1.0' in text
    assert 'fintech_business_transfer_volume_minor_total{currency="BRL",status="completed"} 4200.0' in text
    assert 'fintech_business_payments_total{currency="BRL",outcome="settled"} 1.0' in text
    assert 'fintech_business_payments_total{currency="BRL",outcome="failed"} 1.0' in text
    assert 'fintech_business_payment_volume_minor_total{currency="BRL",outcome="failed"} 900.0' in text
    assert 'fintech_business_payments_total{currency="BRL",outcome="returned"}' not in text
    assert 'fintech_business_inbound_credits_total{currency="BRL",outcome="credited"} 1.0' in text
    assert 'fintech_business_inbound_credit_volume_minor_total{currency="BRL",outcome="credited"} 7000.0' in text
