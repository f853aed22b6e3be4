"""``/api/v1/``: each domain's routes, the OpenAPI schema and its docs page."""
from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("", include("audit.urls_api")),
    path("", include("governance.api.urls_promotions")),
    path("", include("access.urls_api")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
