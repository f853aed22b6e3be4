from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from governance.api import errors as api_errors
from governance.webhooks import mlflow_webhook

urlpatterns = [
    path("", RedirectView.as_view(url="/console/", permanent=False)),
    path("admin/", admin.site.urls),
    path("webhooks/mlflow", mlflow_webhook, name="mlflow-webhook"),
    path("", include("governance.urls_ops")),
    path("api/v1/", include("governance.api.urls")),
    re_path(r"^api/", api_errors.api_not_found),
    path("console/", include("governance.console.urls")),
    path("", include("audit.urls_export")),
]

handler400 = "governance.api.errors.bad_request"
handler404 = "governance.api.errors.page_not_found"
handler500 = "governance.api.errors.server_error"
