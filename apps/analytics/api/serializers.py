"""What GET /analytics/summary answers. Volumes are integer minor units; the fraud rate is
alerts / screened (null when nothing was screened)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from rest_framework import serializers

from fintech.api.serializers import StrictInputSerializer
from fintech.errors import ValidationFailed

# A summary reads at most this many days: a year and a day covers any report a person asks for.
MAX_DAYS = 366
DEFAULT_DAYS = 30


class SummaryInput(StrictInputSerializer):
    # `from` is a Python keyword: the serializer reads it under that name all the same.
    to = serializers.DateField(required=False, help_text="Last day, inclusive (UTC). Default: today.")

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]
        fields = super().get_fields()
        fields["from"] = serializers.DateField(
            required=False, help_text="First day (UTC). Default: 29 days before `to`."
        )
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, date]:
        """The period as `day_from` and `day_to`, both inclusive; `today` comes in the context."""
        day_to: date = attrs.get("to") or self.context["today"]
        day_from: date = attrs.get("from") or day_to - timedelta(days=DEFAULT_DAYS - 1)
        if day_from > day_to:
            raise ValidationFailed("from must not be after to.", errors={"from": ["Must be on or before to."]})
        if (day_to - day_from).days >= MAX_DAYS:
            raise ValidationFailed(
                f"A summary covers at most {MAX_DAYS} days.",
                code="period_too_long",
                errors={"from": ["Period too long."]},
            )
        return {"day_from": day_from, "day_to": day_to}


class CountVolume(serializers.Serializer[dict[str, int]]):
    count = serializers.IntegerField()
    volume = serializers.IntegerField(help_text="Minor units.")


class TransferFigures(serializers.Serializer[dict[str, object]]):
    initiated = CountVolume()
    review = CountVolume()
    completed = CountVolume()
    failed = CountVolume()


class PaymentFigures(serializers.Serializer[dict[str, object]]):
    """Outbound payments as the payments context booked them (not the network's raw answers)."""

    initiated = CountVolume()
    review = CountVolume(help_text="Held by the screening for an analyst.")
    settled = CountVolume(help_text="Settled by the network: the money left the bank.")
    returned = CountVolume(help_text="Returned by the network: the money came back to the customer.")
    failed = CountVolume(
        help_text="Never sent: rejected by the screening or its review, or its account was blocked or closed meanwhile."
    )


class CreditFigures(serializers.Serializer[dict[str, object]]):
    """Credits from other banks for our customers."""

    credited = CountVolume(help_text="Booked to the customer's account.")
    returned = CountVolume(help_text="Refused by the bank (no such account, closed, blocked, another currency).")


class FraudDecisions(serializers.Serializer[dict[str, int]]):
    approve = serializers.IntegerField()
    review = serializers.IntegerField()
    reject = serializers.IntegerField()


class FraudReviews(serializers.Serializer[dict[str, int]]):
    approved = serializers.IntegerField()
    rejected = serializers.IntegerField()
    expired = serializers.IntegerField()


class FraudFigures(serializers.Serializer[dict[str, object]]):
    screened = serializers.IntegerField(help_text="Operations the screening decided.")
    decisions = FraudDecisions()
    alerts = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True, help_text="alerts / screened; null when nothing was screened.")
    reviews = FraudReviews()


class CurrencyFigures(serializers.Serializer[dict[str, object]]):
    currency = serializers.CharField()
    transfers = TransferFigures()
    deposits = CountVolume()
    payments = PaymentFigures()
    credits = CreditFigures()
    fraud = FraudFigures()


class CustomerFigures(serializers.Serializer[dict[str, int]]):
    created = serializers.IntegerField()
    verified = serializers.IntegerField()
    rejected = serializers.IntegerField()


class DayFigures(serializers.Serializer[dict[str, object]]):
    day = serializers.DateField()
    totals = CurrencyFigures(many=True)
    customers = CustomerFigures()


class SummaryOutput(serializers.Serializer[dict[str, object]]):
    totals = CurrencyFigures(many=True, help_text="Over the whole period, one entry per currency.")
    customers = CustomerFigures()
    days = DayFigures(many=True, help_text="One entry per day that has figures, oldest first.")

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]
        fields = super().get_fields()
        fields["from"] = serializers.DateField()
        fields["to"] = serializers.DateField()
        return fields
