"""The export download, at the site root (``/exports/<id>/download``, included by ``config.urls``)."""
from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from audit.console.exports import export_download

urlpatterns: list[URLPattern | URLResolver] = [
    path("exports/<int:export_id>/download", export_download, name="export-download"),
]
