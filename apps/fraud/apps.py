from django.apps import AppConfig


class FraudConfig(AppConfig):
    name = "apps.fraud"
    label = "fraud"
    verbose_name = "Anti-fraud screening and reviews"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.fraud import handlers  # noqa: F401 - registers the subscriptions
