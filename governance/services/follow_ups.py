"""The outbox of a promotion's follow-up tasks: asked for in the change's transaction, finished by the task.

A change that moves an MLflow alias afterwards (an approval: ``apply_promotion``; a canary/shadow reported
completed: ``complete_rollout``, or failed: ``remove_candidate_alias``; a rollback: ``apply_rollback``)
queues its task with ``transaction.on_commit``. The receiver checks the broker first (``web.outage``), but a
broker that fails between that check and the publish loses the task after the change committed. So the
receiver also marks the request (``follow_up``: the task's name, ``follow_up_since`` and ``follow_up_at``:
now), in the same transaction as the change; the task stamps ``follow_up_at`` when each attempt starts and
clears the mark when it returns (done, nothing to do, or its failure recorded). A mark whose ``follow_up_at``
is older than the grace is a task that was lost (or died with its worker): ``web.follow_ups`` re-queues it.

Bookkeeping of the outbox, not ledger entries: what the task changes records its own. Each update is one
conditional UPDATE (a compare-and-set on the mark), so the task, the sweep and a twin of the task never
undo each other's stamp: a task that finished clears only its own mark, a sweep re-queues only a mark it
read, unchanged since.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from governance.models import PromotionRequest

State = PromotionRequest.State

APPLY_PROMOTION = "governance.tasks.apply_promotion"
COMPLETE_ROLLOUT = "governance.tasks.complete_rollout"
REMOVE_CANDIDATE_ALIAS = "governance.tasks.remove_candidate_alias"
APPLY_ROLLBACK = "governance.tasks.apply_rollback"

#: The states in which each follow-up still has something to do. A mark left in any other state (the
#: registry reconcile completed an interrupted deployment, a newer follow-up of the same request...) is
#: moot: the sweep clears it instead of re-queueing.
LIVE_STATES: dict[str, tuple[str, ...]] = {
    APPLY_PROMOTION: (State.APPROVED, State.DEPLOYING),
    COMPLETE_ROLLOUT: (State.DEPLOYING,),
    REMOVE_CANDIDATE_ALIAS: (State.FAILED,),
    APPLY_ROLLBACK: (State.ROLLED_BACK,),
}


@dataclass(frozen=True)
class Outstanding:
    """A follow-up not finished: the request, the task's name, when it was asked for and last stamped."""

    pk: int
    task: str
    since: datetime
    at: datetime
    live: bool  # the request's state still wants it


#: The fields of a request's follow-up mark (``promotion_follow_up_mark`` sets them in memory).
FOLLOW_UP_FIELDS = ("follow_up", "follow_up_since", "follow_up_at")


def promotion_follow_up_mark(*, promotion: PromotionRequest, task: str, now: datetime | None = None) -> None:
    """``promotion_follow_up_request`` on a request its caller holds locked and saves afterwards, in the same
    transaction, with ``FOLLOW_UP_FIELDS``: the mark is set on ``promotion`` in memory, and rides on the
    caller's UPDATE (one statement instead of two). Same mark, same commit-or-nothing."""
    if task not in LIVE_STATES:
        raise ValueError(f"not a follow-up task: {task}")
    now = now or timezone.now()
    promotion.follow_up, promotion.follow_up_since, promotion.follow_up_at = task, now, now


def promotion_follow_up_request(*, promotion_id: int, task: str, now: datetime | None = None) -> None:
    """Mark ``task`` as the request's outstanding follow-up; called in the transaction of the change that
    asks for it (the receivers of ``governance.signals``), so the mark commits with it or not at all. A newer
    follow-up replaces an older one: a request's follow-ups come one after another (deploy, then complete or
    remove the candidate, then roll back), and the newer one is what is owed now."""
    if task not in LIVE_STATES:
        raise ValueError(f"not a follow-up task: {task}")
    now = now or timezone.now()
    PromotionRequest.objects.filter(pk=promotion_id).update(follow_up=task, follow_up_since=now, follow_up_at=now)


def promotion_follow_up_attempt(*, promotion_id: int, task: str, now: datetime | None = None) -> bool:
    """An attempt of ``task`` starts: its mark's ``follow_up_at`` is now (a lease: the sweep leaves a task
    that is alive alone). False when the request has no such mark (finished, or replaced)."""
    return bool(PromotionRequest.objects.filter(pk=promotion_id, follow_up=task).update(
        follow_up_at=now or timezone.now()))


def promotion_follow_up_done(*, promotion_id: int, task: str) -> bool:
    """``task`` returned: its mark is cleared (only its own: a newer follow-up's stays). False when there was none."""
    return bool(PromotionRequest.objects.filter(pk=promotion_id, follow_up=task).update(
        follow_up="", follow_up_since=None, follow_up_at=None))


def promotion_follow_ups_outstanding(*, stamped_before: datetime, limit: int = 500) -> list[Outstanding]:
    """Marks last stamped before ``stamped_before``, oldest first (a read: nothing is claimed)."""
    rows = (
        PromotionRequest.objects.exclude(follow_up="").filter(follow_up_at__lte=stamped_before)
        .order_by("follow_up_at", "pk")
        .values_list("pk", "follow_up", "follow_up_since", "follow_up_at", "state")[:limit]
    )
    return [
        Outstanding(pk=pk, task=task, since=since or at, at=at, live=state in LIVE_STATES.get(task, ()))
        for pk, task, since, at, state in rows
        if at is not None  # the filter on follow_up_at excludes NULL; this tells the type checker
    ]


def promotion_follow_up_requeue_claim(*, outstanding: Outstanding, now: datetime) -> bool:
    """Claim a re-queue of ``outstanding``: its stamp becomes ``now``, if it is still the one read (else the
    task finished, stamped an attempt, or another sweep claimed it: False, leave it)."""
    return bool(PromotionRequest.objects.filter(
        pk=outstanding.pk, follow_up=outstanding.task, follow_up_at=outstanding.at,
    ).update(follow_up_at=now))


def promotion_follow_up_drop_moot(*, outstanding: Outstanding) -> bool:
    """Clear a mark whose request's state no longer wants the follow-up (``LIVE_STATES``), if unchanged since read."""
    return bool(PromotionRequest.objects.filter(
        pk=outstanding.pk, follow_up=outstanding.task, follow_up_at=outstanding.at,
    ).update(follow_up="", follow_up_since=None, follow_up_at=None))
