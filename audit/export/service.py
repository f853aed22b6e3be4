"""The export service: who may export and download, ``export_create`` (records ``ledger.exported`` with
the job, in one transaction) and ``export_run`` (writes the file of one job)."""
from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.errors import StepUpRequired
from audit.ledger import Actor, Subject, integrate, record
from audit.lock_objects import ledger_head_lock
from audit.models import Checkpoint, Entry, ExportJob, LedgerHead
from audit.policy import Action, may, step_up_refusal
from audit.services.checkpoints import checkpoint_create
from audit.services.witnessing import checkpoint_witness, configured_witnesses
from audit.signals import export_requested

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from audit.export.bundle import write_bundle
from audit.export.errors import ExportError, ExportNotPermitted
from audit.export.report import write_report, write_report_pdf
from audit.export.scope import (
    EXTENSIONS,
    FORMATS,
    MODEL_FORMATS,
    ExportScope,
    resolve_subjects,
    subject_head,
)
from audit.export.selection import Progress, plan
from audit.export.spreadsheet import write_csv


def may_export(user: object) -> bool:
    """InfoSec and auditors may export the ledger (by role only: ``is_superuser`` and ``is_staff`` grant
    nothing here; the rule is the access domain's, ``audit.policy``)."""
    return may(user, Action.EXPORT)


def may_download(user: AbstractBaseUser | AnonymousUser, job: ExportJob) -> bool:
    """InfoSec may download any export; an auditor only their own."""
    if may(user, Action.SEE_EVERY_EXPORT):
        return True
    return may(user, Action.EXPORT) and job.created_by_id is not None and job.created_by_id == user.pk


def exports_dir() -> Path:
    return Path(settings.VAR_DIR) / "exports"


def path_name(job: ExportJob) -> str:
    """The file name of an export as the download (and the task) names it."""
    return f"export-{job.pk}.{EXTENSIONS[job.format]}"


@transaction.atomic
def export_create(
    *, actor: User | None, scope: ExportScope, fmt: str = "bundle", enqueue: bool = True
) -> ExportJob:
    """Record an export of the ledger (``ledger.exported``) and create its job.

    ``actor`` is the person accountable for the export (InfoSec or auditor); None
    only for the operator's own command line (recorded as ``system:export_audit``).
    With ``enqueue`` the file is written by ``audit.tasks.run_export`` after commit. A person's export
    is refused (``audit.errors.StepUpRequired``, nothing written) without a recent second factor when
    ``MFA_REQUIRED`` (``audit.policy.step_up_refusal``).
    """
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}", code="invalid_format")
    if fmt in MODEL_FORMATS and not scope.model:
        raise ExportError(f"the {fmt} format is about one model, and the scope names none", code="report_needs_model")
    if actor is not None and not may_export(actor):
        raise ExportNotPermitted("only InfoSec and auditors may export the ledger")
    if actor is not None:
        # A person's export needs a recent second factor when the access domain says so (docs/identity.md):
        # a command acting for a person (--actor) carries no sign-in and is refused then.
        refusal = step_up_refusal(actor, "exporting the ledger")
        if refusal is not None:
            raise StepUpRequired(refusal)
    # Under the sequencer's lock, so the size, the subjects and their heads describe one state of the ledger.
    # (A refusal below rolls back: nothing is recorded.)
    ledger_head_lock()
    integrate()
    size = LedgerHead.objects.values_list("tree_size", flat=True).get(pk=1)
    subjects = resolve_subjects(scope, size)
    if scope.since_checkpoint is not None:
        if fmt != "bundle":
            raise ExportError("--since-checkpoint is for bundles (it adds a consistency proof)", code="invalid_scope")
        if scope.since_checkpoint > size or not Checkpoint.objects.filter(tree_size=scope.since_checkpoint).exists():
            raise ExportError(f"the ledger signed no checkpoint of tree size {scope.since_checkpoint}",
                              code="unknown_checkpoint")
    now = timezone.now()
    # queued_at: the worker's to write (the sweep re-queues it if its task is lost); None: the caller writes it.
    job = ExportJob.objects.create(created_by=actor, format=fmt, created_at=now, queued_at=now if enqueue else None)
    payload_scope: dict[str, Any] = {
        "since": scope.since,
        "until": scope.until,
        "event_types": list(scope.event_types),
        "model": scope.model,
        "dataset": scope.dataset,
        "subjects": [[t, i, subject_head(t, i, size)] for t, i in subjects],
        "ledger_size": size,
    }
    if scope.since_checkpoint is not None:  # only then: other scopes are recorded exactly as before
        payload_scope["since_checkpoint"] = scope.since_checkpoint
    recorded = record(
        event_type="ledger.exported",
        actor=Actor.user(actor) if actor is not None else Actor.system("export_audit"),
        subject=Subject("export", str(job.pk)),
        payload={"export_id": job.pk, "format": fmt, "scope": payload_scope},
        timestamp=now,
    )
    job.scope = payload_scope
    job.ledger_pending_id = recorded.pending_id
    job.save(update_fields=["scope", "ledger_pending_id"])
    if enqueue:  # audit/tasks.py queues the writing once the transaction commits
        export_requested.send(sender=ExportJob, export_id=job.pk)
    return job


