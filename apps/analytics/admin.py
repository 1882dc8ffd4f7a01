"""The back office's analytics page: the last 30 days' figures, with charts drawn on the server."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone

from apps.analytics import charts, selectors
from apps.analytics.facts import NO_CURRENCY
from apps.analytics.models import DailyFigure
from fintech.backoffice import ReadOnly

DAYS = 30


def _last_days(today: date) -> list[date]:
    return [today - timedelta(days=offset) for offset in range(DAYS - 1, -1, -1)]


def _series(days: list[date]) -> tuple[dict[str, list[int]], dict[str, list[float | None]]]:
    summary = selectors.summary(day_from=days[0], day_to=days[-1])
    by_day = {entry["day"]: entry for entry in summary.days}
    currencies = sorted({figures.currency for figures in summary.totals} - {NO_CURRENCY})
    volumes: dict[str, list[int]] = {currency: [] for currency in currencies}
    rates: dict[str, list[float | None]] = {currency: [] for currency in currencies}
    for day in days:
        entry: dict[str, Any] = by_day.get(day, {})
        totals: dict[str, Any] = {str(figures["currency"]): figures for figures in entry.get("totals", [])}
        for currency in currencies:
            figures = totals.get(currency)
            volumes[currency].append(figures["transfers"]["completed"]["volume"] if figures else 0)
            rates[currency].append(figures["fraud"]["rate"] if figures else None)
    return volumes, rates


@admin.register(DailyFigure)
class DailyFigureAdmin(ReadOnly, admin.ModelAdmin[DailyFigure]):
    """The changelist is the dashboard; the figures change only through events."""

    def get_urls(self) -> list[URLPattern]:
        chart = self.admin_site.admin_view(self.chart_view)
        return [path("chart/<str:name>.svg", chart, name="analytics_dailyfigure_chart"), *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        days = _last_days(timezone.now().date())
        summary = selectors.summary(day_from=days[0], day_to=days[-1])
        context = {
            **self.admin_site.each_context(request),
            "title": f"Analytics: the last {DAYS} days",
            "opts": self.model._meta,
            "summary": summary,
            "totals": [figures.as_dict() for figures in summary.totals],
            "day_from": days[0],
            "day_to": days[-1],
        }
        return TemplateResponse(request, "admin/analytics/dashboard.html", context)

    def chart_view(self, request: HttpRequest, name: str) -> HttpResponse:
        days = _last_days(timezone.now().date())
        volumes, rates = _series(days)
        if name == "volume":
            svg = charts.daily_volume_chart(days, volumes)
        elif name == "fraud-rate":
            svg = charts.fraud_rate_chart(days, rates)
        else:
            return HttpResponse(status=404)
        response = HttpResponse(svg, content_type="image/svg+xml")
        response["Cache-Control"] = "private, max-age=60"
        return response
