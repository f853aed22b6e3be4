from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from governance.webhooks import mlflow_webhook

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("webhooks/mlflow", mlflow_webhook, name="mlflow-webhook"),
    path("", include("audit.urls_export")),
]