def _export_entry(job: ExportJob) -> Entry:
    if job.ledger_pending_id is None:
        raise ExportError(f"export #{job.pk} was not recorded in the ledger", code="not_recorded")
    entry = Entry.objects.filter(pending_id=job.ledger_pending_id).first()
    if entry is None:
        integrate()
        entry = Entry.objects.filter(pending_id=job.ledger_pending_id).first()
    if entry is None:
        raise ExportError(f"export #{job.pk}: its ledger entry is not in the ledger (was it committed?)",
                          code="not_recorded")
    return entry




def anchor(seq: int) -> Checkpoint:
    """The latest checkpoint, signing one now when it does not cover entry ``seq`` yet."""
    checkpoint = Checkpoint.objects.order_by("-id").first()
    if checkpoint is None or checkpoint.tree_size <= seq:
        checkpoint = checkpoint_create()
    assert checkpoint is not None  # only_if_grown is off: one is always made
    return checkpoint


#: The hard time limit of ``audit.tasks.run_export``: an export ``running`` for longer than this has no live
#: writer (the limit killed it, or its worker died), so it may be claimed again.
RUN_TIME_LIMIT = timedelta(seconds=3 * 3600 + 300)


def export_run_claim(*, job: ExportJob, now: datetime) -> bool:
    """Claim ``job`` for writing: ``running`` from now, unless another writer holds it (``running`` and started
    less than ``RUN_TIME_LIMIT`` ago). One conditional UPDATE: of two writers at once exactly one gets it (on
    PostgreSQL the second waits for the first's row lock, then finds it running)."""
    free = ~Q(state=ExportJob.State.RUNNING) | Q(started_at__isnull=True) | Q(started_at__lte=now - RUN_TIME_LIMIT)
    return bool(ExportJob.objects.filter(free, pk=job.pk).update(
        state=ExportJob.State.RUNNING, started_at=now, error="", entries_done=0
    ))


