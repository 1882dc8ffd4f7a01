from django.apps import AppConfig


class ApiKernelConfig(AppConfig):
    name = "fintech.api"
    label = "fintech_api"
    verbose_name = "API kernel"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import fintech.api.schema  # noqa: F401  (registers the schema extensions)
