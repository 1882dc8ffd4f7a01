from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from fintech.api import health

api_v1 = [
    path("", include("apps.customers.api.urls")),
    path("", include("apps.accounts.api.urls")),
    path("", include("apps.transactions.api.urls")),
    path("", include("apps.ledger.api.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("django_prometheus.urls")),
]

handler404 = "fintech.api.errors.not_found_view"
handler500 = "fintech.api.errors.server_error_view"
