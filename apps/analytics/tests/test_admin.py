"""The back office's analytics page, rendered: its table and its two SVG charts."""

from __future__ import annotations

from datetime import timedelta
from xml.etree import ElementTree

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.analytics import services
from apps.analytics.tests.test_services import completed, event

pytestmark = pytest.mark.django_db

PAGE = "/admin/analytics/dailyfigure/"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def back_office(client):
    user = get_user_model().objects.create_superuser("analyst", "analyst@bank.example", "a-long-password-42")
    client.force_login(user)
    return client


def test_the_page_shows_the_last_30_days_with_two_charts(back_office):
    now = timezone.now()
    services.facts_record(
        events=[
            completed(123_456, moment=now),
            completed(5_000, moment=now - timedelta(days=3)),
            completed(7_700, moment=now - timedelta(days=45)),  # outside the page's 30 days
            event("fraud.screened", now, subject_id="t1", decision="review", amount=1, currency="BRL"),
            event("fraud.alert", now, subject_id="t1", amount=1, currency="BRL"),
        ]
    )
    page = back_office.get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'src="chart/volume.svg"' in html
    assert 'src="chart/fraud-rate.svg"' in html
    assert "<td>128456</td>" in html  # completed volume over the 30 days, in minor units
    assert "<td>1.0000</td>" in html  # fraud rate: one alert over one screening
    assert "<script>" not in html.split("</head>")[1]  # no inline script: the admin's CSP allows none


@pytest.mark.parametrize(("name", "title"), [("volume", "Volume of completed transfers"), ("fraud-rate", "Fraud rate")])
def test_each_chart_is_an_inert_svg_of_the_30_days(back_office, name, title):
    services.facts_record(events=[completed(123_456, moment=timezone.now())])
    response = back_office.get(f"{PAGE}chart/{name}.svg")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    svg = ElementTree.fromstring(response.content)  # noqa: S314 - the bank's own chart
    assert svg.tag == f"{SVG}svg"
    assert svg.find(f".//{SVG}script") is None
    text = " ".join(svg.itertext())
    assert title in text
    assert timezone.now().strftime("%d/%m") in text  # the last day is on the axis
    assert (timezone.now() - timedelta(days=29)).strftime("%d/%m") in text
    if name == "volume":
        values = [node.text for node in svg.iter() if node.get("class") == "value"]
        assert "1234.56" in values  # today's bar: R$ 1.234,56 in reais


def test_the_page_is_for_the_back_office_only(client):
    assert back_office_redirect(client.get(PAGE))
    assert back_office_redirect(client.get(f"{PAGE}chart/volume.svg"))


def back_office_redirect(response) -> bool:
    return response.status_code == 302 and "/admin/login/" in response["Location"]
