from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.transactions.models import Deposit, Transfer


class ReadOnly:
    """Transfers and deposits change only through their services (and their events)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Transfer)
class TransferAdmin(ReadOnly, admin.ModelAdmin[Transfer]):
    list_display = ["id", "amount", "currency", "status", "failure_code", "created_at", "completed_at"]
    list_filter = ["status", "currency", "failure_code"]
    search_fields = ["=id", "=from_account_id", "=to_account_id"]


@admin.register(Deposit)
class DepositAdmin(ReadOnly, admin.ModelAdmin[Deposit]):
    list_display = ["reference", "account_id", "amount", "currency", "made_by", "created_at"]
    list_filter = ["currency"]
    search_fields = ["reference", "=account_id"]