def export_run(*, export_id: int, out: Path | None = None, progress: Progress | None = None) -> ExportJob:
    """Write export ``export_id``'s file; idempotent (a finished export is left as it is) and safe to run twice
    at once (a re-queued task next to the lost one's twin, a redelivery): the second finds the export
    ``running`` (``export_run_claim``) and returns it as it is, writing nothing.

    ``out`` writes to that path instead of ``VAR_DIR/exports`` (the command line).
    The file is written next to its destination and renamed into place, so a crash
    never leaves half a file under the final name. Raises ExportError when the
    export cannot be made (the job is marked failed with the reason).
    """
    job = ExportJob.objects.filter(pk=export_id).first()
    if job is None:
        raise ExportError(f"no export #{export_id}", code="not_found")
    if out is None and job.state == ExportJob.State.DONE and job.file_path and Path(job.file_path).exists():
        return job
    path = Path(out) if out is not None else exports_dir() / path_name(job)
    if not export_run_claim(job=job, now=timezone.now()):
        job.refresh_from_db()
        return job
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = _export_entry(job)
        checkpoint = anchor(entry.seq)
        if configured_witnesses():
            # A recipient checks checkpoint.txt's cosignatures offline (--witness-key/--quorum): ask the
            # witnesses now, each bounded by LEDGER_WITNESS_TIMEOUT, rather than ship a head none has seen.
            # A witness that does not answer is recorded by checkpoint_witness; the bundle then carries fewer.
            checkpoint_witness(checkpoint_id=checkpoint.pk)
        p = plan(job.scope)
        ExportJob.objects.filter(pk=job.pk).update(
            entries_total=p.total, ledger_seq=entry.seq, checkpoint_size=checkpoint.tree_size
        )

        def report(done: int) -> None:
            ExportJob.objects.filter(pk=job.pk).update(entries_done=done)
            if progress is not None:
                progress(done, p.total)

        writer = {"bundle": write_bundle, "csv": write_csv, "report": write_report,
                  "pdf": write_report_pdf}[job.format]
        count = writer(job=job, plan=p, entry=entry, checkpoint=checkpoint, path=tmp, progress=report)
        digest, size = _file_digest(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        message = str(exc) if isinstance(exc, ExportError) else f"{exc.__class__.__name__}: {exc}"
        ExportJob.objects.filter(pk=job.pk).update(
            state=ExportJob.State.FAILED, error=message[:2000], finished_at=timezone.now()
        )
        raise
    ExportJob.objects.filter(pk=job.pk).update(
        state=ExportJob.State.DONE, file_path=str(path), file_size=size, file_sha256=digest,
        entries_done=count, finished_at=timezone.now(),
    )
    if progress is not None:
        progress(count, p.total)
    job.refresh_from_db()
    return job


def exports_outstanding(*, queued_before: datetime, limit: int = 500) -> list[ExportJob]:
    """The worker's exports not written although their task was queued before ``queued_before``: still
    ``pending`` (the task was lost: a broker failing after the commit), or ``running`` past ``RUN_TIME_LIMIT``
    (its writer died). A read, oldest first: nothing is claimed."""
    stale_run = Q(state=ExportJob.State.RUNNING, started_at__lte=timezone.now() - RUN_TIME_LIMIT)
    return list(
        ExportJob.objects.filter(Q(state=ExportJob.State.PENDING) | stale_run, queued_at__lte=queued_before)
        .order_by("queued_at", "pk")[:limit]
    )


def export_requeue_claim(*, job: ExportJob, now: datetime) -> bool:
    """Claim a re-queue of ``job``'s task: ``queued_at`` becomes ``now`` if it is still the one read and the
    export still waits (else it started, or another sweep claimed it: False). Bookkeeping, not a ledger entry
    (``ledger.exported`` was recorded when it was asked for; nothing about the export changes)."""
    return bool(ExportJob.objects.filter(
        pk=job.pk, queued_at=job.queued_at, state=job.state, started_at=job.started_at,
    ).update(queued_at=now))


def _file_digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def summary(job: ExportJob) -> str:
    parts = [f"export #{job.pk} ({job.format}) {job.state}: {job.entries_done:,} entries"]
    if job.file_path:
        parts.append(f"written to {job.file_path} ({job.file_size or 0:,} bytes, sha256 {job.file_sha256})")
    if job.checkpoint_size is not None:
        parts.append(f"anchored to the checkpoint of tree size {job.checkpoint_size:,}")
    return "; ".join(parts)
