from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.notifications import services
from apps.notifications.models import ChannelOptOut, Notification
from fintech.backoffice import ReadOnly
from fintech.errors import DomainError


@admin.register(Notification)
class NotificationAdmin(ReadOnly, admin.ModelAdmin[Notification]):
    # Notifications come from events; the back office resends through the action.
    list_display = ["created_at", "notice", "channel", "recipient", "language", "status", "attempts", "sent_at"]
    list_filter = ["status", "channel", "category", "notice", "language"]
    search_fields = ["=customer_id", "=event_id", "=id"]
    search_help_text = "A customer id, an event id or a notification id."
    readonly_fields = [
        "id",
        "event_id",
        "event_type",
        "notice",
        "category",
        "channel",
        "recipient",
        "customer_id",
        "language",
        "subject",
        "body",
        "status",
        "attempts",
        "resends",
        "next_attempt_at",
        "lease_until",
        "last_error",
        "sent_at",
        "erased_at",
        "created_at",
        "updated_at",
    ]
    actions = ["resend_selected"]

    @admin.action(description="Send the selected notifications again")
    def resend_selected(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        done = 0
        for notification in queryset:
            try:
                services.notification_resend(notification_id=notification.id)
                done += 1
            except DomainError as error:
                self.message_user(request, f"{notification}: {error.detail}", messages.WARNING)
        self.message_user(request, f"{done} notification(s) will be sent again.")


@admin.register(ChannelOptOut)
class ChannelOptOutAdmin(admin.ModelAdmin[ChannelOptOut]):
    list_display = ["customer_id", "channel", "created_at"]
    list_filter = ["channel"]
    search_fields = ["=customer_id"]

    def has_change_permission(self, request: HttpRequest, obj: ChannelOptOut | None = None) -> bool:
        return False
