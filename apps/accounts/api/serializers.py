from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.accounts.models import BankAccount
from fintech.api.serializers import StrictInputSerializer


class AccountOpenInput(StrictInputSerializer):
    customer_id = serializers.UUIDField()
    currency = serializers.RegexField(r"^[A-Z]{3}$", required=False, help_text="ISO 4217; BRL by default.")


class AccountStatusInput(StrictInputSerializer):
    reason = serializers.CharField(max_length=280, required=False, allow_blank=True, default="")


class AccountOutput(serializers.ModelSerializer[BankAccount]):
    balance = serializers.SerializerMethodField(help_text="Posted balance in minor units.")
    available_balance = serializers.SerializerMethodField(help_text="Posted balance minus holds, in minor units.")

    class Meta:
        model = BankAccount
        fields = [
            "id",
            "number",
            "branch",
            "customer_id",
            "currency",
            "balance",
            "available_balance",
            "status",
            "created_at",
        ]
        read_only_fields = fields

    def _balance(self, account: BankAccount) -> Any:
        balances = self.context.get("balances", {})
        return balances.get(account.id)

    def get_balance(self, account: BankAccount) -> int:
        balance = self._balance(account)
        return balance.balance if balance else 0

    def get_available_balance(self, account: BankAccount) -> int:
        balance = self._balance(account)
        return balance.available if balance else 0


class StatementLineOutput(serializers.Serializer[Any]):
    entry_id = serializers.UUIDField()
    transaction_id = serializers.UUIDField()
    direction = serializers.ChoiceField(choices=["debit", "credit"])
    amount = serializers.IntegerField()
    currency = serializers.CharField()
    balance_after = serializers.IntegerField()
    description = serializers.CharField()
    kind = serializers.CharField()
    posted_at = serializers.DateTimeField()


class StatementPage(serializers.Serializer[Any]):
    results = StatementLineOutput(many=True)
    next = serializers.URLField(allow_null=True)
