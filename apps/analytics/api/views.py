from __future__ import annotations

from datetime import date

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.analytics import selectors
from apps.analytics.api.serializers import SummaryInput, SummaryOutput
from fintech.auth.permissions import require_staff


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
        require_staff(request, action="read the bank's figures")
        query = SummaryInput(data=request.query_params, context={"today": timezone.now().date()})
        query.is_valid(raise_exception=True)
        summary = selectors.summary(**query.validated_data)
        return Response(SummaryOutput(summary.as_dict()).data)
