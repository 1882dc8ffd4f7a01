from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.analytics import services
from apps.analytics.tests.test_services import completed, event

pytestmark = pytest.mark.django_db

URL = "/api/v1/analytics/summary"


def test_the_summary_has_totals_per_currency_a_series_per_day_and_the_fraud_rate(client_with):
    today = timezone.now().replace(hour=12)
    yesterday = today - timedelta(days=1)
    services.facts_record(
        events=[
            completed(1_000, moment=yesterday),
            completed(2_000, moment=today),
            event("fraud.screened", yesterday, subject_id="t1", decision="approve", amount=1_000, currency="BRL"),
            event("fraud.screened", today, subject_id="t2", decision="approve", amount=2_000, currency="BRL"),
            event("fraud.screened", today, subject_id="t3", decision="review", amount=9_000, currency="BRL"),
            event("fraud.alert", today, subject_id="t3", amount=9_000, currency="BRL"),
            event("customer.created", today, customer_id="c1"),
        ]
    )
    response = client_with("analytics:read").get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["to"] == today.date().isoformat()
    [brl] = body["totals"]
    assert brl["currency"] == "BRL"
    assert brl["transfers"]["completed"] == {"count": 2, "volume": 3_000}
    assert brl["transfers"]["failed"] == {"count": 0, "volume": 0}
    assert brl["fraud"]["screened"] == 3
    assert brl["fraud"]["alerts"] == 1
    assert brl["fraud"]["rate"] == round(1 / 3, 6)
    assert body["customers"] == {"created": 1, "verified": 0, "rejected": 0}
    assert [day["day"] for day in body["days"]] == [yesterday.date().isoformat(), today.date().isoformat()]
    assert body["days"][0]["totals"][0]["fraud"]["rate"] == 0.0
    assert body["days"][1]["totals"][0]["fraud"]["rate"] == 0.5

    only_yesterday = client_with("analytics:read").get(URL, {"from": yesterday.date(), "to": yesterday.date()})
    assert only_yesterday.json()["totals"][0]["transfers"]["completed"] == {"count": 1, "volume": 1_000}


def test_a_day_with_nothing_screened_has_no_fraud_rate(client_with):
    services.facts_record(events=[completed(500, moment=timezone.now())])
    [brl] = client_with("analytics:read").get(URL).json()["totals"]
    assert brl["fraud"]["rate"] is None


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"from": "2026-03-02", "to": "2026-03-01"}, "validation_error"),
        ({"from": "yesterday"}, "validation_error"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "period_too_long"),
        ({"since": "2026-01-01"}, "validation_error"),
    ],
)
def test_bad_periods_are_problems(client_with, query, code):
    response = client_with("analytics:read").get(URL, query)
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_the_figures_are_for_staff_with_analytics_read(client_with, anonymous):
    import uuid

    assert anonymous.get(URL).status_code == 401
    assert client_with("customers:read").get(URL).status_code == 403
    customer = client_with("analytics:read", customer_id=uuid.uuid4()).get(URL)
    assert (customer.status_code, customer.json()["code"]) == (403, "staff_only")
