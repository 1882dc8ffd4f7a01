from django.apps import AppConfig


class ContextsKernelConfig(AppConfig):
    """Installed for its command: `startcontext`."""

    name = "fintech.contexts"
    label = "fintech_contexts"
    verbose_name = "Context layout"
