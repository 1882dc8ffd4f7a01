"""Transfers and deposits in the back office: read-only, they change only through their services
(and their events)."""

from __future__ import annotations

from django.contrib import admin

from apps.transactions.models import Deposit, Transfer
from fintech.backoffice import ReadOnly


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
