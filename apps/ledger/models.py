"""The double-entry ledger: the only source of truth for money.

Amounts are integer minor units. An entry is a debit or a credit of a positive amount; the
entries of a journal transaction sum to zero per currency (debits = credits). Balances are
kept on the ledger account in the account's normal side (a customer's deposit account is a
liability: credits raise it) and updated in the same database transaction as the entries.
Posted entries are never updated or deleted: a mistake is corrected by a reversal.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone


def system_account_code(purpose: str, currency: str) -> str:
    """The code of the bank's own account for `purpose` (settlement, clearing, ...) in `currency`."""
    return f"system:{purpose}:{currency}"


class Side(models.TextChoices):
    DEBIT = "debit"
    CREDIT = "credit"


class LedgerAccount(models.Model):
    class Type(models.TextChoices):
        ASSET = "asset"
        LIABILITY = "liability"
        EQUITY = "equity"
        INCOME = "income"
        EXPENSE = "expense"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.CharField(max_length=100, unique=True, help_text="e.g. system:settlement:BRL, customer:<account>")
    name = models.CharField(max_length=200)
    account_type = models.CharField(max_length=10, choices=Type.choices)
    normal_side = models.CharField(max_length=6, choices=Side.choices)
    currency = models.CharField(max_length=3)
    owner_ref = models.UUIDField(null=True, blank=True, unique=True, help_text="The bank account it backs.")
    is_system = models.BooleanField(default=False)
    allow_negative = models.BooleanField(default=False)
    balance = models.BigIntegerField(default=0, help_text="Posted balance, positive on the normal side.")
    held = models.BigIntegerField(default=0, help_text="Sum of active holds: pending debits.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(held__gte=0), name="ledger_held_not_negative"),
            models.CheckConstraint(
                condition=Q(allow_negative=True) | Q(balance__gte=models.F("held")),
                name="ledger_available_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} ({self.currency})"

    @property
    def available(self) -> int:
        return self.balance - self.held


class JournalTransaction(models.Model):
    class Kind(models.TextChoices):
        DEPOSIT = "deposit"
        TRANSFER = "transfer"
        PAYMENT = "payment"
        FEE = "fee"
        REVERSAL = "reversal"
        ADJUSTMENT = "adjustment"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    posting_key = models.CharField(
        max_length=120, unique=True, help_text="One business operation posts once: e.g. transfer:<id>."
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    reference = models.CharField(max_length=120, blank=True)
    description = models.CharField(max_length=280, blank=True)
    reverses = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by")
    posted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["posted_at"], name="journal_by_time")]

    def __str__(self) -> str:
        return f"{self.kind} {self.posting_key}"


class JournalEntry(models.Model):
    id = models.BigAutoField(primary_key=True)
    entry_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    transaction = models.ForeignKey(JournalTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="entries")
    side = models.CharField(max_length=6, choices=Side.choices)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    balance_after = models.BigIntegerField(help_text="The account's posted balance right after this entry.")
    posted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="ledger_entry_amount_positive")]
        indexes = [models.Index(fields=["account", "id"], name="entries_by_account")]

    def __str__(self) -> str:
        return f"{self.side} {self.amount} {self.currency} on {self.account_id}"


class Hold(models.Model):
    """Money set aside on an account for an operation in flight: the available balance drops,
    the posted balance does not. Posting it writes the journal transaction; voiding frees it."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        POSTED = "posted"
        VOIDED = "voided"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    hold_key = models.CharField(max_length=120, unique=True, help_text="e.g. transfer:<id>")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="holds")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=6, choices=Status.choices, default=Status.ACTIVE)
    journal_transaction = models.OneToOneField(
        JournalTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="hold"
    )
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="ledger_hold_amount_positive")]
        indexes = [models.Index(fields=["account", "status"], name="holds_by_account")]

    def __str__(self) -> str:
        return f"hold {self.hold_key} {self.amount} {self.currency} ({self.status})"
