"""Celery tasks of the ledger. All are idempotent: running one twice does no harm."""
from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import OperationalError, transaction
from django.dispatch import receiver

from audit import ledger, signals
from audit.export.errors import ExportError
from audit.export.service import RUN_TIME_LIMIT, export_run
from audit.services import checkpoints
from audit.services.integrity import verification_run
from audit.services.retention import retention_run
from audit.services.witnessing import checkpoint_witness
from audit.services.witnessing import witness_quorum_check as quorum_check
from web.outage import require_broker


@shared_task(
    name="audit.tasks.integrate_pending",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
    soft_time_limit=30,
    time_limit=45,
)
def integrate_pending() -> int:
    """Sequence whatever committed events are waiting in the intake queue."""
    return ledger.integrate()


@shared_task(
    name="audit.tasks.make_checkpoint",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
    soft_time_limit=30,
    time_limit=45,
)
def make_checkpoint() -> int | None:
    """Sign a checkpoint if the tree grew since the last one. Returns its tree size."""
    checkpoint = checkpoints.checkpoint_create(only_if_grown=True)
    return None if checkpoint is None else checkpoint.tree_size


@shared_task(
    name="audit.tasks.run_export",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
    soft_time_limit=3 * 3600,
    time_limit=int(RUN_TIME_LIMIT.total_seconds()),
)
def run_export(export_id: int) -> str | None:
    """Write an export's file (``audit.export.export_run``); a finished export is left as it is, and one
    another run is writing is left to it (so a re-queued task next to a lost one's twin writes once).

    An export that cannot be made (a refused scope, a ledger that is not intact) is
    marked failed with the reason and not retried; database hiccups are retried.
    A task lost after the export committed (the broker failed between the receiver's check and the
    publish) is queued again by the beat's sweep (``web.follow_ups``) once ``queued_at`` is older than
    ``FOLLOW_UP_GRACE_SECONDS``.
    """
    try:
        job = export_run(export_id=export_id)
    except ExportError:
        return None
    return job.file_path


# --- witnesses (audit/services/witnessing.py, docs/witness.md) -------------------------------------


class WitnessesUnavailable(Exception):
    """Some witnesses did not answer (or answered 5xx): worth asking them again."""


@shared_task(
    name="audit.tasks.witness_checkpoint",
    bind=True,
    autoretry_for=(OperationalError, WitnessesUnavailable),
    # Retried after 5, 10, 20, 40, 80 s (5 * 2**n, at most 300 s, no jitter).
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=False,
    max_retries=5,
    soft_time_limit=120,
    time_limit=150,
)
def witness_checkpoint(self: Any, checkpoint_id: int) -> list[str]:
    """Submit the latest checkpoint (at least ``checkpoint_id``'s) to the witnesses; returns who cosigned.

    Witnesses that did not answer (or answered 5xx) are retried with backoff by a worker;
    refusals are not retried (the next checkpoint, or the periodic check, asks again). The last
    attempt, and an eager run (nothing would retry it), return who cosigned however it went.
    """
    outcome = checkpoint_witness(checkpoint_id=checkpoint_id)
    if outcome.transient and not self.request.is_eager and self.request.retries < self.max_retries:
        raise WitnessesUnavailable(", ".join(outcome.transient))
    return outcome.cosigned


@shared_task(
    name="audit.tasks.witness_quorum_check",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
    soft_time_limit=120,
    time_limit=150,
)
def witness_quorum_check() -> bool:
    """Resubmit the latest checkpoint to witnesses behind it and apply the quorum deadline; True if met."""
    return quorum_check().ok


# --- operations: scheduled verification and retention (docs/deploy.md, docs/retention.md) ---------------------


@shared_task(
    name="audit.tasks.verify_incremental",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
    soft_time_limit=600,
    time_limit=660,
)
def verify_incremental() -> int:
    """Verify what was added since the last good run (a full run when there is none). Returns the run id."""
    return verification_run(mode="incremental").pk


@shared_task(
    name="audit.tasks.verify_full",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
    soft_time_limit=6 * 3600,
    time_limit=6 * 3600 + 300,
)
def verify_full() -> int:
    """Verify the whole ledger from its first entry. Returns the run id."""
    return verification_run(mode="full").pk


@shared_task(
    name="audit.tasks.run_retention",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
    soft_time_limit=3600,
    time_limit=3600 + 300,
)
def run_retention(limit: int = 10_000) -> int:
    """Crypto-shred personal data past retention (not on legal hold). Idempotent; returns subjects erased.

    Stops on its own before the soft time limit; the next day's run (or a re-run) continues.
    """
    return len(retention_run(limit=limit, time_budget=3000).erased)


# --- what the ledger core asks for (audit/signals.py): queued once the sender's transaction commits ---------


@receiver(signals.witnessing_requested, dispatch_uid="audit.tasks.witnessing_requested")
def _witnessing_requested(sender: object, *, checkpoint_id: int, **kwargs: object) -> None:
    # robust: with eager Celery the submission runs right here, after the commit; a failure must not
    # reach the caller whose checkpoint committed (the periodic check resubmits).
    transaction.on_commit(lambda: witness_checkpoint.delay(checkpoint_id), robust=True)


@receiver(signals.export_requested, dispatch_uid="audit.tasks.export_requested")
def _export_requested(sender: object, *, export_id: int, **kwargs: object) -> None:
    # Else the export would wait for the sweep: refuse it now (503), nothing written. A broker failing after
    # this check loses the task, not the export: it is pending with its queued_at, and the sweep re-queues it.
    require_broker()
    transaction.on_commit(lambda: run_export.delay(export_id))
