from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.customers import selectors, services
from apps.customers.models import Customer
from fintech.backoffice import ReadOnly
from fintech.documents import InvalidDocument, normalize_document
from fintech.errors import DomainError


@admin.register(Customer)
class CustomerAdmin(ReadOnly, admin.ModelAdmin[Customer]):
    # Read-only: onboarding goes through the API and every change is a service call with its
    # event, which the admin makes through its actions.
    # Lists show masked personal data only; one customer's page shows the e-mail and birth date
    # whole (as GET /customers/{id} does), the document and phone masked.
    list_display = ["name", "masked_document", "masked_email", "document_type", "status", "erased_at", "created_at"]
    list_filter = ["status", "document_type"]
    search_fields = ["name", "=id"]
    search_help_text = "A name, a customer id, or a whole CPF/CNPJ (found through its blind index)."
    readonly_fields = [
        "id",
        "masked_document",
        "document_type",
        "masked_phone",
        "status",
        "kyc_reviewed_by",
        "kyc_reviewed_at",
        "kyc_reason",
        "erased_at",
        "created_at",
        "updated_at",
    ]
    fields = ["id", "name", "email", "birth_date", *readonly_fields[1:]]
    actions = ["verify_selected", "reject_selected"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Customer], search_term: str
    ) -> tuple[QuerySet[Customer], bool]:
        # The document is encrypted: a whole, valid CPF/CNPJ is matched through its blind index.
        try:
            _, digits = normalize_document(search_term.strip())
        except InvalidDocument:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(document_index=selectors.document_index(digits)), False

    @admin.action(description="Verify the selected customers (KYC approved)")
    def verify_selected(self, request: HttpRequest, queryset: QuerySet[Customer]) -> None:
        self._decide(request, queryset, verify=True)

    @admin.action(description="Reject the selected customers (KYC refused)")
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[Customer]) -> None:
        self._decide(request, queryset, verify=False)

    def _decide(self, request: HttpRequest, queryset: QuerySet[Customer], *, verify: bool) -> None:
        reviewer = f"admin:{request.user.get_username()}"
        done = 0
        for customer in queryset:
            try:
                if verify:
                    services.customer_verify(customer_id=customer.id, reviewer=reviewer)
                else:
                    services.customer_reject(
                        customer_id=customer.id, reviewer=reviewer, reason="rejected in back office"
                    )
                done += 1
            except DomainError as error:
                self.message_user(request, f"{customer}: {error.detail}", messages.WARNING)
        self.message_user(request, f"{done} customer(s) {'verified' if verify else 'rejected'}.")
