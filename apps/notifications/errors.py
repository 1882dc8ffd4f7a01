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


class PaymentNotYetKnown(RuntimeError):
    """The network answered a payment whose `payment.initiated` has not arrived here yet (events
    of two topics may come out of order): the delivery is retried until it has."""
