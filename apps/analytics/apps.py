from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "apps.analytics"
    label = "analytics"
    verbose_name = "Analytics"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.analytics import handlers  # noqa: F401 - registers the subscriptions
        from apps.analytics.prometheus import register_business_metrics

        register_business_metrics()
