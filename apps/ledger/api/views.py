from __future__ import annotations

import uuid

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.ledger import selectors
from apps.ledger.api.serializers import JournalTransactionOutput
from apps.ledger.errors import JournalTransactionNotFound
from fintech.auth.permissions import require_staff


class JournalTransactionDetailView(APIView):
    required_scopes = {"GET": ("ledger:read",)}

    @extend_schema(operation_id="ledger_transactions_retrieve", responses=JournalTransactionOutput)
    def get(self, request: Request, transaction_id: uuid.UUID) -> Response:
        require_staff(request, action="read the journal")
        journal = selectors.journal_transaction_get(transaction_id=transaction_id)
        if journal is None:
            raise JournalTransactionNotFound(f"No journal transaction {transaction_id}.")
        return Response(JournalTransactionOutput(journal).data)
