"""The audit trail in the back office: read only, like the table itself."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.audit.models import AuditRecord


@admin.register(AuditRecord)
class AuditRecordAdmin(admin.ModelAdmin[AuditRecord]):
    list_display = [
        "seq",
        "occurred_at",
        "actor",
        "actor_type",
        "action",
        "resource_type",
        "resource_id",
        "outcome",
        "reason",
        "source_ip",
    ]
    list_filter = ["actor_type", "outcome", "reason"]
    search_fields = ["=actor", "=resource_id", "=correlation_id", "=client_id", "action"]
    ordering = ["-seq"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False  # no COUNT(*) over the whole trail on every search

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
