"""The fraud context's tables: the rules as data, the deny list, what it knows of each account,
one screening per operation screened, and the alerts analysts decide."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone


class SubjectType(models.TextChoices):
    TRANSFER = "transfer"
    PAYMENT = "payment"


class Decision(models.TextChoices):
    APPROVE = "approve"
    REVIEW = "review"
    REJECT = "reject"


class FraudRule(models.Model):
    """One rule of `rules.CATALOGUE` as the bank runs it: on or off, its parameters, and a version
    bumped by every change (each screening records the versions it was judged by)."""

    name = models.CharField(max_length=50, primary_key=True)
    enabled = models.BooleanField(default=True)
    parameters = models.JSONField(default=dict)
    version = models.PositiveIntegerField(default=1)
    updated_by = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name = "fraud rule"

    def __str__(self) -> str:
        return f"{self.name} v{self.version} ({'on' if self.enabled else 'off'})"


class RuleBook(models.Model):
    """One row: a new `revision` on every change of any rule. Each process keeps the rules it
    read under their revision and reads them again when the revision it finds has changed."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    revision = models.UUIDField(default=uuid.uuid4)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="fraud_rule_book_single")]

    def __str__(self) -> str:
        return f"rule book {self.revision}"


class FraudRuleVersion(models.Model):
    """Every version a rule has had, kept so that a decision can be explained with the very
    parameters it was made under."""

    rule = models.CharField(max_length=50)
    version = models.PositiveIntegerField()
    enabled = models.BooleanField()
    parameters = models.JSONField()
    changed_by = models.CharField(max_length=200)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["rule", "-version"]
        constraints = [models.UniqueConstraint(fields=["rule", "version"], name="fraud_rule_version_once")]

    def __str__(self) -> str:
        return f"{self.rule} v{self.version}"


class DenyListEntry(models.Model):
    """A destination the bank refuses to send money to: an account or a customer of this bank, or
    an outside beneficiary by its pseudonymous reference."""

    class Kind(models.TextChoices):
        ACCOUNT = "account"
        CUSTOMER = "customer"
        BENEFICIARY = "beneficiary"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    value = models.CharField(max_length=128, help_text="An account or customer id, or a payment's beneficiary_ref.")
    reason = models.CharField(max_length=280)
    added_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "deny-list entry"
        verbose_name_plural = "deny list"
        constraints = [models.UniqueConstraint(fields=["kind", "value"], name="fraud_deny_list_once")]

    def __str__(self) -> str:
        return f"{self.kind} {self.value}"


class MonitoredAccount(models.Model):
    """What the fraud context knows of a bank account: when it opened (from account.created).
    Screenings of an account's operations lock its row, one after the other, so that each one
    counts those before it (velocity, round trips)."""

    account_id = models.UUIDField(primary_key=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    last_screened_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return str(self.account_id)


class Screening(models.Model):
    """The rules' judgement of one operation: the facts they saw, the versions of the rules in
    force, and the decision. One per transfer or payment: a redelivered event finds it here."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subject_type = models.CharField(max_length=10, choices=SubjectType.choices)
    # A transfer's or payment's id: UUID4s, unique across both.
    subject_id = models.UUIDField(unique=True)
    account_id = models.UUIDField(help_text="The account the money leaves.")
    customer_id = models.UUIDField()
    counterparty = models.CharField(
        max_length=140, help_text="Where the money goes: account:<id> of this bank, or beneficiary:<ref> outside it."
    )
    counterparty_account_id = models.UUIDField(null=True, blank=True)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    initiated_by_customer = models.BooleanField()
    occurred_at = models.DateTimeField(help_text="When the operation was initiated.")
    decision = models.CharField(max_length=7, choices=Decision.choices)
    score = models.PositiveIntegerField()
    rule_versions = models.JSONField(help_text="The enabled rules and their versions.")
    inputs = models.JSONField(help_text="The facts the rules saw.")
    screened_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-screened_at"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="fraud_screening_amount_positive")]
        indexes = [
            models.Index(fields=["account_id", "occurred_at"], name="fraud_screenings_of_account"),
            models.Index(fields=["account_id", "counterparty"], name="fraud_screenings_to_party"),
        ]

    def __str__(self) -> str:
        return f"{self.subject_type} {self.subject_id}: {self.decision}"


class FiredRule(models.Model):
    """A rule that fired in a screening, with its version, score and reason."""

    screening = models.ForeignKey(Screening, on_delete=models.PROTECT, related_name="fired_rules")
    rule = models.CharField(max_length=50)
    version = models.PositiveIntegerField()
    score = models.PositiveIntegerField()
    reason = models.CharField(max_length=500)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["rule", "screening"], name="fraud_fired_rules_by_rule")]

    def __str__(self) -> str:
        return f"{self.rule} v{self.version} ({self.score})"


class Alert(models.Model):
    """A screening that did not approve: held for an analyst's review, or rejected by the rules.
    A review is decided once: approved or rejected by an analyst, or expired by the time-out;
    or withdrawn when the operation failed for another reason while it waited (nothing is left
    to decide, and an open review would sit in the analysts' queue until it expired)."""

    class Status(models.TextChoices):
        REVIEW = "review"  # waiting for an analyst
        APPROVED = "approved"
        REJECTED = "rejected"
        EXPIRED = "expired"
        WITHDRAWN = "withdrawn"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    screening = models.OneToOneField(Screening, on_delete=models.PROTECT, related_name="alert")
    subject_id = models.UUIDField(unique=True)
    account_id = models.UUIDField()
    status = models.CharField(max_length=9, choices=Status.choices)
    raised_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=200, blank=True)
    decision_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-raised_at"]
        permissions = [("decide_review", "Can approve or reject an operation held for review")]
        indexes = [
            models.Index(fields=["status", "raised_at"], name="fraud_alerts_by_status"),
            models.Index(fields=["account_id", "raised_at"], name="fraud_alerts_of_account"),
        ]

    def __str__(self) -> str:
        return f"alert on {self.subject_id} ({self.status})"
