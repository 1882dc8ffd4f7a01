"""Payments to other banks, the credits other banks send our customers, and what the payment
network sent that the bank did not book.

A payment's beneficiary is personal data of someone who is not our customer: name, document,
account number and PIX key are encrypted at rest (fintech.crypto) and reach the network only
sealed (fintech/payment_network.py). Events and the admin lists name the beneficiary by its
blind index (`beneficiary_ref`)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from fintech.crypto.blind_index import INDEX_LENGTH
from fintech.crypto.fields import EncryptedTextField


class Payment(models.Model):
    """Money leaving the bank for an account at another bank, in the network's hands once sent:
    pending (held; screened; then sent: the amount in clearing) -> settled or returned by the
    network; review while an analyst decides; failed (hold voided) when it never left."""

    class Status(models.TextChoices):
        PENDING = "pending"
        REVIEW = "review"
        SETTLED = "settled"
        RETURNED = "returned"
        FAILED = "failed"

    class BeneficiaryKind(models.TextChoices):
        ACCOUNT = "account"
        PIX_KEY = "pix_key"

    FINAL = frozenset({Status.SETTLED, Status.RETURNED, Status.FAILED})

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account_id = models.UUIDField()
    customer_id = models.UUIDField()
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    end_to_end_id = models.CharField(max_length=32, unique=True, help_text="The network-wide id of this payment.")

    beneficiary_kind = models.CharField(max_length=7, choices=BeneficiaryKind.choices)
    beneficiary_name = EncryptedTextField(null=True, blank=True)
    beneficiary_document_type = models.CharField(max_length=4, blank=True)
    beneficiary_document = EncryptedTextField(null=True, blank=True, help_text="Bare digits of the CPF or CNPJ.")
    beneficiary_bank_code = models.CharField(max_length=8, blank=True, help_text="ISPB of the beneficiary's bank.")
    beneficiary_branch = models.CharField(max_length=4, blank=True)
    beneficiary_account_number = EncryptedTextField(null=True, blank=True)
    beneficiary_pix_key_type = models.CharField(max_length=5, blank=True)
    beneficiary_pix_key = EncryptedTextField(null=True, blank=True)
    beneficiary_ref = models.CharField(
        max_length=INDEX_LENGTH, help_text="Blind index of the beneficiary: what events and screening see."
    )

    initiated_by = models.CharField(max_length=200)
    initiated_by_customer = models.BooleanField(default=False)
    failure_code = models.CharField(max_length=50, blank=True)
    failure_detail = models.CharField(max_length=280, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True, help_text="When it left for the network (in clearing).")
    network_reference = models.CharField(max_length=64, blank=True)
    network_processed_at = models.DateTimeField(null=True, blank=True, help_text="The network's time of its answer.")
    return_reason = models.CharField(max_length=200, blank=True)
    journal_transaction_id = models.UUIDField(null=True, blank=True, help_text="The settlement or the return.")
    answered_at = models.DateTimeField(null=True, blank=True)
    overdue_since = models.DateTimeField(
        null=True, blank=True, help_text="Flagged for operations: no answer within the network's time."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "review", "settled", "returned", "failed"]),
                name="payment_status_known",
            ),
            # Money reaches clearing only when the payment is sent: an answered one was sent first.
            models.CheckConstraint(
                condition=~Q(status__in=["settled", "returned"]) | Q(sent_at__isnull=False),
                name="payment_answered_only_once_sent",
            ),
        ]
        indexes = [
            models.Index(fields=["account_id", "created_at"], name="payments_by_account"),
            models.Index(fields=["customer_id", "created_at"], name="payments_by_customer"),
            models.Index(fields=["status", "sent_at"], name="payments_in_flight"),
        ]

    def __str__(self) -> str:
        return f"payment {self.id} {self.amount} {self.currency} ({self.status})"


class PaymentStep(models.Model):
    """One step of a payment's history, in order: what happened, and the status it left."""

    class Step(models.TextChoices):
        INITIATED = "initiated"
        REVIEW = "review"
        SENT = "sent"
        SETTLED = "settled"
        RETURNED = "returned"
        FAILED = "failed"
        FLAGGED_OVERDUE = "flagged_overdue"

    id = models.BigAutoField(primary_key=True)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="history")
    step = models.CharField(max_length=16, choices=Step.choices)
    status = models.CharField(max_length=8, choices=Payment.Status.choices)
    detail = models.CharField(max_length=280, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.step} -> {self.status}"


class InboundCredit(models.Model):
    """A credit the network sent for one of our accounts, booked once per end-to-end id:
    credited (settlement -> the customer), or returned to the network when it cannot be."""

    class Status(models.TextChoices):
        CREDITED = "credited"
        RETURNED = "returned"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    end_to_end_id = models.CharField(max_length=32, unique=True)
    account_id = models.UUIDField(null=True, blank=True, help_text="Empty when no account of ours has the number.")
    customer_id = models.UUIDField(null=True, blank=True)
    creditor_branch = models.CharField(max_length=4)
    creditor_account_number = models.CharField(max_length=20)
    debtor_ispb = models.CharField(max_length=8)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=8, choices=Status.choices)
    return_reason = models.CharField(max_length=50, blank=True)
    network_reference = models.CharField(max_length=64)
    network_sent_at = models.DateTimeField(help_text="The network's time of the credit.")
    journal_transaction_id = models.UUIDField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="inbound_credit_amount_positive"),
            models.CheckConstraint(
                condition=Q(status="credited", journal_transaction_id__isnull=False, account_id__isnull=False)
                | Q(status="returned", journal_transaction_id__isnull=True),
                name="inbound_credit_booked_or_returned",
            ),
        ]
        indexes = [models.Index(fields=["account_id", "received_at"], name="credits_by_account")]

    def __str__(self) -> str:
        return f"credit {self.end_to_end_id} {self.amount} {self.currency} ({self.status})"


class IgnoredNetworkMessage(models.Model):
    """A message of the network that the bank did not book, kept for operations: an answer for
    a payment we do not know or never sent, with another amount or currency, or contradicting
    an earlier answer; a credit whose end-to-end id was already booked with other terms."""

    class Reason(models.TextChoices):
        UNKNOWN_PAYMENT = "unknown_payment"
        NOT_SENT = "not_sent"
        END_TO_END_MISMATCH = "end_to_end_mismatch"
        AMOUNT_MISMATCH = "amount_mismatch"
        CURRENCY_MISMATCH = "currency_mismatch"
        CONFLICTING_ANSWER = "conflicting_answer"
        CONFLICTING_CREDIT = "conflicting_credit"

    id = models.BigAutoField(primary_key=True)
    message_id = models.UUIDField(help_text="The CloudEvent id of the network's message.")
    message_type = models.CharField(max_length=40)
    subject = models.CharField(max_length=64, help_text="The payment id or end-to-end id it names.")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    detail = models.CharField(max_length=280)
    data = models.JSONField(help_text="The message's data as received (ids, amounts: no personal data).")
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["subject"], name="ignored_by_subject")]

    def __str__(self) -> str:
        return f"{self.message_type} {self.subject}: {self.reason}"


class OverduePayment(Payment):
    """The admin's list of payments sent to the network and flagged for want of an answer."""

    class Meta:
        proxy = True
        verbose_name = "overdue payment"
        ordering = ["sent_at"]
