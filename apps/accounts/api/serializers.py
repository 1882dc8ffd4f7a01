from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import serializers

from apps.accounts.models import BankAccount
from apps.accounts.selectors import NO_MONEY, AccountBalance
from fintech.api.serializers import QueryInput, StrictInputSerializer

STATEMENT_PAGE_SIZE = 50


class AccountOpenInput(StrictInputSerializer):
    customer_id = serializers.UUIDField()
    currency = serializers.RegexField(r"^[A-Z]{3}$", required=False, help_text="ISO 4217; BRL by default.")


class AccountStatusInput(StrictInputSerializer):
    reason = serializers.CharField(max_length=280, required=False, allow_blank=True, default="")


class AccountListQuery(QueryInput):
    customer_id = serializers.UUIDField(required=False)
    status = serializers.CharField(required=False)


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


class MomentField(serializers.Field[datetime, str, str, Any]):
    """An RFC 3339 date-time, or a date meaning its whole day: from its first instant, or (with
    `end=True`) up to the next day's first instant. A time without an offset is UTC."""

    default_error_messages = {"invalid": "Invalid date or date-time."}

    def __init__(self, *, end: bool = False, **kwargs: Any) -> None:
        self.end = end
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> datetime:
        moment = parse_datetime(str(data))
        if moment is None:
            day = parse_date(str(data))
            if day is None:
                self.fail("invalid")
            moment = datetime.combine(day + timedelta(days=1) if self.end else day, time.min)
        return timezone.make_aware(moment, UTC) if timezone.is_naive(moment) else moment

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


class StatementQuery(QueryInput):
    """`from` and `to` (Python keywords, hence declared in get_fields) bound the posting times;
    `cursor` is the last line of the previous page; `page_size` is clamped to 1..the view's
    `max_page_size` (in the context), not refused."""

    cursor = serializers.IntegerField(required=False)
    page_size = serializers.IntegerField(required=False, default=STATEMENT_PAGE_SIZE)

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        fields["from"] = MomentField(required=False, source="posted_from")
        fields["to"] = MomentField(end=True, required=False, source="posted_to")
        return fields

    def validate_page_size(self, value: int) -> int:
        return min(max(value, 1), int(self.context["max_page_size"]))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        posted_from, posted_to = attrs.get("posted_from"), attrs.get("posted_to")
        if posted_from and posted_to and posted_from >= posted_to:
            raise serializers.ValidationError({"from": ["Must be before to."]})
        return attrs


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
