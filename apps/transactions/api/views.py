from __future__ import annotations

import uuid

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.transactions import selectors, services
from apps.transactions.api.serializers import (
    DepositInput,
    DepositOutput,
    TransferBatchInput,
    TransferBatchOutput,
    TransferInput,
    TransferListQuery,
    TransferOutput,
)
from apps.transactions.errors import TransferNotFound
from apps.transactions.models import Transfer
from fintech.api.errors import domain_problem
from fintech.api.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from fintech.auth.permissions import current_principal, customer_scope, require_staff


def _transfer_status(transfer: Transfer) -> int:
    # 201 once the outcome is known; 202 while the choreography still runs (poll GET /transfers/{id}).
    return status.HTTP_201_CREATED if transfer.status in Transfer.FINAL else status.HTTP_202_ACCEPTED


def _transfer_response(transfer: Transfer) -> Response:
    return Response(TransferOutput(transfer).data, status=_transfer_status(transfer))


class TransferListCreateView(GenericAPIView[Transfer]):
    required_scopes = {"GET": ("transfers:read",), "POST": ("transfers:write",)}
    serializer_class = TransferOutput

    @extend_schema(
        operation_id="transfers_list",
        parameters=[TransferListQuery],
        responses=TransferOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        query = TransferListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        transfers = selectors.transfer_list(**query.validated_data, customer_id=customer_scope(request))
        page = self.paginate_queryset(transfers)
        return self.get_paginated_response(TransferOutput(page, many=True).data)

    @extend_schema(
        operation_id="transfers_create",
        request=TransferInput,
        responses={201: TransferOutput, 202: TransferOutput},
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
    )
    @idempotent(required=True)
    def post(self, request: Request) -> Response:
        payload = TransferInput(data=request.data)
        payload.is_valid(raise_exception=True)
        transfer = services.transfer_initiate(
            **payload.validated_data,
            initiated_by=current_principal(request).subject,
            on_behalf_of=customer_scope(request),
        )
        return _transfer_response(transfer)


class TransferBatchView(APIView):
    required_scopes = {"POST": ("transfers:write",)}

    @extend_schema(
        operation_id="transfers_batch",
        request=TransferBatchInput,
        responses={207: TransferBatchOutput},
        description=(
            "Up to 1,000 transfers in one request, each with its own client-chosen `id` (its idempotency key: "
            "the same id with the same transfer answers with that transfer, `replayed: true`; with another, "
            "`idempotency_key_reuse`). Each is accepted or refused on its own; the answer lists one result per "
            "transfer, in order, with the status it would have had alone."
        ),
    )
    def post(self, request: Request) -> Response:
        payload = TransferBatchInput(data=request.data)
        payload.is_valid(raise_exception=True)
        outcomes = services.transfers_initiate(
            requests=[services.TransferRequest(**item) for item in payload.validated_data["transfers"]],
            initiated_by=current_principal(request).subject,
            on_behalf_of=customer_scope(request),
        )
        results = []
        for outcome in outcomes:
            item: dict[str, object] = {"id": outcome.id, "replayed": outcome.replayed}
            if outcome.transfer is not None:
                item.update(status=_transfer_status(outcome.transfer), transfer=TransferOutput(outcome.transfer).data)
            elif outcome.error is not None:
                item.update(status=outcome.error.status, problem=domain_problem(outcome.error))
            results.append(item)
        return Response({"results": results}, status=status.HTTP_207_MULTI_STATUS)


class TransferDetailView(APIView):
    required_scopes = {"GET": ("transfers:read",)}

    @extend_schema(operation_id="transfers_retrieve", responses=TransferOutput)
    def get(self, request: Request, transfer_id: uuid.UUID) -> Response:
        transfer = selectors.transfer_get(transfer_id=transfer_id, customer_id=customer_scope(request))
        if transfer is None:
            raise TransferNotFound(f"No transfer {transfer_id}.")
        return Response(TransferOutput(transfer).data)


class DepositCreateView(APIView):
    required_scopes = {"POST": ("deposits:write",)}

    @extend_schema(
        operation_id="deposits_create",
        request=DepositInput,
        responses={201: DepositOutput},
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
    )
    @idempotent(required=True)
    def post(self, request: Request) -> Response:
        teller = require_staff(request, action="make deposits (tellers and cash-in systems do)")
        payload = DepositInput(data=request.data)
        payload.is_valid(raise_exception=True)
        deposit = services.deposit_make(**payload.validated_data, made_by=teller.subject)
        return Response(DepositOutput(deposit).data, status=status.HTTP_201_CREATED)
