from __future__ import annotations

from rest_framework import serializers

from apps.notifications.models import Notification
from fintech.api.serializers import QueryInput


class NotificationListQuery(QueryInput):
    customer_id = serializers.UUIDField(required=False)


class NotificationOutput(serializers.ModelSerializer[Notification]):
    class Meta:
        model = Notification
        fields = [
            "id",
            "event_id",
            "event_type",
            "notice",
            "category",
            "channel",
            "customer_id",
            "language",
            "subject",
            "body",
            "status",
            "attempts",
            "resends",
            "sent_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields
