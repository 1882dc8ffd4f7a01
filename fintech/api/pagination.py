"""Cursor pagination: `{results: [...], next: <url or null>}`, stable under inserts."""

from __future__ import annotations

from typing import Any

from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from fintech.errors import ValidationFailed


class BankCursorPagination(CursorPagination):
    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request: Request) -> int | None:
        """`page_size` is a whole number from 1; above `max_page_size` it reads as the maximum.
        Anything else is refused, not silently replaced by the default (DRF's own behaviour), so
        the schema's `integer, minimum 1` is exactly what is accepted."""
        raw = request.query_params.get(self.page_size_query_param or "", "")
        if raw == "":
            return self.page_size
        if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
            raise ValidationFailed(
                "page_size is a whole number from 1.",
                errors={"page_size": [f"Must be a whole number from 1 (at most {self.max_page_size} are returned)."]},
            )
        return min(int(raw), self.max_page_size or int(raw))

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}
                parameter["description"] = (
                    f"Results per page, {self.page_size} by default; above {self.max_page_size} reads as "
                    f"{self.max_page_size}."
                )
        return parameters

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"results": data, "next": self.get_next_link()})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {
                "results": schema,
                "next": {"type": "string", "format": "uri", "nullable": True},
            },
        }
