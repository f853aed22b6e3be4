"""The console's exports (list, start, detail) and the download view the console and the API link to.

InfoSec sees and downloads every export, an auditor only their own; everyone else gets 404 on a download.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from audit.console.reads import LedgerRead, ledger_read, not_a_ledger_read
from audit.errors import StepUpRequired
from audit.event_types import registry
from audit.export import sections
from audit.export.bundle import verify_command
from audit.export.errors import ExportError
from audit.export.scope import FORMATS, MODEL_FORMATS, ExportScope, parse_scope
from audit.export.service import export_create, exports_dir, path_name
from audit.models import ExportJob
from audit.selectors import exports_visible_to
from web.console.base import denied, is_oversight, refusal_message
from web.console.tables import Column, TableSpec, csv_response, table, wants_csv

EXPORTS_NOT_PERMITTED = "Ledger exports are for InfoSec and auditors: you are not permitted to see them."
EXPORTS_TABLE = TableSpec(
    name="exports",
    columns=(
        Column("id", "#", ("id",), lambda j: j.pk, desc_first=True),
        Column("who", "Who", ("created_by__username",),
               lambda j: j.created_by.get_username() if j.created_by_id else "operator"),
        Column("created", "When", ("created_at",), lambda j: j.created_at, desc_first=True),
        Column("format", "Format", ("format",), lambda j: j.format),
        Column("scope", "Scope", value=lambda j: _scope_text(j.scope)),
        Column("state", "State", ("state",), lambda j: j.state),
        Column("size", "Size", ("file_size",), lambda j: j.file_size, desc_first=True),
        Column("sha256", "SHA-256", value=lambda j: j.file_sha256),
    ),
    default_sort="-created",
)
CONTENT_TYPES = {"bundle": "application/zip", "csv": "text/csv; charset=utf-8", "report": "text/html; charset=utf-8",
                 "pdf": "application/pdf"}
# The form's words for the formats (FORMATS is their order).
FORMAT_LABELS = {"bundle": "bundle (zip, verifies offline)", "csv": "csv (spreadsheet)",
                 "report": "audit pack of a model (HTML)", "pdf": "audit pack of a model (PDF)"}


@require_GET
@never_cache
@ledger_read(LedgerRead("export-download", subject=("export", "<export_id>")))
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


def _scope_text(scope: dict[str, Any]) -> str:
    parts = []
    if scope.get("since") or scope.get("until"):
        parts.append(f"{(scope.get('since') or '…')[:10]} → {(scope.get('until') or '…')[:10]}")
    if scope.get("event_types"):
        parts.append(", ".join(scope["event_types"]))
    if scope.get("model"):
        parts.append(f"model {scope['model']}")
    if scope.get("dataset"):
        parts.append(f"dataset {scope['dataset']}")
    subjects = scope.get("subjects") or []
    if subjects and not scope.get("model") and not scope.get("dataset"):
        parts.append(f"{len(subjects)} subject{'s' if len(subjects) != 1 else ''}")
    return "; ".join(parts) or "whole ledger"


def _rows(page: Any) -> list[tuple[ExportJob, str, bool]]:
    # Only visible exports are listed, and whoever may see an export may download it (may_download's rule).
    return [(j, _scope_text(j.scope), True) for j in page]


def _visible_exports(request: HttpRequest) -> QuerySet[ExportJob]:
    """The one rule shared with the API and the download view (``exports_visible_to``): InfoSec sees every
    export, an auditor only their own."""
    jobs = exports_visible_to(request.user)
    return jobs if jobs is not None else ExportJob.objects.none()


#: How scope errors name the form's fields (never the command's flags).
FORM_LABELS = {"since": "the From date", "until": "the To date", "model": "a model", "dataset": "a dataset",
               "since_checkpoint": "the checkpoint"}


def _form_context(request: HttpRequest, form: Any) -> dict[str, Any]:
    """The page with its export form: pickers of the models and datasets the viewer may see (their domains'
    visibility rules, registered with ``audit.export.sections``) and of the event types, above the past
    exports (sorted and paged as the query string says)."""
    view = table(request, EXPORTS_TABLE, _visible_exports(request))
    return {
        "nav": "exports", "page": view.page, "qs": view.query, "table": view,
        "formats": [(fmt, FORMAT_LABELS[fmt]) for fmt in FORMATS],
        "types": registry.names(), "rows": _rows(view.page),
        "models": sections.scope_choices("model", request.user),
        "datasets": sections.scope_choices("dataset", request.user),
        "form": form,
        "selected_types": form.getlist("event_types") if form else [],
        "selected_models": form.getlist("model") if form else [],
        "selected_datasets": form.getlist("dataset") if form else [],
    }


@not_a_ledger_read("the exports' metadata (who, when, scope), not the ledger's content; starting one is "
                   "ledger.exported, downloading one is export-download's ledger.accessed")
@login_required
def exports(request: HttpRequest) -> HttpResponseBase:
    if not is_oversight(request.user):
        return denied(request, EXPORTS_NOT_PERMITTED)
    if request.method == "POST":
        return _export_start(request)
    jobs = _visible_exports(request)
    if wants_csv(request):
        return csv_response(request, EXPORTS_TABLE, jobs)
    return render(request, "console/exports.html", _form_context(request, None))


def _picked(request: HttpRequest, kind: str, what: str) -> list[str]:
    """The names picked for ``kind``, each one the viewer may export; a name posted by hand that is not among
    them (unknown, or not theirs to see) is refused with the same words."""
    names = sorted({n.strip() for n in request.POST.getlist(kind) if n.strip()})
    allowed = set(sections.scope_choices(kind, request.user))
    refused = [n for n in names if n not in allowed]
    if refused:
        raise ExportError(f"no {what} named {refused[0][:80]!r} among those you may export", code=f"unknown_{kind}")
    return names


def _form_scope(request: HttpRequest) -> tuple[ExportScope, str]:
    """The scope and format of the form. One model and one dataset are the scope's own; several are exported
    as the subjects each one means (the same resolvers), so a report, which is about one model, needs one."""
    data = request.POST
    fmt = data.get("format", "bundle")
    models = _picked(request, "model", "model")
    datasets = _picked(request, "dataset", "dataset")
    if fmt in MODEL_FORMATS and len(models) != 1:
        raise ExportError("an audit pack (HTML or PDF) is about one model: pick exactly one model",
                          code="report_needs_model")
    subjects = [s.strip() for s in data.get("subjects", "").splitlines() if s.strip()]
    model = dataset = None
    if len(models) == 1 and len(datasets) <= 1:
        model = models[0]
        dataset = datasets[0] if datasets else None
    elif not models and len(datasets) == 1:
        dataset = datasets[0]
    else:
        subjects += [f"{t}:{i}" for kind, names in (("model", models), ("dataset", datasets))
                     for name in names for t, i in sections.subjects_of(kind, name)]
    scope = parse_scope(
        since=data.get("since") or None, until=data.get("until") or None, subjects=subjects,
        event_types=data.getlist("event_types"), model=model, dataset=dataset, labels=FORM_LABELS,
    )
    return scope, fmt


def _export_start(request: HttpRequest) -> HttpResponse:
    try:
        scope, fmt = _form_scope(request)
        job = export_create(actor=request.user, scope=scope, fmt=fmt)  # type: ignore[arg-type]
    except ExportError as exc:
        messages.error(request, f"The export was not started: {_form_words(exc)}.")
        return render(request, "console/exports.html", _form_context(request, request.POST), status=400)
    except StepUpRequired as exc:  # nothing was recorded: confirm it's you, then start it again
        refusal_message(request, exc)
        return render(request, "console/exports.html", _form_context(request, request.POST), status=403)
    messages.success(request, f"Export #{job.pk} started; recorded in the ledger.")
    return redirect("console-export", export_id=job.pk)


def _form_words(exc: ExportError) -> str:
    """The service's refusal as the form would say it (its messages name no command-line flag the form lacks)."""
    if exc.code == "report_needs_model":
        return "an audit pack (HTML or PDF) is about one model: pick exactly one model"
    return str(exc)


@not_a_ledger_read("one export's metadata and progress, not the ledger's content (its file: export-download)")
@login_required
def export_detail(request: HttpRequest, export_id: int) -> HttpResponse:
    if not is_oversight(request.user):
        return denied(request, EXPORTS_NOT_PERMITTED)
    job = _visible_exports(request).filter(pk=export_id).first()
    if job is None:  # missing and someone else's look the same
        return render(request, "console/exports_missing.html", {"nav": "exports", "export_id": export_id},
                      status=404)
    running = job.state in (ExportJob.State.PENDING, ExportJob.State.RUNNING)
    percent = None
    if job.entries_total:
        percent = min(100, round(100 * job.entries_done / job.entries_total))
    return render(request, "console/exports_detail.html", {
        "nav": "exports", "job": job, "running": running, "percent": percent, "scope_text": _scope_text(job.scope),
        "scope_json": json.dumps(job.scope, indent=2, sort_keys=True),
        "may_download": job.state == ExportJob.State.DONE,
        "download_url": reverse("export-download", args=[job.pk]),
        "verify_command": verify_command(path_name(job)) if job.format == "bundle" else None,
    })


