from __future__ import annotations

from fintech.errors import Conflict, NotFound, ValidationFailed


class NotificationNotFound(NotFound):
    code = "notification_not_found"
    title = "Notification not found"


class NotificationNotResendable(Conflict):
    code = "notification_not_resendable"
    title = "Only a sent or failed notification can be sent again"


class UnknownChannel(ValidationFailed):
    code = "unknown_channel"
    title = "No such channel"
