from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.customers import selectors, services
from apps.customers.api.serializers import (
    CustomerCreateInput,
    CustomerDetailOutput,
    CustomerListQuery,
    CustomerOutput,
    CustomerRejectInput,
)
from apps.customers.errors import CustomerNotFound
from apps.customers.models import Customer
from fintech.api.idempotency import idempotent
from fintech.auth.permissions import customer_scope, require_customer_access, require_staff


class CustomerListCreateView(GenericAPIView[Customer]):
    required_scopes = {"GET": ("customers:read",), "POST": ("customers:write",)}
    serializer_class = CustomerOutput

    @extend_schema(
        operation_id="customers_list",
        parameters=[CustomerListQuery],
        responses=CustomerOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        query = CustomerListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        customers = selectors.customer_list(**query.validated_data, only_customer_id=customer_scope(request))
        page = self.paginate_queryset(customers)
        return self.get_paginated_response(CustomerOutput(page, many=True).data)

    @extend_schema(
        operation_id="customers_create",
        request=CustomerCreateInput,
        responses={201: CustomerOutput},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
    )
    @idempotent(required=False)
    def post(self, request: Request) -> Response:
        require_staff(request, action="onboard customers")
        payload = CustomerCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        customer = services.customer_create(**payload.validated_data)
        return Response(CustomerOutput(customer).data, status=status.HTTP_201_CREATED)


class CustomerDetailView(APIView):
    required_scopes = {"GET": ("customers:read",)}

    @extend_schema(operation_id="customers_retrieve", responses=CustomerDetailOutput)
    def get(self, request: Request, customer_id: uuid.UUID) -> Response:
        require_customer_access(request, customer_id)
        customer = selectors.customer_get(customer_id=customer_id)
        if customer is None:
            raise CustomerNotFound(f"No customer {customer_id}.")
        return Response(CustomerDetailOutput(customer).data)


class CustomerVerifyView(APIView):
    required_scopes = {"POST": ("kyc:review",)}

    @extend_schema(operation_id="customers_verify", request=None, responses=CustomerOutput)
    def post(self, request: Request, customer_id: uuid.UUID) -> Response:
        reviewer = require_staff(request, action="take KYC decisions")
        customer = services.customer_verify(customer_id=customer_id, reviewer=reviewer.subject)
        return Response(CustomerOutput(customer).data)


class CustomerRejectView(APIView):
    required_scopes = {"POST": ("kyc:review",)}

    @extend_schema(operation_id="customers_reject", request=CustomerRejectInput, responses=CustomerOutput)
    def post(self, request: Request, customer_id: uuid.UUID) -> Response:
        reviewer = require_staff(request, action="take KYC decisions")
        payload = CustomerRejectInput(data=request.data if request.data else {})
        payload.is_valid(raise_exception=True)
        data: dict[str, Any] = payload.validated_data
        customer = services.customer_reject(customer_id=customer_id, reviewer=reviewer.subject, reason=data["reason"])
        return Response(CustomerOutput(customer).data)


class CustomerEraseView(APIView):
    # Its own scope: onboarding and changing customers (customers:write) is not erasing them.
    required_scopes = {"POST": ("customers:erase",)}

    @extend_schema(
        operation_id="customers_erase",
        request=None,
        responses=CustomerOutput,
        description=(
            "Erase the customer's personal data on their request (LGPD/GDPR): name, e-mail, phone, "
            "birth date and document. Staff only, with the scope `customers:erase`. Refused with 409 "
            "`customer_has_open_accounts` while an account of theirs is not closed, and 409 "
            "`customer_has_pending_money` while a hold, a transfer or payment not final, or a fraud "
            "review of theirs is open. The financial records stay (accounts, the journal, transfers, "
            "payments: LGPD art. 16), pointing at the customer's id. Erasing again changes nothing."
        ),
    )
    def post(self, request: Request, customer_id: uuid.UUID) -> Response:
        staff = require_staff(request, action="erase customers")
        customer = services.customer_erase(customer_id=customer_id, erased_by=staff.subject)
        return Response(CustomerOutput(customer).data)
