"""The bank's settings plus django-hordak, the benchmark's peer (a benchmark-only dependency)."""

from __future__ import annotations

from config.settings import *  # noqa: F403 - the bank exactly as configured, plus the peer below
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "mptt", "hordak"]
