"""The admin with the operational models registered (until audit/admin.py imports audit.admin_ops)."""
from __future__ import annotations

from django.contrib import admin
from django.urls import path

import audit.admin_ops  # noqa: F401

urlpatterns = [path("admin/", admin.site.urls)]
