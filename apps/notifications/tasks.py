from __future__ import annotations

from celery import shared_task

from apps.notifications import services


@shared_task(name="apps.notifications.tasks.deliver_notifications", ignore_result=True)
def deliver_notifications() -> int:
    """Send what is due (Celery beat runs this every two seconds in production)."""
    return services.notifications_deliver().attempted
