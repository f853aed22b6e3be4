"""The integrations' console pages (included under ``/console/`` by ``web.console.urls``)."""
from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from integrations.console import siem

urlpatterns: list[URLPattern | URLResolver] = [
    path("siem/", siem.siem_status, name="console-siem"),
]
