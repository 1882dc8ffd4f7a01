"""The WSGI entry point (gunicorn: config/gunicorn.py).

The web process serves the admin's and Swagger UI's static files itself, from what
`collectstatic` put in STATIC_ROOT (WhiteNoise, with caching headers and conditional requests), so
they load under the production server with or without DEBUG; every other path goes to Django.
Wrapped around the application rather than a middleware: the test client never pays for it.
"""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from whitenoise import WhiteNoise  # type: ignore[import-untyped]

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = WhiteNoise(get_wsgi_application(), root=settings.STATIC_ROOT, prefix=settings.STATIC_URL)
