from __future__ import annotations

import uuid

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from apps.notifications import selectors
from apps.notifications.api.serializers import NotificationListQuery, NotificationOutput
from apps.notifications.models import Notification
from fintech.auth.permissions import customer_scope, require_customer_access
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
        query = NotificationListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        customer_id = query.validated_data.get("customer_id") or customer_scope(request)
        if customer_id is None:
            raise ValidationFailed("customer_id is required.", errors={"customer_id": ["This field is required."]})
        require_customer_access(request, customer_id)
        page = self.paginate_queryset(selectors.notification_list(customer_id=customer_id))
        return self.get_paginated_response(NotificationOutput(page, many=True).data)
