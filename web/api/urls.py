"""``/api/v1/``: each domain's routes, the OpenAPI schema and its docs page."""
from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny

from web.api.views import ApiIndexApi, WhoAmIApi

urlpatterns = [
    # The index names the collections, the schema and the docs page; like them it is public.
    path("", ApiIndexApi.as_view(), name="api-index"),
    path("", include("audit.api.urls")),
    path("", include("governance.api.urls")),
    path("", include("access.api.urls")),
    path("whoami", WhoAmIApi.as_view(), name="api-whoami"),
    # The schema and its docs page are public: they describe the API, not its data.
    path("schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[AllowAny]),
         name="api-schema"),
    # The split view serves the page's init script as a file of its own (docs/?script), so the page
    # passes the Content-Security-Policy without an inline-script exception.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema", authentication_classes=[],
                                                      permission_classes=[AllowAny]), name="api-docs"),
]
