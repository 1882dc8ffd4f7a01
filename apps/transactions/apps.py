from django.apps import AppConfig


class TransfersConfig(AppConfig):
    name = "apps.transactions"
    label = "transactions"
    verbose_name = "Transfers and deposits"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.transactions import handlers  # noqa: F401 - registers the subscriptions
