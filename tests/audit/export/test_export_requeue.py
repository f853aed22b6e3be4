"""An export whose task was lost after it committed is written by the sweep, once; two writers at once write once.

The loss is made by not running the after-commit hook (what a broker failing after ``require_broker`` leaves;
the real broker failure is tests/ops/test_fault_broker.py). The sweep (``web.follow_ups``) runs in-process
with its clock moved past the grace; Celery is eager here (conftest), so a re-queued task runs in it.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from audit import offline_verify
from audit.export.scope import parse_scope
from audit.export.service import RUN_TIME_LIMIT, export_create, export_run, exports_outstanding
from audit.models import Entry, ExportJob
from web.follow_ups import requeue_stalled_follow_ups

pytestmark = pytest.mark.django_db
Capture = Callable[..., Any]
GRACE = timedelta(seconds=120)
NOTHING = {"requeued": 0, "not_queued": 0, "dropped": 0}


@pytest.fixture(autouse=True)
def _grace(settings: Any) -> None:
    settings.FOLLOW_UP_GRACE_SECONDS = int(GRACE.total_seconds())


def later(seconds: float = 1) -> Any:
    return timezone.now() + GRACE + timedelta(seconds=seconds)


def lost_export(actor: object, capture: Capture, fmt: str = "csv") -> ExportJob:
    with capture(execute=False) as lost:
        job = export_create(actor=actor, scope=parse_scope(), fmt=fmt)
    assert len(lost) == 1
    job.refresh_from_db()
    assert job.state == ExportJob.State.PENDING and job.queued_at == job.created_at
    return job


def test_an_export_whose_task_was_lost_is_written_by_the_sweep_past_the_grace_once(
    history: None, auditor: object, django_capture_on_commit_callbacks: Capture,
) -> None:
    job = lost_export(auditor, django_capture_on_commit_callbacks, fmt="bundle")

    assert requeue_stalled_follow_ups(now=timezone.now() + GRACE - timedelta(seconds=5)) == NOTHING
    job.refresh_from_db()
    assert job.state == ExportJob.State.PENDING and job.queued_at == job.created_at

    assert requeue_stalled_follow_ups(now=later())["requeued"] == 1

    job.refresh_from_db()
    assert job.state == ExportJob.State.DONE and offline_verify.verify_bundle(job.file_path).ok
    written = Path(job.file_path).stat().st_mtime_ns
    assert requeue_stalled_follow_ups(now=later(3600)) == NOTHING
    assert Path(job.file_path).stat().st_mtime_ns == written
    assert Entry.objects.filter(event_type="ledger.exported").count() == 1  # the sweep records nothing


def test_an_export_the_command_line_writes_itself_is_never_queued_by_the_sweep(history: None, infosec: object) -> None:
    job = export_create(actor=infosec, scope=parse_scope(), fmt="csv", enqueue=False)
    assert job.queued_at is None

    assert requeue_stalled_follow_ups(now=later(24 * 3600)) == NOTHING
    job.refresh_from_db()
    assert job.state == ExportJob.State.PENDING


def test_an_export_written_twice_at_once_is_written_once(
    history: None, auditor: object, django_capture_on_commit_callbacks: Capture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second writer starts while the first is half-way through its file (the worst moment: a re-queued task
    next to the lost one's twin, a redelivery); before ``export_run_claim`` both wrote the same file and the
    digest recorded could be the other writer's."""
    job = lost_export(auditor, django_capture_on_commit_callbacks)
    monkeypatch.setattr("audit.export.spreadsheet.PROGRESS_EVERY", 500)  # a progress report half-way through
    second: dict[str, Any] = {}

    def halfway(done: int, total: int | None) -> None:
        if "job" not in second:
            second["job"] = export_run(export_id=job.pk)
            second["progress"] = done

    first = export_run(export_id=job.pk, progress=halfway)

    assert second["progress"] < first.entries_done  # the second came half-way through...
    assert second["job"].state == ExportJob.State.RUNNING and second["job"].file_path == ""  # ...and left it alone
    assert first.state == ExportJob.State.DONE and first.entries_done == first.entries_total
    path = Path(first.file_path)
    assert len(list(path.parent.iterdir())) == 1  # one file, no other writer's temporary left
    assert hashlib.sha256(path.read_bytes()).hexdigest() == first.file_sha256


def test_an_export_left_running_by_a_dead_writer_is_queued_again_once_its_time_limit_is_over(
    history: None, auditor: object, django_capture_on_commit_callbacks: Capture,
) -> None:
    job = lost_export(auditor, django_capture_on_commit_callbacks)
    started = timezone.now() - RUN_TIME_LIMIT + timedelta(minutes=5)
    ExportJob.objects.filter(pk=job.pk).update(state=ExportJob.State.RUNNING, started_at=started)

    # still within its time limit: its writer may be alive; neither the sweep nor another writer touch it
    assert requeue_stalled_follow_ups(now=later()) == NOTHING
    assert export_run(export_id=job.pk).state == ExportJob.State.RUNNING

    # past it: no writer can be alive (the hard limit kills it); the sweep queues it again and it is written
    ExportJob.objects.filter(pk=job.pk).update(started_at=started - timedelta(minutes=10))
    assert [j.pk for j in exports_outstanding(queued_before=timezone.now())] == [job.pk]
    assert requeue_stalled_follow_ups(now=later())["requeued"] == 1
    job.refresh_from_db()
    assert job.state == ExportJob.State.DONE and Path(job.file_path).exists()
