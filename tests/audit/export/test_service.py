"""export_create (the service), the run_export task, and what the ledger records about exports."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings

from audit import ledger, offline_verify, tasks
from audit.export.errors import ExportError, ExportNotPermitted
from audit.export.scope import parse_scope
from audit.export.service import export_create, export_run
from audit.models import Entry, ExportJob, PendingEntry
from tests.audit.integration.helpers import tamper
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
Capture = Callable[..., object]


def test_an_export_is_recorded_in_the_ledger_and_written_by_the_task_after_commit(
    history: None, auditor: object, django_capture_on_commit_callbacks: Capture
) -> None:
    scope = parse_scope(subjects=["model_version:model/1"], since="2000-01-01")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:  # type: ignore[operator]
        job = export_create(actor=auditor, scope=scope, fmt="bundle")
        assert job.state == ExportJob.State.PENDING and not job.file_path

    assert len(callbacks) >= 1  # type: ignore[arg-type]
    job.refresh_from_db()
    assert job.state == ExportJob.State.DONE and job.error == ""
    path = Path(job.file_path)
    assert path.parent == Path(settings.VAR_DIR) / "exports" and path.name == f"export-{job.pk}.zip"
    assert job.entries_done == job.entries_total == Entry.objects.filter(subject_id="model/1").count()
    assert job.file_size == path.stat().st_size and len(job.file_sha256) == 64
    assert offline_verify.verify_bundle(str(path)).ok

    entry = Entry.objects.get(seq=job.ledger_seq)
    assert entry.event_type == "ledger.exported"
    assert entry.actor == {"type": "user", "id": str(auditor.pk)}  # type: ignore[attr-defined]
    assert entry.subject == {"type": "export", "id": str(job.pk)}
    assert entry.payload == {"export_id": job.pk, "format": "bundle", "scope": job.scope}
    assert job.scope["since"] == "2000-01-01T00:00:00.000000Z" and job.scope["until"] is None
    head = Entry.objects.filter(subject_id="model/1").order_by("-seq").first()
    assert head is not None
    assert job.scope["subjects"] == [["model_version", "model/1", head.seq]]
    assert job.scope["ledger_size"] == job.ledger_seq  # the ledger as it was when the export was recorded


def test_run_export_is_idempotent(history: None, infosec: object) -> None:
    job = export_create(actor=infosec, scope=parse_scope(), fmt="csv", enqueue=False)

    first = tasks.run_export(job.pk)
    mtime = Path(first).stat().st_mtime_ns
    again = tasks.run_export(job.pk)

    assert first == again and Path(again).stat().st_mtime_ns == mtime
    assert Entry.objects.filter(event_type="ledger.exported").count() == 1


def test_only_infosec_and_auditors_export_and_a_refusal_records_nothing(history: None, outsider: object) -> None:
    inactive = UserFactory(username="ivan-inactive", roles=["auditor"], is_active=False)
    before = (Entry.objects.count(), PendingEntry.objects.count(), ExportJob.objects.count())

    for user in (outsider, inactive):
        with pytest.raises(ExportNotPermitted):
            export_create(actor=user, scope=parse_scope(), fmt="bundle")

    assert (Entry.objects.count(), PendingEntry.objects.count(), ExportJob.objects.count()) == before


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"since": "yesterday"}, "--since 'yesterday' is not an ISO 8601 date or time"),
    ({"since": "2026-02-01", "until": "2026-01-01"}, "is after --until"),
    ({"event_types": ["ledger.nonsense"]}, "unknown event type 'ledger.nonsense'"),
    ({"subjects": ["no-colon"]}, "subject 'no-colon' must look like TYPE:ID"),
    ({"subjects": [":7"]}, "must look like TYPE:ID"),
    ({"model": "  "}, "--model must be a non-empty name"),
])
def test_a_bad_scope_is_refused_with_a_clear_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ExportError, match=message):
        parse_scope(**kwargs)


@pytest.mark.parametrize(("scope", "fmt", "message"), [
    ({"model": "no-such-model"}, "bundle", "no registered model named 'no-such-model'"),
    ({"dataset": "no-such-dataset"}, "bundle", "no dataset named 'no-such-dataset'"),
    ({}, "report", "the report format is about one model, and the scope names none"),
    ({}, "pdf", "the pdf format is about one model, and the scope names none"),
    ({}, "docx", "format must be one of bundle, csv, report, pdf"),
])
def test_unknown_names_and_formats_are_refused_before_anything_is_written(
    history: None, infosec: object, scope: dict, fmt: str, message: str
) -> None:
    before = (PendingEntry.objects.count(), ExportJob.objects.count())
    with pytest.raises(ExportError, match=message):
        export_create(actor=infosec, scope=parse_scope(**scope), fmt=fmt)
    assert (PendingEntry.objects.count(), ExportJob.objects.count()) == before


def test_an_export_of_a_tampered_ledger_fails_with_the_reason_on_the_job(history: None, infosec: object,
                                                                      tmp_path: Path) -> None:
    job = export_create(actor=infosec, scope=parse_scope(), fmt="bundle", enqueue=False)
    ledger.integrate()
    tamper("UPDATE audit_entry SET payload_json = %s WHERE seq = 30", ['{"text":"rewritten"}'])

    with pytest.raises(ExportError, match="entry 30 does not match its stored hash"):
        export_run(export_id=job.pk, out=tmp_path / "x.zip")

    job.refresh_from_db()
    assert job.state == ExportJob.State.FAILED and "entry 30 does not match its stored hash" in job.error
    assert not (tmp_path / "x.zip").exists() and not list(tmp_path.glob(".x.zip*"))
    assert tasks.run_export(job.pk) is None  # the task records the failure and does not retry it


def test_the_export_entry_scope_is_the_manifests(history: None, infosec: object, tmp_path: Path) -> None:
    job = export_create(actor=infosec, scope=parse_scope(until="2100-01-01"), fmt="bundle", enqueue=False)
    job = export_run(export_id=job.pk, out=tmp_path / "b.zip")

    import zipfile

    with zipfile.ZipFile(job.file_path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        export_entry = json.loads(zf.read("export-entry.json"))
    assert manifest["scope"] == export_entry["body"]["payload"]["scope"] == job.scope
    assert manifest["exporter"] == {"type": "user", "id": str(infosec.pk)}  # type: ignore[attr-defined]
    assert manifest["scope"]["until"] == "2100-01-01T23:59:59.999999Z"
