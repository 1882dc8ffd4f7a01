from __future__ import annotations

import uuid

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.payments import selectors, services
from apps.payments.api.serializers import PaymentInput, PaymentListQuery, PaymentOutput
from apps.payments.errors import PaymentNotFound
from apps.payments.models import Payment
from fintech.api.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from fintech.auth.permissions import current_principal, customer_scope

# The contract names no payments:read scope: payments are the transfers that leave the bank, and
# whoever may read transfers may read them.
READ_SCOPES = ("transfers:read",)


class PaymentListCreateView(GenericAPIView[Payment]):
    required_scopes = {"GET": READ_SCOPES, "POST": ("payments:write",)}
    serializer_class = PaymentOutput

    @extend_schema(
        operation_id="payments_list",
        parameters=[PaymentListQuery],
        responses=PaymentOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        query = PaymentListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        payments = selectors.payment_list(**query.validated_data, customer_id=customer_scope(request))
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
        payload = PaymentInput(data=request.data)
        payload.is_valid(raise_exception=True)
        payment = services.payment_initiate(
            **payload.validated_data,
            initiated_by=current_principal(request).subject,
            on_behalf_of=customer_scope(request),
        )
        found = selectors.payment_get(payment_id=payment.id)
        return Response(PaymentOutput(found or payment).data, status=status.HTTP_202_ACCEPTED)


class PaymentDetailView(APIView):
    required_scopes = {"GET": READ_SCOPES}

    @extend_schema(operation_id="payments_retrieve", responses=PaymentOutput)
    def get(self, request: Request, payment_id: uuid.UUID) -> Response:
        payment = selectors.payment_get(payment_id=payment_id, customer_id=customer_scope(request))
        if payment is None:
            raise PaymentNotFound(f"No payment {payment_id}.")
        return Response(PaymentOutput(payment).data)
