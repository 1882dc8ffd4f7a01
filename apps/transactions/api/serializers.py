from __future__ import annotations

from rest_framework import serializers

from apps.transactions.models import Deposit, Transfer
from fintech.api.serializers import QueryInput, StrictInputSerializer


class StrictIntegerField(serializers.IntegerField):
    """An integer that must arrive as a JSON integer: "100", 100.0 and true are refused, so a
    client's float or string never turns silently into money."""

    def to_internal_value(self, data: object) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class MoneyInput(StrictInputSerializer):
    amount = StrictIntegerField(help_text="Minor units: 1050 is 10.50.")
    currency = serializers.RegexField(r"^[A-Z]{3}$", help_text="ISO 4217.")


class TransferInput(MoneyInput):
    from_account_id = serializers.UUIDField()
    to_account_id = serializers.UUIDField()
    description = serializers.CharField(max_length=140, required=False, allow_blank=True, default="")


class DepositInput(MoneyInput):
    account_id = serializers.UUIDField()
    reference = serializers.CharField(max_length=120)


class TransferListQuery(QueryInput):
    account_id = serializers.UUIDField(required=False)
    status = serializers.CharField(required=False)


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
