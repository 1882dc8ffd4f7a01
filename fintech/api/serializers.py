from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any, ClassVar

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import serializers

_TEXT_FIELDS = (serializers.CharField, serializers.UUIDField, serializers.DateField, serializers.DateTimeField)


# Input serializer that refuses fields it does not know, so a client that sends `status` or
# `balance` learns at once that it cannot set them (no mass assignment); the schema says so with
# `additionalProperties: false` (fintech/api/schema.py). A comment, not a docstring: drf-spectacular
# shows a class's docstring, inherited ones included, as its schema's description, so every input
# schema built on this one would carry this text.
class StrictInputSerializer(serializers.Serializer[Any]):
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["This field is not accepted."] for name in unknown})
            # DRF reads 7 as the text "7" and false as the UUID 0: a JSON value whose type is not
            # the schema's string is refused, not converted.
            not_text = {
                name: ["Must be a string."]
                for name, field in self.fields.items()
                if isinstance(field, _TEXT_FIELDS) and data.get(name) is not None and not isinstance(data[name], str)
            }
            if not_text:
                raise serializers.ValidationError(not_text)
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """An integer that must arrive as a JSON integer: "100", 100.0 and true are refused, so a
    client's float or string never turns silently into money."""

    def to_internal_value(self, data: object) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class AmountField(StrictIntegerField):
    """An amount of money in minor units. The range is the one `fintech.money.validate_amount`
    enforces (above zero, at most FINTECH_MAX_AMOUNT), with its error codes; the schema declares
    it (fintech/api/schema.py)."""


class CurrencyCodeField(serializers.RegexField):
    """Three capital letters, the shape of an ISO 4217 code."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(r"^[A-Z]{3}$", **kwargs)


class CurrencyField(CurrencyCodeField):
    """An ISO 4217 code. The schema lists the currencies the bank moves
    (FINTECH_SUPPORTED_CURRENCIES); any other is refused by the service that owns the rule
    (`unsupported_currency`, fintech/money.py), this field refuses what is not a code at all."""


# An amount and its currency, as every money-moving request carries them. (A comment, not a
# docstring: the schema would show it as the description of every request built on it.)
class MoneyInput(StrictInputSerializer):
    amount = AmountField(help_text="Minor units: 1050 is 10.50.")
    currency = CurrencyField(help_text="ISO 4217: one of the currencies the bank moves.")


class QueryInput(serializers.Serializer[Any]):
    """Input serializer of a GET's query parameters. A parameter sent empty (`?status=`) counts as
    not sent, and parameters it does not declare (the paginator's `cursor`, `page_size`) are left
    to whoever reads them. A filter with a closed set of values is a ChoiceField, so a value
    outside it is 400 `validation_error` naming the parameter (never an empty list); a view passes
    the serializer as its schema's `parameters`, so the schema declares the same enum."""

    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "dict"):
            data = data.dict()  # a QueryDict: the last value of each parameter, as Django reads it
        if isinstance(data, dict):
            data = {name: value for name, value in data.items() if value != ""}
        return super().to_internal_value(data)


class MomentField(serializers.Field[datetime, str, str, Any]):
    """An RFC 3339 date-time, or a date meaning its whole day: from its first instant or, with
    `end=True`, up to the next day's first instant. A time without an offset is UTC."""

    default_error_messages = {"invalid": "Invalid date or date-time."}

    def __init__(self, *, end: bool = False, **kwargs: Any) -> None:
        self.end = end
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> datetime:
        raw = str(data)
        try:
            # The date first: Python reads "2026-11-30" as a date-time too (its midnight), which
            # would make a `to` date leave out its own day.
            day = parse_date(raw)
            moment = datetime.combine(day + timedelta(days=1) if self.end else day, time.min) if day else None
            moment = moment or parse_datetime(raw)
        except (ValueError, OverflowError):  # OverflowError: the day after 9999-12-31
            moment = None
        if moment is None:
            self.fail("invalid")
        return timezone.make_aware(moment, UTC) if timezone.is_naive(moment) else moment

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


class PeriodQuery(QueryInput):
    """Query parameters with a period: `from` (inclusive) and `to` (exclusive, or inclusive when
    a date), validated under the names `period_names` and refused when `from` is not before `to`.
    (`from` is a Python keyword, hence the fields are declared in get_fields.)"""

    period_names: ClassVar[tuple[str, str]] = ("period_from", "period_to")

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        start, end = self.period_names
        fields["from"] = MomentField(required=False, source=start)
        fields["to"] = MomentField(end=True, required=False, source=end)
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = (attrs.get(name) for name in self.period_names)
        if start and end and start >= end:
            raise serializers.ValidationError({"from": ["Must be before to."]})
        return attrs
