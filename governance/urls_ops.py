"""Operations endpoints: /healthz, /readyz (unauthenticated, nothing sensitive) and /metrics (restricted)."""
from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from governance.health import healthz, readyz
from governance.metrics import metrics_view

urlpatterns: list[URLPattern | URLResolver] = [
    path("healthz", healthz, name="ops-healthz"),
    path("readyz", readyz, name="ops-readyz"),
    path("metrics", metrics_view, name="ops-metrics"),
]
