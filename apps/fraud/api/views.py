from __future__ import annotations

import uuid
from collections.abc import Callable

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.fraud import selectors, services
from apps.fraud.api.serializers import AlertListQuery, AlertOutput, ReviewDecisionInput
from apps.fraud.models import Alert
from apps.fraud.rules import CATALOGUE
from fintech.api.idempotency import idempotent
from fintech.api.pagination import BankCursorPagination
from fintech.auth.permissions import require_staff

# Alerts and reviews are the back office's: a customer's token never, whatever its scopes.
ANALYSTS_ONLY = "see fraud alerts or decide reviews"


class AlertPagination(BankCursorPagination):
    ordering = "-raised_at"


class AlertListView(GenericAPIView[Alert]):
    required_scopes = {"GET": ("fraud:review",)}
    serializer_class = AlertOutput
    pagination_class = AlertPagination

    @extend_schema(
        operation_id="fraud_alerts_list",
        description=(
            "Transfers and payments the anti-fraud rules held for review or rejected, newest first, "
            "with the rules that fired, their scores and the facts they saw."
        ),
        parameters=[
            OpenApiParameter("status", str, enum=[s.value for s in Alert.Status]),
            OpenApiParameter("account_id", uuid.UUID, description="The account the money leaves."),
            OpenApiParameter("rule", str, enum=list(CATALOGUE), description="Alerts on which this rule fired."),
            OpenApiParameter("from", str, description="Raised at or after: RFC 3339 date-time or date."),
            OpenApiParameter("to", str, description="Raised before: RFC 3339 date-time, or a date (inclusive)."),
            OpenApiParameter("cursor", str),
            OpenApiParameter("page_size", int),
        ],
        responses=AlertOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        require_staff(request, action=ANALYSTS_ONLY)
        query = AlertListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = self.paginate_queryset(selectors.alert_list(**query.validated_data))
        return self.get_paginated_response(AlertOutput(page, many=True).data)


Decide = Callable[..., Alert]


class ReviewDecisionView(APIView):
    required_scopes = {"POST": ("fraud:review",)}

    def decide(self, request: Request, transfer_id: uuid.UUID, command: Decide) -> Response:
        analyst = require_staff(request, action=ANALYSTS_ONLY)
        payload = ReviewDecisionInput(data=request.data if request.data else {})
        payload.is_valid(raise_exception=True)
        alert = command(
            subject_id=transfer_id,
            decided_by=analyst.subject,
            decider_kind=analyst.kind,
            reason=payload.validated_data["reason"],
        )
        decided = selectors.alert_of(subject_id=transfer_id) or alert
        return Response(AlertOutput(decided).data)


_DECISION_DOC = (
    "The transfer (or payment) with this id must be held for review: 409 `transfer_not_in_review` "
    "otherwise, 409 `review_already_decided` once an analyst or the time-out has decided it."
)


class ReviewApproveView(ReviewDecisionView):
    @extend_schema(
        operation_id="fraud_reviews_approve",
        request=ReviewDecisionInput,
        responses=AlertOutput,
        description="Approve a transfer held for review: it goes on to `completed`. " + _DECISION_DOC,
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
    )
    @idempotent(required=False)
    def post(self, request: Request, transfer_id: uuid.UUID) -> Response:
        return self.decide(request, transfer_id, services.review_approve)


class ReviewRejectView(ReviewDecisionView):
    @extend_schema(
        operation_id="fraud_reviews_reject",
        request=ReviewDecisionInput,
        responses=AlertOutput,
        description=(
            "Reject a transfer held for review: it fails with `fraud_rejected` and its hold is released. "
            + _DECISION_DOC
        ),
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
    )
    @idempotent(required=False)
    def post(self, request: Request, transfer_id: uuid.UUID) -> Response:
        return self.decide(request, transfer_id, services.review_reject)
