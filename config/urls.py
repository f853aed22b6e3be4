"""The URL map of the whole site: each area's routes are included from where they live."""
from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from governance.api.webhooks import mlflow_webhook
from web.api import problems
from web.console.chrome import favicon
from web.health import healthz, readyz, status_view
from web.metrics import metrics_view

urlpatterns = [
    path("", RedirectView.as_view(url="/console/", permanent=False)),
    path("admin/", admin.site.urls),
    path("favicon.ico", favicon, name="favicon"),
    path("webhooks/mlflow", mlflow_webhook, name="mlflow-webhook"),
    # Operations endpoints: /healthz and /readyz are unauthenticated and say nothing sensitive;
    # /metrics and /status (the dashboard's view of the worker's dependencies) are restricted.
    path("healthz", healthz, name="ops-healthz"),
    path("readyz", readyz, name="ops-readyz"),
    path("metrics", metrics_view, name="ops-metrics"),
    path("status", status_view, name="ops-status"),
    path("api/v1/", include("web.api.urls")),
    # The Merkle tree as C2SP tlog-tiles (monitors, witnesses, verify.py --tiles): audit/api/tiles.py.
    path("tlog/", include("audit.api.tiles_urls")),
    re_path(r"^api/", problems.api_not_found),
    path("console/", include("web.console.urls")),
    path("", include("audit.console.download_urls")),
]

handler400 = "web.api.problems.bad_request"
handler404 = "web.api.problems.page_not_found"
handler500 = "web.api.problems.server_error"
