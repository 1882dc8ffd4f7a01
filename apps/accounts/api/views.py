from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import selectors, services
from apps.accounts.api.serializers import AccountOpenInput, AccountOutput, AccountStatusInput, StatementPage
from apps.accounts.models import BankAccount
from apps.ledger import public as ledger
from fintech.api.idempotency import idempotent
from fintech.api.query import period_params
from fintech.auth.permissions import current_principal, require_customer_access
from fintech.errors import ValidationFailed

StatusCommand = Callable[..., BankAccount]


def _render(accounts: Iterable[BankAccount], *, many: bool = False) -> Any:
    accounts = list(accounts)
    balances = ledger.balances_of([a.id for a in accounts])
    if many:
        return AccountOutput(accounts, many=True, context={"balances": balances}).data
    return AccountOutput(accounts[0], context={"balances": balances}).data


def _owned_account(request: Request, account_id: uuid.UUID) -> BankAccount:
    account = selectors.account_get(account_id=account_id)
    if account is None:
        raise services.AccountNotFound(f"No account {account_id}.")
    require_customer_access(request, account.customer_id)
    return account


class AccountListOpenView(GenericAPIView[BankAccount]):
    required_scopes = {"GET": ("accounts:read",), "POST": ("accounts:write",)}
    serializer_class = AccountOutput

    @extend_schema(
        operation_id="accounts_list",
        parameters=[
            OpenApiParameter("customer_id", uuid.UUID),
            OpenApiParameter("status", str, enum=["active", "blocked", "closed"]),
        ],
        responses=AccountOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        principal = current_principal(request)
        customer_filter = request.query_params.get("customer_id")
        try:
            customer_id = uuid.UUID(customer_filter) if customer_filter else None
        except ValueError:
            raise ValidationFailed("customer_id must be a UUID.", errors={"customer_id": ["Must be a UUID."]}) from None
        if principal.is_customer:
            customer_id = principal.customer_id
        accounts = selectors.account_list(customer_id=customer_id, status=request.query_params.get("status") or None)
        page = self.paginate_queryset(accounts)
        return self.get_paginated_response(_render(page or [], many=True))

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
        return Response(_render([account]), status=status.HTTP_201_CREATED)


class AccountDetailView(APIView):
    required_scopes = {"GET": ("accounts:read",)}

    @extend_schema(operation_id="accounts_retrieve", responses=AccountOutput)
    def get(self, request: Request, account_id: uuid.UUID) -> Response:
        return Response(_render([_owned_account(request, account_id)]))


class _AccountStatusView(APIView):
    required_scopes = {"POST": ("accounts:write",)}
    staff_only = True

    def change_status(self, request: Request, account_id: uuid.UUID, command: StatusCommand) -> Response:
        principal = current_principal(request)
        if self.staff_only and principal.is_customer:
            raise PermissionDenied("A customer's token cannot change this account status.", code="staff_only")
        _owned_account(request, account_id)
        payload = AccountStatusInput(data=request.data or {})
        payload.is_valid(raise_exception=True)
        account = command(account_id=account_id, reason=payload.validated_data["reason"], changed_by=principal.subject)
        return Response(_render([account]))


class AccountBlockView(_AccountStatusView):
    @extend_schema(operation_id="accounts_block", request=AccountStatusInput, responses=AccountOutput)
    def post(self, request: Request, account_id: uuid.UUID) -> Response:
        return self.change_status(request, account_id, services.account_block)


class AccountUnblockView(_AccountStatusView):
    @extend_schema(operation_id="accounts_unblock", request=AccountStatusInput, responses=AccountOutput)
    def post(self, request: Request, account_id: uuid.UUID) -> Response:
        return self.change_status(request, account_id, services.account_unblock)


class AccountCloseView(_AccountStatusView):
    staff_only = False  # customers may close their own accounts

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
        params = request.query_params
        posted_from, posted_to = period_params(params.get("from"), params.get("to"))
        try:
            cursor = int(params["cursor"]) if params.get("cursor") else None
            size = min(max(int(params.get("page_size", 50)), 1), self.max_page_size)
        except ValueError:
            raise ValidationFailed(
                "cursor and page_size must be whole numbers.", errors={"cursor": ["Invalid cursor."]}
            ) from None
        lines = ledger.statement(
            account_id=account_id, posted_from=posted_from, posted_to=posted_to, before_cursor=cursor, limit=size + 1
        )
        next_url = None
        if len(lines) > size:
            lines = lines[:size]
            query = params.copy()
            query["cursor"] = str(lines[-1].cursor)
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        results = [
            {
                "entry_id": str(line.entry_id),
                "transaction_id": str(line.transaction_id),
                "direction": line.direction,
                "amount": line.amount,
                "currency": line.currency,
                "balance_after": line.balance_after,
                "description": line.description,
                "kind": line.kind,
                "posted_at": line.posted_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            }
            for line in lines
        ]
        return Response({"results": results, "next": next_url})
