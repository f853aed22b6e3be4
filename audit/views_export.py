"""Downloading a finished export: InfoSec any, an auditor only their own; everyone else gets 404.

The REST API and the console come later; this plain view is what they will link to.
"""
from __future__ import annotations

from pathlib import Path

from django.http import FileResponse, Http404, HttpRequest
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from audit.api_selectors import exports_visible_to
from audit.export import exports_dir
from audit.models import ExportJob

CONTENT_TYPES = {"bundle": "application/zip", "csv": "text/csv; charset=utf-8", "report": "text/html; charset=utf-8"}


@require_GET
@never_cache
def export_download(request: HttpRequest, export_id: int) -> FileResponse:
    visible = exports_visible_to(request.user)  # the rule the API and the console use
    job = visible.filter(pk=export_id).first() if visible is not None else None
    # One answer for "no such export", "not yours" and "not ready": nothing to learn from probing ids.
    if job is None or job.state != ExportJob.State.DONE:
        raise Http404("no such export")
    path = Path(job.file_path).resolve()
    if not job.file_path or not path.is_relative_to(exports_dir().resolve()) or not path.is_file():
        raise Http404("no such export")
    response = FileResponse(
        path.open("rb"), as_attachment=True, filename=path.name, content_type=CONTENT_TYPES[job.format]
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response
