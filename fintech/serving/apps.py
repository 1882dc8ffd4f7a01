from django.apps import AppConfig


class ServingConfig(AppConfig):
    name = "fintech.serving"
    label = "fintech_serving"
    verbose_name = "Serving"
