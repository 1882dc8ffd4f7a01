from django.apps import AppConfig


class CryptoKernelConfig(AppConfig):
    """Installed for its commands: `generate_encryption_key` and `rotate_keys`."""

    name = "fintech.crypto"
    label = "fintech_crypto"
    verbose_name = "Personal-data encryption kernel"
