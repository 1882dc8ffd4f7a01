from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any, ClassVar

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import serializers


class StrictInputSerializer(serializers.Serializer[Any]):
    """Input serializer that refuses fields it does not know, so a client that sends
    `status` or `balance` learns at once that it cannot set them (no mass assignment)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["This field is not accepted."] for name in unknown})
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """An integer that must arrive as a JSON integer: "100", 100.0 and true are refused, so a
    client's float or string never turns silently into money."""

    def to_internal_value(self, data: object) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


# An amount and its currency, as every money-moving request carries them. (A comment, not a
# docstring: the schema would show it as the description of every request built on it.)
class MoneyInput(StrictInputSerializer):
    amount = StrictIntegerField(help_text="Minor units: 1050 is 10.50.")
    currency = serializers.RegexField(r"^[A-Z]{3}$", help_text="ISO 4217.")


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
        except ValueError:
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
