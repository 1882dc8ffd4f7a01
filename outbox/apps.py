from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings


class OutboxConfig(AppConfig):
    name = "outbox"
    verbose_name = "Event outbox"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from outbox import dispatcher, tasks, unit_of_work

        def after_commit(written: list[unit_of_work.Written]) -> None:
            # Looked up at each call, so the mode (and, in tests, the function) can change.
            mode = settings.FINTECH_EVENT_DISPATCH
            if mode == "inline" and settings.FINTECH_REACTIONS_IN_PROCESS:
                dispatcher.dispatch_after_commit(written)
            elif mode == "celery":
                tasks.enqueue_dispatch(written)
            # worker, or reactions left to workers: `manage.py dispatch_events` finds them in the outbox

        unit_of_work.set_after_commit(after_commit)

        from prometheus_client import REGISTRY

        from fintech.api.health import add_readiness_check
        from outbox.health import BacklogCollector, dispatcher_check

        add_readiness_check("dispatcher", dispatcher_check)
        if not any(isinstance(c, BacklogCollector) for c in list(REGISTRY._collector_to_names)):
            REGISTRY.register(BacklogCollector())

        if settings.FINTECH_PAYMENT_NETWORK == "simulator-inline":
            from outbox.network_simulator import inline

            inline.install()
