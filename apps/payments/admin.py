from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.payments.models import IgnoredNetworkMessage, InboundCredit, OverduePayment, Payment, PaymentStep
from fintech.backoffice import ReadOnly


class PaymentStepInline(ReadOnly, admin.TabularInline[PaymentStep, Payment]):
    model = PaymentStep
    fields = ("at", "step", "status", "detail")
    readonly_fields = fields
    extra = 0


# The beneficiary's personal data stays out of the admin's pages: it is named by its blind index.
PAYMENT_FIELDS = (
    "id",
    "account_id",
    "customer_id",
    "amount",
    "currency",
    "status",
    "end_to_end_id",
    "beneficiary_kind",
    "beneficiary_bank_code",
    "beneficiary_ref",
    "initiated_by",
    "failure_code",
    "failure_detail",
    "sent_at",
    "overdue_since",
    "network_reference",
    "network_processed_at",
    "return_reason",
    "journal_transaction_id",
    "answered_at",
    "created_at",
    "updated_at",
)


@admin.register(Payment)
class PaymentAdmin(ReadOnly, admin.ModelAdmin[Payment]):
    list_display = ["id", "amount", "currency", "status", "failure_code", "sent_at", "overdue_since", "created_at"]
    list_filter = ["status", "currency", "beneficiary_kind", "failure_code"]
    search_fields = ["=id", "=account_id", "=end_to_end_id", "=network_reference"]
    fields = PAYMENT_FIELDS
    readonly_fields = PAYMENT_FIELDS
    inlines = [PaymentStepInline]


@admin.register(OverduePayment)
class OverduePaymentAdmin(PaymentAdmin):
    """Payments the network has not answered in time (FINTECH_PAYMENT_ANSWER_TIMEOUT_SECONDS):
    their money is in clearing; the bank never returns one by itself."""

    list_display = ["id", "amount", "currency", "sent_at", "overdue_since", "end_to_end_id"]
    list_filter = ["currency"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Payment]:
        return (
            super()
            .get_queryset(request)
            .filter(status=Payment.Status.PENDING, sent_at__isnull=False, overdue_since__isnull=False)
        )

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        extra_context = {**(extra_context or {}), "title": "Payments without an answer from the network"}
        extra_context["subtitle"] = f"Answer time: {settings.FINTECH_PAYMENT_ANSWER_TIMEOUT_SECONDS} s"
        return super().changelist_view(request, extra_context)


@admin.register(InboundCredit)
class InboundCreditAdmin(ReadOnly, admin.ModelAdmin[InboundCredit]):
    list_display = ["end_to_end_id", "amount", "currency", "status", "return_reason", "account_id", "received_at"]
    list_filter = ["status", "currency", "return_reason"]
    search_fields = ["=end_to_end_id", "=account_id", "=network_reference"]


@admin.register(IgnoredNetworkMessage)
class IgnoredNetworkMessageAdmin(ReadOnly, admin.ModelAdmin[IgnoredNetworkMessage]):
    """What the network sent that the bank did not book: each needs a person to look."""

    list_display = ["received_at", "message_type", "subject", "reason", "detail"]
    list_filter = ["message_type", "reason"]
    search_fields = ["=subject", "=message_id"]
