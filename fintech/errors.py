"""Domain errors: each carries a stable machine `code` that the API maps to problem+json.

Contexts subclass these beside the code that raises them; the kernel only knows the shape.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A business rule said no. `status` is the HTTP status the API answers with."""

    code: str = "domain_error"
    status: int = 400
    title: str = "Request refused"

    def __init__(self, detail: str | None = None, *, code: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title
        if code is not None:
            self.code = code
        self.extra = extra
        super().__init__(self.detail)


class ValidationFailed(DomainError):
    code = "validation_error"
    status = 400
    title = "Invalid request"

    def __init__(self, detail: str | None = None, *, errors: dict[str, list[str]] | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.errors = errors or {}


class NotFound(DomainError):
    code = "not_found"
    status = 404
    title = "Not found"


class Conflict(DomainError):
    code = "conflict"
    status = 409
    title = "Conflict with the current state"


class Unprocessable(DomainError):
    code = "unprocessable"
    status = 422
    title = "Request cannot be processed"
