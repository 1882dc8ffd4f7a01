"""OpenAPI additions: the problem+json error shape on every operation."""

from __future__ import annotations

from typing import Any

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
}


def add_problem_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: document the error responses of every operation."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    ref = {"$ref": "#/components/schemas/Problem"}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for status, description in _ERROR_STATUSES.items():
                responses.setdefault(
                    status, {"description": description, "content": {"application/problem+json": {"schema": ref}}}
                )
    return result
