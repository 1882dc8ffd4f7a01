"""Query parameters in the bank's forms: a refusal is a 400 problem naming the parameter."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from fintech.errors import ValidationFailed


def moment_param(raw: str | None, field: str, *, end: bool) -> datetime | None:
    """An RFC 3339 time, or a date meaning its whole day (as an `end`, the next midnight)."""
    if not raw:
        return None
    try:
        # A date first: Python reads "2026-11-30" as a date-time too (midnight), which would make
        # a `to` date exclude its own day.
        day = parse_date(raw)
        moment = datetime.combine(day + timedelta(days=1) if end else day, time.min) if day else parse_datetime(raw)
    except ValueError:
        moment = None
    if moment is None:
        raise ValidationFailed(
            f"{field} must be an RFC 3339 date-time or a date.", errors={field: ["Invalid date or date-time."]}
        )
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    return moment


def period_params(raw_from: str | None, raw_to: str | None) -> tuple[datetime | None, datetime | None]:
    """`from` (inclusive) and `to` (exclusive, or a whole day when a date), in that order."""
    start, end = moment_param(raw_from, "from", end=False), moment_param(raw_to, "to", end=True)
    if start and end and start >= end:
        raise ValidationFailed("from must be before to.", errors={"from": ["Must be before to."]})
    return start, end


def uuid_param(raw: str | None, field: str) -> uuid.UUID | None:
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ValidationFailed(f"{field} must be a UUID.", errors={field: ["Must be a UUID."]}) from None
