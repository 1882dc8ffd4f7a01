from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.ledger import selectors
from fintech.auth.permissions import current_principal
from fintech.errors import NotFound

EntryOutput = inline_serializer(
    "LedgerEntry",
    {
        "entry_id": serializers.UUIDField(),
        "ledger_account_id": serializers.UUIDField(),
        "ledger_account_code": serializers.CharField(),
        "account_id": serializers.UUIDField(allow_null=True),
        "side": serializers.ChoiceField(choices=["debit", "credit"]),
        "amount": serializers.IntegerField(),
        "currency": serializers.CharField(),
        "balance_after": serializers.IntegerField(),
    },
)
JournalOutput = inline_serializer(
    "JournalTransaction",
    {
        "id": serializers.UUIDField(),
        "kind": serializers.CharField(),
        "posting_key": serializers.CharField(),
        "reference": serializers.CharField(),
        "description": serializers.CharField(),
        "reverses": serializers.UUIDField(allow_null=True),
        "posted_at": serializers.DateTimeField(),
        "entries": serializers.ListField(child=EntryOutput),
    },
)


class JournalTransactionNotFound(NotFound):
    code = "journal_transaction_not_found"
    title = "Journal transaction not found"


class JournalTransactionDetailView(APIView):
    required_scopes = {"GET": ("ledger:read",)}

    @extend_schema(operation_id="ledger_transactions_retrieve", responses=JournalOutput)
    def get(self, request: Request, transaction_id: uuid.UUID) -> Response:
        if current_principal(request).is_customer:
            raise PermissionDenied("The journal is for the bank's staff.", code="staff_only")
        journal = selectors.journal_transaction_get(transaction_id=transaction_id)
        if journal is None:
            raise JournalTransactionNotFound(f"No journal transaction {transaction_id}.")
        body: dict[str, Any] = {
            "id": str(journal.id),
            "kind": journal.kind,
            "posting_key": journal.posting_key,
            "reference": journal.reference,
            "description": journal.description,
            "reverses": str(journal.reverses_id) if journal.reverses_id else None,
            "posted_at": serializers.DateTimeField().to_representation(journal.posted_at),
            "entries": [
                {
                    "entry_id": str(entry.entry_id),
                    "ledger_account_id": str(entry.account_id),
                    "ledger_account_code": entry.account.code,
                    "account_id": str(entry.account.owner_ref) if entry.account.owner_ref else None,
                    "side": entry.side,
                    "amount": entry.amount,
                    "currency": entry.currency,
                    "balance_after": entry.balance_after,
                }
                for entry in journal.entries.all().order_by("id")
            ],
        }
        return Response(body)
