from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from fintech.api import health

api_v1 = [
    path("", include("apps.customers.api.urls")),
    path("", include("apps.accounts.api.urls")),
    path("", include("apps.transactions.api.urls")),
    path("", include("apps.ledger.api.urls")),
    path("", include("apps.payments.api.urls")),
    path("", include("apps.fraud.api.urls")),
    path("", include("apps.notifications.api.urls")),
    path("", include("apps.analytics.api.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its script as a file, so the page needs no inline script (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("django_prometheus.urls")),
]

# Back-office login through the identity provider, only when one is configured: /oidc/... and an
# /admin/login/ that sends staff to it (ahead of the admin's own patterns). fintech/auth/admin_oidc.py.
if settings.OIDC_ISSUER:
    from fintech.auth.admin_oidc import urlpatterns as backoffice_login_urlpatterns

    urlpatterns = [*backoffice_login_urlpatterns, *urlpatterns]

handler404 = "fintech.api.errors.not_found_view"
handler500 = "fintech.api.errors.server_error_view"
