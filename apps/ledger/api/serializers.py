from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers


@extend_schema_serializer(component_name="LedgerEntry")
class JournalEntryOutput(serializers.Serializer[Any]):
    entry_id = serializers.UUIDField()
    ledger_account_id = serializers.UUIDField(source="account_id")
    ledger_account_code = serializers.CharField(source="account.code")
    account_id = serializers.UUIDField(
        source="account.owner_ref", allow_null=True, help_text="The bank account behind it; null for the bank's own."
    )
    side = serializers.ChoiceField(choices=["debit", "credit"])
    amount = serializers.IntegerField()
    currency = serializers.CharField()
    balance_after = serializers.IntegerField()


@extend_schema_serializer(component_name="JournalTransaction")
class JournalTransactionOutput(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    kind = serializers.CharField()
    posting_key = serializers.CharField()
    reference = serializers.CharField()
    description = serializers.CharField()
    reverses = serializers.UUIDField(source="reverses_id", allow_null=True)
    posted_at = serializers.DateTimeField()
    entries = JournalEntryOutput(many=True)
