from django.apps import AppConfig


class AuthKernelConfig(AppConfig):
    name = "fintech.auth"
    # "auth" is django.contrib.auth's label; two apps may not share one.
    label = "fintech_auth"
    verbose_name = "Authentication kernel"

    def ready(self) -> None:
        # Registers the OpenAPI extension. Not imported from authentication.py: DRF loads that
        # module while rest_framework.views is half-initialised (DEFAULT_AUTHENTICATION_CLASSES),
        # and drf-spectacular imports rest_framework.views, which would close an import cycle.
        import fintech.auth.schema  # noqa: F401
