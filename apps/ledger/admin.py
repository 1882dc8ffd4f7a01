"""The ledger in the back office: read-only. A mistake is corrected by a reversal (an action
that posts the mirror transaction), never by editing or deleting a row."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.ledger import services
from apps.ledger.models import Hold, JournalEntry, JournalTransaction, LedgerAccount
from fintech.backoffice import ReadOnly
from fintech.errors import DomainError


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnly, admin.ModelAdmin[LedgerAccount]):
    list_display = ["code", "account_type", "normal_side", "currency", "balance", "held", "is_system"]
    list_filter = ["account_type", "currency", "is_system"]
    search_fields = ["code", "=owner_ref"]


class JournalEntryInline(ReadOnly, admin.TabularInline[JournalEntry, JournalTransaction]):
    model = JournalEntry
    fields = ("entry_id", "account", "side", "amount", "currency", "balance_after")
    readonly_fields = fields
    extra = 0


@admin.register(JournalTransaction)
class JournalTransactionAdmin(ReadOnly, admin.ModelAdmin[JournalTransaction]):
    list_display = ["id", "kind", "posting_key", "reference", "posted_at"]
    list_filter = ["kind"]
    search_fields = ["=id", "posting_key", "reference"]
    inlines = [JournalEntryInline]
    actions = ["reverse_selected"]

    @admin.action(description="Reverse the selected journal transactions (posts the mirror entries)")
    def reverse_selected(self, request: HttpRequest, queryset: QuerySet[JournalTransaction]) -> None:
        reversed_count = 0
        for journal in queryset:
            try:
                services.journal_reverse(transaction_id=journal.id, reason=f"by {request.user.get_username()}")
                reversed_count += 1
            except DomainError as error:
                self.message_user(request, f"{journal.id}: {error.detail}", messages.WARNING)
        self.message_user(request, f"{reversed_count} journal transaction(s) reversed.")


@admin.register(Hold)
class HoldAdmin(ReadOnly, admin.ModelAdmin[Hold]):
    list_display = ["hold_key", "account", "amount", "currency", "status", "created_at", "resolved_at"]
    list_filter = ["status", "currency"]
    search_fields = ["hold_key"]
