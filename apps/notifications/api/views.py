from __future__ import annotations

import uuid

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from apps.notifications import selectors
from apps.notifications.api.serializers import NotificationOutput
from apps.notifications.models import Notification
from fintech.auth.permissions import current_principal, require_customer_access
from fintech.errors import ValidationFailed


class NotificationListView(GenericAPIView[Notification]):
    required_scopes = {"GET": ("customers:read",)}
    serializer_class = NotificationOutput

    @extend_schema(
        operation_id="notifications_list",
        parameters=[
            OpenApiParameter(
                "customer_id",
                uuid.UUID,
                description="Whose notifications. Required for staff; a customer's token reads its own "
                "(another customer's id answers 404).",
            )
        ],
        responses=NotificationOutput(many=True),
        description="What was sent to a customer, on which channel, with its delivery status and attempts.",
    )
    def get(self, request: Request) -> Response:
        principal = current_principal(request)
        raw = request.query_params.get("customer_id")
        try:
            customer_id = uuid.UUID(raw) if raw else None
        except ValueError:
            raise ValidationFailed("customer_id must be a UUID.", errors={"customer_id": ["Must be a UUID."]}) from None
        if customer_id is None and principal.is_customer:
            customer_id = principal.customer_id
        if customer_id is None:
            raise ValidationFailed("customer_id is required.", errors={"customer_id": ["This field is required."]})
        require_customer_access(request, customer_id)
        page = self.paginate_queryset(selectors.notification_list(customer_id=customer_id))
        return self.get_paginated_response(NotificationOutput(page, many=True).data)
