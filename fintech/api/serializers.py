from __future__ import annotations

from typing import Any

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
