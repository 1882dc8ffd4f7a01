"""Query-string parameters of list endpoints, read once: a bad value is a 400 that names it."""

from __future__ import annotations

import uuid

from rest_framework.request import Request

from fintech.errors import ValidationFailed


def uuid_param(request: Request, name: str) -> uuid.UUID | None:
    """The UUID in `?name=`, None when absent or empty."""
    raw = request.query_params.get(name)
    try:
        return uuid.UUID(raw) if raw else None
    except ValueError:
        raise ValidationFailed(f"{name} must be a UUID.", errors={name: ["Must be a UUID."]}) from None
