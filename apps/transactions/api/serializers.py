from __future__ import annotations

from rest_framework import serializers

from apps.transactions.models import Deposit, Transfer
from fintech.api.serializers import MoneyInput


class TransferInput(MoneyInput):
    from_account_id = serializers.UUIDField()
    to_account_id = serializers.UUIDField()
    description = serializers.CharField(max_length=140, required=False, allow_blank=True, default="")


class DepositInput(MoneyInput):
    account_id = serializers.UUIDField()
    reference = serializers.CharField(max_length=120)


class TransferOutput(serializers.ModelSerializer[Transfer]):
    class Meta:
        model = Transfer
        fields = [
            "id",
            "from_account_id",
            "to_account_id",
            "amount",
            "currency",
            "description",
            "status",
            "failure_code",
            "journal_transaction_id",
            "created_at",
            "updated_at",
            "completed_at",
        ]
        read_only_fields = fields


class DepositOutput(serializers.ModelSerializer[Deposit]):
    status = serializers.SerializerMethodField()

    class Meta:
        model = Deposit
        fields = [
            "id",
            "account_id",
            "amount",
            "currency",
            "reference",
            "status",
            "journal_transaction_id",
            "created_at",
        ]
        read_only_fields = fields

    def get_status(self, deposit: Deposit) -> str:
        return "completed"
