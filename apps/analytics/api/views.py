from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.analytics import selectors
from apps.analytics.api.serializers import SummaryInput, SummaryOutput
from fintech.auth.permissions import current_principal
from fintech.errors import ValidationFailed

# A summary reads at most this many days: a year and a day covers any report a person asks for.
MAX_DAYS = 366


def period(query: Any, *, today: date) -> tuple[date, date]:
    payload = SummaryInput(data=query)
    payload.is_valid(raise_exception=True)
    day_to: date = payload.validated_data.get("to") or today
    day_from: date = payload.validated_data.get("from") or day_to - timedelta(days=29)
    if day_from > day_to:
        raise ValidationFailed("from must not be after to.", errors={"from": ["Must be on or before to."]})
    if (day_to - day_from).days >= MAX_DAYS:
        raise ValidationFailed(
            f"A summary covers at most {MAX_DAYS} days.", code="period_too_long", errors={"from": ["Period too long."]}
        )
    return day_from, day_to


class SummaryView(APIView):
    required_scopes = {"GET": ("analytics:read",)}

    @extend_schema(
        operation_id="analytics_summary",
        parameters=[
            OpenApiParameter("from", date, description="First day, UTC (default: 29 days before `to`)."),
            OpenApiParameter("to", date, description="Last day, inclusive, UTC (default: today)."),
        ],
        responses=SummaryOutput,
        description=(
            "The bank's figures over a period of at most 366 days: per currency, transfers by status, deposits, "
            "payments by outcome and fraud (screenings, alerts, reviews and the fraud rate, alerts / screened); "
            "customers created, verified and rejected; and the same per day. Correct under redelivered events."
        ),
    )
    def get(self, request: Request) -> Response:
        if current_principal(request).is_customer:
            raise PermissionDenied("The bank's figures are for its staff.", code="staff_only")
        day_from, day_to = period(request.query_params, today=timezone.now().date())
        summary = selectors.summary(day_from=day_from, day_to=day_to)
        return Response(SummaryOutput(summary.as_dict()).data)
