"""The default admin site with the audit models (legal holds, verification runs) registered."""
from __future__ import annotations

from django.contrib import admin
from django.urls import path

import audit.admin  # noqa: F401

urlpatterns = [path("admin/", admin.site.urls)]
