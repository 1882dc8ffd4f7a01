"""Commands of the notifications context: what each event tells whom (recorded once), the
delivery of what was recorded, resends, opt-outs and erasure.

Exactly one notification per event, channel and recipient, also when events are redelivered or
a sender crashes: the handler records the intent (unique per event, channel and recipient) in
its unit of work, with the event's inbox record; the delivery worker sends outside any
transaction, under an idempotency key the provider sees, and then marks it sent. A worker that
dies between sending and marking leaves a lease that runs out, and the next attempt sends the
same message under the same key, which the provider recognises.
"""

from apps.notifications.services.delivery import DeliveryReport, notification_resend, notifications_deliver, send
from apps.notifications.services.preferences import channel_opt_in, channel_opt_out, customers_notifications_erase
from apps.notifications.services.recording import Notice, notices_of, notify

__all__ = [
    "DeliveryReport",
    "Notice",
    "channel_opt_in",
    "channel_opt_out",
    "customers_notifications_erase",
    "notices_of",
    "notification_resend",
    "notifications_deliver",
    "notify",
    "send",
]
