"""The default admin site with the audit models (legal holds, verification runs) registered.

The console is routed too: the styled error pages (templates/403.html, 404.html) link to it."""
from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

import audit.admin  # noqa: F401

urlpatterns = [path("admin/", admin.site.urls), path("console/", include("web.console.urls"))]
