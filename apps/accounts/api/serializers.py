from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.accounts.models import BankAccount
from apps.accounts.selectors import NO_MONEY, AccountBalance
from fintech.api.serializers import PeriodQuery, QueryInput, StrictInputSerializer

STATEMENT_PAGE_SIZE = 50


class AccountOpenInput(StrictInputSerializer):
    customer_id = serializers.UUIDField()
    currency = serializers.RegexField(r"^[A-Z]{3}$", required=False, help_text="ISO 4217; BRL by default.")


class AccountStatusInput(StrictInputSerializer):
    reason = serializers.CharField(max_length=280, required=False, allow_blank=True, default="")


class AccountListQuery(QueryInput):
    customer_id = serializers.UUIDField(required=False)
    status = serializers.ChoiceField(choices=BankAccount.Status.values, required=False)


class AccountOutput(serializers.ModelSerializer[BankAccount]):
    # The balances come in the context, as `balances` (selectors.account_balances).

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

    def _balance(self, account: BankAccount) -> AccountBalance:
        balances: dict[Any, AccountBalance] = self.context.get("balances", {})
        return balances.get(account.id, NO_MONEY)

    def get_balance(self, account: BankAccount) -> int:
        return self._balance(account).balance

    def get_available_balance(self, account: BankAccount) -> int:
        return self._balance(account).available


class StatementQuery(PeriodQuery):
    """`from` and `to` bound the posting times; `cursor` is the last line of the previous page;
    `page_size` is clamped to 1..the view's `max_page_size` (in the context), not refused."""

    period_names = ("posted_from", "posted_to")
    cursor = serializers.IntegerField(required=False)
    page_size = serializers.IntegerField(required=False, default=STATEMENT_PAGE_SIZE)

    def validate_page_size(self, value: int) -> int:
        return min(max(value, 1), int(self.context["max_page_size"]))


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
