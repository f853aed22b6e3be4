"""Follow-up tasks lost between a commit and their publish: found by the beat's sweep and queued again.

A change whose follow-up runs in a worker (a promotion approved: deploy it; a canary/shadow reported
completed or failed: move or remove the alias; a rollback: move the alias back; an export asked for: write
it) queues the task with ``transaction.on_commit``. ``web.outage.require_broker`` refuses the change (503,
nothing written) when the broker is down before the commit; a broker that fails *between* that check and
the publish still loses the task, after the change committed. Each such change therefore leaves a durable
mark in its own transaction, the outbox the sweep reads:

* promotions: ``PromotionRequest.follow_up`` (the task's name), ``follow_up_since`` and ``follow_up_at``
  (``governance.services.follow_ups``); the task stamps ``follow_up_at`` when an attempt starts and clears
  the mark when it returns;
* exports: ``ExportJob.queued_at`` (set when the worker is to write it); the export leaves ``pending`` when
  its task starts (``audit.export.service.export_run_claim``).

**Stalled or slow?** Not told apart by looking at the queue (a broker cannot say whether a task id is in
it), but by time and by the tasks' own idempotency. A follow-up is stalled when nothing has happened to its
mark for ``FOLLOW_UP_GRACE_SECONDS`` (120 by default): no task started an attempt since it was queued. A
live task cannot go that long without stamping: its hard time limit is 90 s and its retry countdown at most
16 s. What the grace cannot tell from a lost task is a task still waiting in a queue longer than the grace
(every worker busy, or stopped): it is queued a second time, and whichever runs second finds nothing to do,
because every follow-up is idempotent and safe to run twice at once (``apply_promotion`` and
``complete_rollout`` move the request under its row lock and record once; ``remove_candidate_alias`` and
``apply_rollback`` read the alias before changing it and change nothing when it is in place;
``export_run`` claims the export with a conditional UPDATE and a second writer leaves it alone). So a
wrong guess costs one idle task and one warning, never a second deployment, a second ledger entry or a
second file. To keep a stopped worker's queue from filling, the gap between re-queues of one follow-up
doubles (the grace, then as long as it has been outstanding, at most ``MAX_GAP``).

Each re-queue is logged once at WARNING and counted (``governance_follow_ups_requeued_total{task}``,
defined here rather than in ``web.metrics``; served by the worker's metrics endpoint, where the sweep
runs). It is no ledger entry: nothing changed state; the task records what it changes. A mark whose
request's state no longer wants the follow-up (the registry reconcile completed an interrupted
deployment, for instance) is cleared without a re-queue.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from prometheus_client import Counter

from audit.export.service import export_requeue_claim, exports_outstanding
from audit.tasks import run_export
from governance.services import follow_ups
from governance.tasks import FOLLOW_UP_TASKS

logger = logging.getLogger(__name__)

#: The longest wait between two re-queues of one follow-up (the doubling stops there).
MAX_GAP = timedelta(hours=1)

REQUEUED = Counter(
    "governance_follow_ups_requeued_total",
    "Follow-up tasks queued again by the sweep because their task was lost (broker failed after the commit), "
    "by task name.",
    ["task"],
)

# Every task the sweep may re-queue is a series from the start (at 0), so that increase() sees the first one.
for _task in (*FOLLOW_UP_TASKS.values(), run_export):
    REQUEUED.labels(task=_task.name)


def requeue_due(*, since: datetime, last: datetime, now: datetime, grace: timedelta) -> bool:
    """A follow-up asked for at ``since`` and last queued (or started) at ``last`` is due for a re-queue at
    ``now``: ``last`` is older than the grace, and than the time it had been outstanding when last queued
    (the doubling), at most ``MAX_GAP``."""
    gap = min(max(grace, last - since), MAX_GAP)
    return now - last >= gap


def _requeue(task: Any, object_id: int, what: str, since: datetime, now: datetime) -> bool:
    try:
        task.delay(object_id)
    except Exception as exc:  # the broker's errors (kombu, redis, amqp) have no common base
        # The claim moved the stamp: the next try comes after the (doubled) gap. Logged once per try.
        logger.warning("%s: its follow-up %s could not be queued again (%s); tried again later", what, task.name,
                       type(exc).__name__)
        return False
    REQUEUED.labels(task=task.name).inc()
    logger.warning("%s: follow-up %s outstanding for %ds with no task running: queued again", what, task.name,
                   int((now - since).total_seconds()), extra={"task": task.name})
    return True


def requeue_stalled_follow_ups(*, now: datetime | None = None) -> dict[str, int]:
    """Queue again every follow-up stalled past ``FOLLOW_UP_GRACE_SECONDS`` (the beat, every
    ``FOLLOW_UP_SWEEP_INTERVAL`` seconds). Returns counts: ``requeued``, ``not_queued`` (the broker refused
    the re-queue; tried again later), ``dropped`` (moot marks cleared). Idempotent: a follow-up re-queued
    is stamped (a compare-and-set, so two sweeps at once re-queue it once) and not due again before its
    gap; a second run right after finds nothing to do."""
    now = now or timezone.now()
    grace = timedelta(seconds=int(settings.FOLLOW_UP_GRACE_SECONDS))
    counts = {"requeued": 0, "not_queued": 0, "dropped": 0}
    for item in follow_ups.promotion_follow_ups_outstanding(stamped_before=now - grace):
        if not item.live:
            counts["dropped"] += follow_ups.promotion_follow_up_drop_moot(outstanding=item)
            continue
        if not requeue_due(since=item.since, last=item.at, now=now, grace=grace):
            continue
        if not follow_ups.promotion_follow_up_requeue_claim(outstanding=item, now=now):
            continue
        ok = _requeue(FOLLOW_UP_TASKS[item.task], item.pk, f"promotion #{item.pk}", item.since, now)
        counts["requeued" if ok else "not_queued"] += 1
    for job in exports_outstanding(queued_before=now - grace):
        assert job.queued_at is not None  # exports_outstanding filters on it
        if not requeue_due(since=job.created_at, last=job.queued_at, now=now, grace=grace):
            continue
        if not export_requeue_claim(job=job, now=now):
            continue
        ok = _requeue(run_export, job.pk, f"export #{job.pk}", job.created_at, now)
        counts["requeued" if ok else "not_queued"] += 1
    return counts
