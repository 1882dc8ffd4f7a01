"""The audit trail in the back office: read only, like the table itself."""

from __future__ import annotations

from django.contrib import admin

from apps.audit.models import AuditRecord
from fintech.backoffice import ReadOnly


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnly, admin.ModelAdmin[AuditRecord]):
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
