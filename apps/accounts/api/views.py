from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import selectors, services
from apps.accounts.api.serializers import (
    AccountListQuery,
    AccountOpenInput,
    AccountOutput,
    AccountStatusInput,
    StatementPage,
    StatementQuery,
)
from apps.accounts.errors import AccountNotFound
from apps.accounts.models import BankAccount
from fintech.api.idempotency import idempotent
from fintech.auth.permissions import current_principal, customer_scope, require_customer_access, require_staff

StatusCommand = Callable[..., BankAccount]


def _rendered(accounts: Sequence[BankAccount]) -> Any:
    return AccountOutput(accounts, many=True, context={"balances": selectors.account_balances(accounts)}).data


def _owned_account(request: Request, account_id: uuid.UUID) -> BankAccount:
    account = selectors.account_get(account_id=account_id)
    if account is None:
        raise AccountNotFound(f"No account {account_id}.")
    require_customer_access(request, account.customer_id)
    return account


class AccountListOpenView(GenericAPIView[BankAccount]):
    required_scopes = {"GET": ("accounts:read",), "POST": ("accounts:write",)}
    serializer_class = AccountOutput

    @extend_schema(
        operation_id="accounts_list",
        parameters=[AccountListQuery],
        responses=AccountOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        query = AccountListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = dict(query.validated_data)
        own = customer_scope(request)
        if own is not None:
            filters["customer_id"] = own  # a customer's token lists its own accounts, whatever it asks for
        page = self.paginate_queryset(selectors.account_list(**filters))
        return self.get_paginated_response(_rendered(page or []))

    @extend_schema(
        operation_id="accounts_open",
        request=AccountOpenInput,
        responses={201: AccountOutput},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
    )
    @idempotent(required=False)
    def post(self, request: Request) -> Response:
        payload = AccountOpenInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        require_customer_access(request, data["customer_id"])
        account = services.account_open(customer_id=data["customer_id"], currency=data.get("currency"))
        return Response(_rendered([account])[0], status=status.HTTP_201_CREATED)


class AccountDetailView(APIView):
    required_scopes = {"GET": ("accounts:read",)}

    @extend_schema(operation_id="accounts_retrieve", responses=AccountOutput)
    def get(self, request: Request, account_id: uuid.UUID) -> Response:
        return Response(_rendered([_owned_account(request, account_id)])[0])


class _AccountStatusView(APIView):
    required_scopes = {"POST": ("accounts:write",)}

    def change_status(self, request: Request, account_id: uuid.UUID, command: StatusCommand) -> Response:
        _owned_account(request, account_id)
        payload = AccountStatusInput(data=request.data or {})
        payload.is_valid(raise_exception=True)
        account = command(
            account_id=account_id,
            reason=payload.validated_data["reason"],
            changed_by=current_principal(request).subject,
        )
        return Response(_rendered([account])[0])


class AccountBlockView(_AccountStatusView):
    @extend_schema(operation_id="accounts_block", request=AccountStatusInput, responses=AccountOutput)
    def post(self, request: Request, account_id: uuid.UUID) -> Response:
        require_staff(request, action="block an account")
        return self.change_status(request, account_id, services.account_block)


class AccountUnblockView(_AccountStatusView):
    @extend_schema(operation_id="accounts_unblock", request=AccountStatusInput, responses=AccountOutput)
    def post(self, request: Request, account_id: uuid.UUID) -> Response:
        require_staff(request, action="unblock an account")
        return self.change_status(request, account_id, services.account_unblock)


class AccountCloseView(_AccountStatusView):
    # Customers may close their own accounts.
    @extend_schema(operation_id="accounts_close", request=AccountStatusInput, responses=AccountOutput)
    def post(self, request: Request, account_id: uuid.UUID) -> Response:
        return self.change_status(request, account_id, services.account_close)


class AccountStatementView(APIView):
    required_scopes = {"GET": ("accounts:read",)}
    max_page_size = 200

    @extend_schema(
        operation_id="accounts_statement",
        parameters=[
            OpenApiParameter("from", str, description="RFC 3339 date-time or date, inclusive."),
            OpenApiParameter("to", str, description="RFC 3339 date-time (exclusive) or date (inclusive)."),
            OpenApiParameter("cursor", str),
            OpenApiParameter("page_size", int),
        ],
        responses=StatementPage,
    )
    def get(self, request: Request, account_id: uuid.UUID) -> Response:
        _owned_account(request, account_id)
        query = StatementQuery(data=request.query_params, context={"max_page_size": self.max_page_size})
        query.is_valid(raise_exception=True)
        size = query.validated_data["page_size"]
        lines = selectors.account_statement(
            account_id=account_id,
            posted_from=query.validated_data.get("posted_from"),
            posted_to=query.validated_data.get("posted_to"),
            before_cursor=query.validated_data.get("cursor"),
            limit=size + 1,
        )
        next_url = None
        if len(lines) > size:
            lines = lines[:size]
            params = request.query_params.copy()
            params["cursor"] = str(lines[-1].cursor)
            next_url = request.build_absolute_uri(f"{request.path}?{params.urlencode()}")
        return Response(StatementPage({"results": lines, "next": next_url}).data)
