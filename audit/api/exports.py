"""``/api/v1/exports``: start a regulator export, follow it, download its file.

The rules are the export service's own (``audit.export.service``): InfoSec and auditors
export; InfoSec sees and downloads every export, an auditor only their own. A
token acts as its service account's user, so that account needs one of those
roles as well as the ``exports:read`` scope. An export the caller may not see is
a 404, exactly like one that does not exist.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.http import FileResponse, Http404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.api.ledger import FirstRenderer
from audit.api.reads import LedgerReadMixin
from audit.console.exports import CONTENT_TYPES
from audit.console.reads import LedgerRead
from audit.export.scope import FORMATS, MAX_SUBJECTS, parse_scope
from audit.export.service import export_create, exports_dir, may_export
from audit.models import ExportJob
from audit.selectors import exports_visible_to
from web.api.docs import READ_PROBLEMS, answers
from web.api.inputs import StrictInput
from web.api.pagination import StandardPagination

TAG = "exports"
SCOPES = {"GET": "exports:read", "POST": "exports:read"}
# Scope errors name the body's fields, not the command's flags.
API_LABELS = {"since": "since", "until": "until", "model": "model", "dataset": "dataset",
              "since_checkpoint": "since_checkpoint"}


class ExportNotReady(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "not_ready"


def _visible(request: Request) -> Any:
    qs = exports_visible_to(request.user)
    if qs is None:
        raise exceptions.PermissionDenied("only InfoSec and auditors may see exports")
    return qs


def _job(request: Request, export_id: int) -> ExportJob:
    qs = exports_visible_to(request.user)
    job = qs.filter(pk=export_id).first() if qs is not None else None
    if job is None:
        raise Http404("no such export")
    return job


def job_data(job: ExportJob, request: Request) -> dict[str, Any]:
    user = job.created_by
    done = job.state == ExportJob.State.DONE
    return {
        "id": job.pk,
        "format": job.format,
        "state": job.state,
        "scope": job.scope,
        "created_by": {"id": user.pk, "username": user.get_username()} if user is not None else None,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "entries_total": job.entries_total,
        "entries_done": job.entries_done,
        "file_size": job.file_size,
        "file_sha256": job.file_sha256 or None,
        "error": job.error or None,
        "ledger_seq": job.ledger_seq,
        "checkpoint_size": job.checkpoint_size,
        "download_url": request.build_absolute_uri(reverse("api-export-download", args=[job.pk])) if done else None,
    }


class ExportSerializer(serializers.Serializer):
    @extend_schema_serializer(component_name="ExportCreator")
    class CreatorSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        username = serializers.CharField()

    id = serializers.IntegerField()
    format = serializers.ChoiceField(choices=list(FORMATS))
    state = serializers.ChoiceField(choices=ExportJob.State.choices)
    scope = serializers.JSONField(help_text="as recorded in the ledger.exported entry")
    created_by = CreatorSerializer(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    entries_total = serializers.IntegerField(allow_null=True)
    entries_done = serializers.IntegerField()
    file_size = serializers.IntegerField(allow_null=True)
    file_sha256 = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    ledger_seq = serializers.IntegerField(allow_null=True, help_text="seq of its ledger.exported entry")
    checkpoint_size = serializers.IntegerField(allow_null=True, help_text="the checkpoint it is anchored to")
    download_url = serializers.URLField(allow_null=True)


EXAMPLE_JOB = {
    "id": 12, "format": "bundle", "state": "running",
    "scope": {"since": "2026-11-01T00:00:00.000000Z", "until": None, "event_types": [], "model": "fraud-detector",
              "dataset": None, "subjects": [["registered_model", "fraud-detector", 40]], "ledger_size": 5120},
    "created_by": {"id": 7, "username": "audrey"}, "created_at": "2026-11-29T10:00:00Z",
    "started_at": "2026-11-29T10:00:01Z", "finished_at": None, "entries_total": 400, "entries_done": 120,
    "file_size": None, "file_sha256": None, "error": None, "ledger_seq": 5120, "checkpoint_size": 5121,
    "download_url": None,
}


class ExportsApi(APIView):
    """List past exports (InfoSec: all; an auditor: their own) or start one."""

    ledger_read_exempt = ("the exports' metadata, not the ledger's content; starting one is ledger.exported, "
                          "downloading one is api-export-download's ledger.accessed")

    required_scopes = SCOPES

    @extend_schema_serializer(component_name="ExportRequest")
    class InputSerializer(StrictInput):
        """Refuses keys it does not declare (a typo is an error, not a silently ignored filter)."""

        format = serializers.ChoiceField(choices=list(FORMATS), default="bundle")
        since = serializers.CharField(required=False, allow_null=True, max_length=64,
                                      help_text="ISO 8601 date or date-time, inclusive")
        until = serializers.CharField(required=False, allow_null=True, max_length=64,
                                      help_text="ISO 8601 date or date-time, inclusive (a date: the whole day)")
        event_types = serializers.ListField(child=serializers.CharField(max_length=100), required=False,
                                            max_length=200)
        subjects = serializers.ListField(child=serializers.CharField(max_length=410), required=False,
                                         max_length=MAX_SUBJECTS, help_text="TYPE:ID, e.g. model_version:fraud/3")
        model = serializers.CharField(required=False, allow_null=True, max_length=300,
                                      help_text="every subject of this registered model (required by "
                                                "'report' and 'pdf')")
        dataset = serializers.CharField(required=False, allow_null=True, max_length=300)
        since_checkpoint = serializers.IntegerField(
            required=False, allow_null=True, min_value=1, max_value=2**53 - 1,
            help_text="bundles: the tree size of a checkpoint the recipient holds; the bundle includes it and the "
            "consistency proof from it (docs/export-format.md, rule C3)")

    @extend_schema_serializer(component_name="ExportPage")
    class PageSerializer(serializers.Serializer):
        count = serializers.IntegerField()
        next = serializers.URLField(allow_null=True)
        previous = serializers.URLField(allow_null=True)
        results = ExportSerializer(many=True)

    @extend_schema(
        tags=[TAG], summary="List exports", operation_id="exports_list",
        parameters=[OpenApiParameter("page", OpenApiTypes.INT), OpenApiParameter("page_size", OpenApiTypes.INT)],
        responses=answers({200: PageSerializer}, READ_PROBLEMS),
        examples=[OpenApiExample("exports", response_only=True, value={
            "count": 1, "next": None, "previous": None, "results": [EXAMPLE_JOB]})],
    )
    def get(self, request: Request) -> Response:
        qs = _visible(request)
        paginator = StandardPagination()
        page = paginator.paginate_queryset(qs, request, view=self) or []
        return paginator.get_paginated_response([job_data(j, request) for j in page])

    @extend_schema(
        tags=[TAG], summary="Start an export",
        description="Records `ledger.exported` and queues the job; poll the job, then download its file.",
        request=InputSerializer,
        responses=answers({202: ExportSerializer}, (400, 401, 403, 415, 429)),
        examples=[
            OpenApiExample("a model's history since November", request_only=True,
                           value={"format": "bundle", "model": "fraud-detector", "since": "2026-11-01"}),
            OpenApiExample("queued", response_only=True, status_codes=["202"],
                           value={**EXAMPLE_JOB, "state": "pending", "started_at": None, "entries_total": None,
                                  "entries_done": 0}),
        ],
    )
    def post(self, request: Request) -> Response:
        if not may_export(request.user):
            # Refused before the body is looked at: nothing to learn about scopes by probing.
            raise exceptions.PermissionDenied("only InfoSec and auditors may export the ledger")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        # ExportError (bad scope) → 400 and ExportNotPermitted → 403, through the API's error handler.
        scope = parse_scope(since=v.get("since"), until=v.get("until"), subjects=v.get("subjects", ()),
                            event_types=v.get("event_types", ()), model=v.get("model"), dataset=v.get("dataset"),
                            since_checkpoint=v.get("since_checkpoint"), labels=API_LABELS)
        job = export_create(actor=request.user, scope=scope, fmt=v["format"])
        return Response(job_data(job, request), status=status.HTTP_202_ACCEPTED)


class ExportApi(APIView):
    """One export and its progress."""

    ledger_read_exempt = "one export's metadata and progress, not the ledger's content (its file: the download)"

    required_scope = "exports:read"

    @extend_schema(tags=[TAG], summary="Get an export (progress)",
                   responses=answers({200: ExportSerializer}, READ_PROBLEMS),
                   examples=[OpenApiExample("running", response_only=True, value=EXAMPLE_JOB)])
    def get(self, request: Request, export_id: int) -> Response:
        return Response(job_data(_job(request, export_id), request))


class ExportDownloadApi(LedgerReadMixin, APIView):
    """The export's file, once it is done."""

    ledger_read = LedgerRead("api-export-download", subject=("export", "<export_id>"))

    required_scope = "exports:read"
    content_negotiation_class = FirstRenderer

    @extend_schema(
        tags=[TAG], summary="Download an export's file",
        description="404: no such export (or not yours); 409: not done yet, or failed.",
        responses=answers({(200, "application/zip"): OpenApiTypes.BINARY, (200, "text/csv"): OpenApiTypes.BINARY,
                           (200, "text/html"): OpenApiTypes.BINARY}, (401, 403, 404, 409, 429)),
        examples=[OpenApiExample("a CSV export", response_only=True, media_type="text/csv", value=(
            "seq,timestamp,event_type,actor,subject,payload,entry_hash\n"
            "41,2026-11-29T09:30:00.123456Z,monitoring.data_drift_detected,service:drift-monitor,"
            "model_version:fraud-detector/3,\"{…}\",3f0c…\n"))],
    )
    def get(self, request: Request, export_id: int) -> FileResponse:
        job = _job(request, export_id)
        if job.state != ExportJob.State.DONE:
            detail = f"export #{job.pk} is {job.state}"
            detail += f": {job.error}" if job.state == ExportJob.State.FAILED else "; try again when it is done"
            raise ExportNotReady(detail)
        path = Path(job.file_path).resolve()
        if not job.file_path or not path.is_relative_to(exports_dir().resolve()) or not path.is_file():
            raise Http404("the export's file is gone")
        response = FileResponse(path.open("rb"), as_attachment=True, filename=path.name,
                                content_type=CONTENT_TYPES[job.format])
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "no-store"
        return response
