from django.apps import AppConfig


class SpineProbeConfig(AppConfig):
    """A probe context installed only under test (FINTECH_TEST_APPS): its handlers react to
    real events and leave countable effects, so the spine's guarantees can be measured."""

    name = "tests.spine"
    label = "spine_probe"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tests.spine import handlers  # noqa: F401
