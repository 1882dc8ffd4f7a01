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


class QueryInput(serializers.Serializer[Any]):
    """Input serializer of a GET's query parameters. A parameter sent empty (`?status=`) counts as
    not sent, and parameters it does not declare (the paginator's `cursor`, `page_size`) are left
    to whoever reads them."""

    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "dict"):
            data = data.dict()  # a QueryDict: the last value of each parameter, as Django reads it
        if isinstance(data, dict):
            data = {name: value for name, value in data.items() if value != ""}
        return super().to_internal_value(data)
