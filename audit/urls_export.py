from __future__ import annotations

from django.urls import path

from audit.views_export import export_download

urlpatterns = [
    path("exports/<int:export_id>/download", export_download, name="export-download"),
]
