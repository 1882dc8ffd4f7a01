from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.accounts import selectors, services
from apps.accounts.models import BankAccount
from fintech.errors import DomainError


@admin.register(BankAccount)
class BankAccountAdmin(admin.ModelAdmin[BankAccount]):
    list_display = ["number", "branch", "customer_id", "currency", "status", "posted_balance", "created_at"]
    list_filter = ["status", "currency"]
    search_fields = ["number", "=customer_id", "=id"]
    readonly_fields = [
        "id",
        "number",
        "branch",
        "customer_id",
        "currency",
        "status",
        "status_reason",
        "posted_balance",
        "created_at",
        "updated_at",
        "closed_at",
    ]
    actions = ["block_selected", "unblock_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # accounts open through the API, which checks KYC and opens the ledger account

    def has_delete_permission(self, request: HttpRequest, obj: BankAccount | None = None) -> bool:
        return False

    @admin.display(description="Posted balance (minor units)")
    def posted_balance(self, account: BankAccount) -> int:
        return selectors.account_balances([account])[account.id].balance

    @admin.action(description="Block the selected accounts")
    def block_selected(self, request: HttpRequest, queryset: QuerySet[BankAccount]) -> None:
        self._apply(request, queryset, services.account_block, "blocked")

    @admin.action(description="Unblock the selected accounts")
    def unblock_selected(self, request: HttpRequest, queryset: QuerySet[BankAccount]) -> None:
        self._apply(request, queryset, services.account_unblock, "unblocked")

    def _apply(self, request: HttpRequest, queryset: QuerySet[BankAccount], command: object, verb: str) -> None:
        done = 0
        for account in queryset:
            try:
                command(  # type: ignore[operator]
                    account_id=account.id, reason="back office", changed_by=f"admin:{request.user.get_username()}"
                )
                done += 1
            except DomainError as error:
                self.message_user(request, f"{account}: {error.detail}", messages.WARNING)
        self.message_user(request, f"{done} account(s) {verb}.")
