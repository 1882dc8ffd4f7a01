"""The events the fraud context publishes. Key (subject): the transfer's or payment's id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from fintech.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class FraudEvent(DomainEvent):
    source: ClassVar[str] = "fraud"
    aggregate_field: ClassVar[str] = "subject_id"

    subject_type: str
    subject_id: str


@dataclass(frozen=True, kw_only=True)
class FraudJudgement(FraudEvent):
    """What the rules said of an operation: the decision and the rules that fired."""

    account_id: str
    amount: int
    currency: str
    decision: str
    score: int
    rules: list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class FraudScreened(FraudJudgement):
    """Every screening (no rule fired on an approval)."""

    event_type: ClassVar[str] = "fraud.screened"

    screening_id: str
    screened_at: str


@dataclass(frozen=True, kw_only=True)
class FraudAlert(FraudJudgement):
    """A screening that held the operation for review or rejected it: for the back office."""

    event_type: ClassVar[str] = "fraud.alert"

    alert_id: str
    raised_at: str


@dataclass(frozen=True, kw_only=True)
class FraudReviewDecided(FraudEvent):
    """An analyst approved or rejected an operation held for review, or its review expired."""

    event_type: ClassVar[str] = "fraud.review_decided"

    decision: str
    decided_by: str
    reason: str
    decided_at: str
