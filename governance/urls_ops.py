from __future__ import annotations

from django.urls import URLPattern, URLResolver

# /healthz, /readyz, /metrics (docs/deploy.md)
urlpatterns: list[URLPattern | URLResolver] = []
