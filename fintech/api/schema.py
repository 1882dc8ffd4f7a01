"""OpenAPI additions, so the schema says exactly what the server accepts and answers: the
problem+json error shape on every operation, the answers the middleware gives before a view runs
(413, 415, 429, 503), input objects that refuse unknown fields, and the money rules of
fintech/money.py (the amount's range, the currencies the bank moves) read from the settings the
server runs with. Imported by the app's ready(), as drf-spectacular finds extensions by import."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

from fintech.money import supported_currencies

NO_NUL_PATTERN = "^[^\\x00]*$"
# A date (its whole day) or an RFC 3339 date-time, as fintech.api.serializers.MomentField reads them.
MOMENT_SCHEMA: dict[str, Any] = {"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}]}


class StrictInputSchema(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    """A StrictInputSerializer refuses fields it does not declare: `additionalProperties: false`.
    A list of nested inputs also states its length bounds, which drf-spectacular leaves out."""

    target_class = "fintech.api.serializers.StrictInputSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: AutoSchema, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_basic_serializer(self.target, direction)  # type: ignore[no-untyped-call]
        schema["additionalProperties"] = False
        for name, field in self.target.fields.items():
            if name not in schema["properties"]:
                continue
            declared = schema["properties"][name]
            if isinstance(field, serializers.CharField) and not {"pattern", "format", "enum"} & set(declared):
                # DRF refuses a NUL in any text (ProhibitNullCharactersValidator).
                declared["pattern"] = NO_NUL_PATTERN
            if isinstance(field, serializers.ListSerializer) and name in schema["properties"]:
                bounds = {
                    "minItems": getattr(field, "min_length", None),
                    "maxItems": getattr(field, "max_length", None),
                }
                schema["properties"][name].update({key: value for key, value in bounds.items() if value is not None})
        return schema


class AmountSchema(OpenApiSerializerFieldExtension):  # type: ignore[no-untyped-call]
    target_class = "fintech.api.serializers.AmountField"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Any) -> dict[str, Any]:
        return {"type": "integer", "minimum": 1, "maximum": settings.FINTECH_MAX_AMOUNT}


class MomentSchema(OpenApiSerializerFieldExtension):  # type: ignore[no-untyped-call]
    target_class = "fintech.api.serializers.MomentField"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Any) -> dict[str, Any]:
        return dict(MOMENT_SCHEMA)


class CurrencySchema(OpenApiSerializerFieldExtension):  # type: ignore[no-untyped-call]
    target_class = "fintech.api.serializers.CurrencyField"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Any) -> dict[str, Any]:
        return {"type": "string", "enum": supported_currencies()}


PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details. `code` is a stable machine word.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "example": "validation_error"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "Messages per field, for validation errors.",
        },
    },
}

_ERROR_STATUSES = {
    "400": "Invalid request (`validation_error`, `malformed_request`, ...)",
    "401": "No token or an invalid one (`not_authenticated`, `invalid_token`)",
    "403": "The token lacks a scope or the operation is staff-only (`insufficient_scope`, `staff_only`)",
    "404": "Unknown, or not yours (`not_found`, ...)",
    "409": "Conflict with the current state",
    "422": "Valid but refused (`idempotency_key_reuse`, ...)",
    "429": "Rate limited (`rate_limited`; see `Retry-After`)",
    "503": "The bank's database is unavailable (`service_unavailable`; see `Retry-After`)",
}
# Answers only an operation that takes a body can get.
_BODY_ERROR_STATUSES = {
    "413": "The body is larger than the operation accepts (`request_too_large`)",
    "415": "The body is not JSON (`unsupported_media_type`)",
}


def add_problem_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: document the error responses of every operation, and
    that an optional query parameter sent empty counts as not sent."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    ref = {"$ref": "#/components/schemas/Problem"}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and not parameter.get("required"):
                    # QueryInput (and the paginator) read `?status=` as not sent.
                    parameter["allowEmptyValue"] = True
            responses = operation.setdefault("responses", {})
            statuses = _ERROR_STATUSES | (_BODY_ERROR_STATUSES if "requestBody" in operation else {})
            for status, description in sorted(statuses.items()):
                responses.setdefault(
                    status, {"description": description, "content": {"application/problem+json": {"schema": ref}}}
                )
    return result
