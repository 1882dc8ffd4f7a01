from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from apps.customers.documents import mask_document


class Customer(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        VERIFIED = "verified"
        REJECTED = "rejected"

    class DocumentType(models.TextChoices):
        CPF = "cpf", "CPF"
        CNPJ = "cnpj", "CNPJ"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    email = models.EmailField(max_length=254)
    document_type = models.CharField(max_length=4, choices=DocumentType.choices)
    document = models.CharField(max_length=14, help_text="Bare digits of the CPF or CNPJ.")
    birth_date = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    kyc_reviewed_by = models.CharField(max_length=200, blank=True)
    kyc_reviewed_at = models.DateTimeField(null=True, blank=True)
    kyc_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["document"], name="one_customer_per_document"),
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "verified", "rejected"]), name="customer_status_known"
            ),
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="customer_by_status")]

    def __str__(self) -> str:
        return f"{self.name} ({self.masked_document})"

    @property
    def masked_document(self) -> str:
        return mask_document(self.document_type, self.document)
