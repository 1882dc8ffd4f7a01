from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "apps.customers"
    label = "customers"
    verbose_name = "Customers and KYC"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.customers import handlers  # noqa: F401 - registers the subscriptions
