from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from fintech.contacts import mask_email, mask_phone
from fintech.crypto.blind_index import INDEX_LENGTH
from fintech.crypto.fields import EncryptedDateField, EncryptedTextField
from fintech.documents import mask_document

ERASED_NAME = "erased"


class Customer(models.Model):
    """A customer. Document, e-mail, phone and birth date are encrypted at rest (fintech.crypto);
    the document is found and kept unique through its blind index. After an erasure (LGPD/GDPR)
    the personal fields are empty and only the id, the KYC outcome and the dates remain, which
    the accounts and the ledger still point at."""

    class Status(models.TextChoices):
        PENDING = "pending"
        VERIFIED = "verified"
        REJECTED = "rejected"

    class DocumentType(models.TextChoices):
        CPF = "cpf", "CPF"
        CNPJ = "cnpj", "CNPJ"

    class Language(models.TextChoices):
        """The languages the bank writes to its customers in (notices, e-mails)."""

        PT_BR = "pt-BR", "Português (Brasil)"
        EN = "en", "English"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    email = EncryptedTextField(null=True, blank=True, help_text="Lower-cased; empty only once erased.")
    phone = EncryptedTextField(null=True, blank=True, help_text="E.164, optional.")
    document_type = models.CharField(max_length=4, choices=DocumentType.choices)
    document = EncryptedTextField(null=True, blank=True, help_text="Bare digits of the CPF or CNPJ.")
    # NULL, not "", once erased: the unique constraint holds between the customers who have one.
    document_index = models.CharField(  # noqa: DJ001
        max_length=INDEX_LENGTH,
        null=True,
        blank=True,
        editable=False,
        help_text="Blind index (HMAC) of the document's digits: lookups and uniqueness.",
    )
    birth_date = EncryptedDateField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    language = models.CharField(
        max_length=5, choices=Language.choices, default=Language.PT_BR, help_text="The language of the bank's notices."
    )
    kyc_reviewed_by = models.CharField(max_length=200, blank=True)
    kyc_reviewed_at = models.DateTimeField(null=True, blank=True)
    kyc_reason = models.CharField(max_length=500, blank=True)
    erased_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["document_index"], name="one_customer_per_document"),
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "verified", "rejected"]), name="customer_status_known"
            ),
            models.CheckConstraint(
                condition=models.Q(erased_at__isnull=False)
                | models.Q(document__isnull=False, document_index__isnull=False, email__isnull=False),
                name="customer_identified_unless_erased",
            ),
            models.CheckConstraint(
                condition=models.Q(erased_at__isnull=True)
                | models.Q(
                    document__isnull=True,
                    document_index__isnull=True,
                    email__isnull=True,
                    phone__isnull=True,
                    birth_date__isnull=True,
                ),
                name="erased_customer_keeps_no_personal_data",
            ),
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="customer_by_status")]

    def __str__(self) -> str:
        return f"{self.name} ({self.masked_document or 'no document'})"

    @property
    def is_erased(self) -> bool:
        return self.erased_at is not None

    @property
    def masked_document(self) -> str | None:
        return mask_document(self.document_type, self.document) if self.document else None

    @property
    def masked_email(self) -> str | None:
        return mask_email(self.email) if self.email else None

    @property
    def masked_phone(self) -> str | None:
        return mask_phone(self.phone) if self.phone else None
