from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "apps.payments"
    label = "payments"
    verbose_name = "Payments to and from other banks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.payments import handlers  # noqa: F401 - registers the subscriptions
