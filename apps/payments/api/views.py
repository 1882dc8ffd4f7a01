from __future__ import annotations

import uuid

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.payments import selectors, services
from apps.payments.api.serializers import PaymentInput, PaymentOutput
from apps.payments.errors import PaymentNotFound
from apps.payments.models import Payment
from fintech.api.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from fintech.api.query import uuid_param
from fintech.auth.permissions import current_principal
from fintech.errors import ValidationFailed

# The contract names no payments:read scope: payments are the transfers that leave the bank, and
# whoever may read transfers may read them.
READ_SCOPES = ("transfers:read",)


class PaymentListCreateView(GenericAPIView[Payment]):
    required_scopes = {"GET": READ_SCOPES, "POST": ("payments:write",)}
    serializer_class = PaymentOutput

    @extend_schema(
        operation_id="payments_list",
        parameters=[
            OpenApiParameter("account_id", uuid.UUID),
            OpenApiParameter("status", str, enum=[s.value for s in Payment.Status]),
        ],
        responses=PaymentOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        principal = current_principal(request)
        account_id = uuid_param(request.query_params.get("account_id"), "account_id")
        wanted = request.query_params.get("status") or None
        if wanted is not None and wanted not in Payment.Status.values:
            raise ValidationFailed(
                f"status is one of {', '.join(Payment.Status.values)}.",
                errors={"status": [f"Must be one of {', '.join(Payment.Status.values)}."]},
            )
        payments = selectors.payment_list(
            account_id=account_id,
            status=wanted,
            customer_id=principal.customer_id if principal.is_customer else None,
        )
        page = self.paginate_queryset(payments)
        return self.get_paginated_response(PaymentOutput(page, many=True).data)

    @extend_schema(
        operation_id="payments_create",
        request=PaymentInput,
        responses={202: PaymentOutput},
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        description=(
            "Send money to an account at another bank, or to a PIX key. The amount is held at once "
            "(422 insufficient_funds otherwise); the payment is screened, sent to the payment network "
            "and becomes settled or returned when the network answers: poll GET /payments/{id}."
        ),
    )
    @idempotent(required=True)
    def post(self, request: Request) -> Response:
        principal = current_principal(request)
        payload = PaymentInput(data=request.data)
        payload.is_valid(raise_exception=True)
        payment = services.payment_initiate(
            **payload.validated_data,
            initiated_by=principal.subject,
            on_behalf_of=principal.customer_id if principal.is_customer else None,
        )
        found = selectors.payment_get(payment_id=payment.id)
        return Response(PaymentOutput(found or payment).data, status=status.HTTP_202_ACCEPTED)


class PaymentDetailView(APIView):
    required_scopes = {"GET": READ_SCOPES}

    @extend_schema(operation_id="payments_retrieve", responses=PaymentOutput)
    def get(self, request: Request, payment_id: uuid.UUID) -> Response:
        principal = current_principal(request)
        payment = selectors.payment_get(payment_id=payment_id)
        if payment is None or (principal.is_customer and principal.customer_id != payment.customer_id):
            raise PaymentNotFound(f"No payment {payment_id}.")
        return Response(PaymentOutput(payment).data)
