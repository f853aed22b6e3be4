"""Celery tasks of the governance domain: they take ids, call services and MLflow, and are idempotent.

Every MLflow change is retried by Celery (``autoretry_for=(RegistryUnavailable,)``, exponential
backoff of 1, 2, 4... seconds up to 60, ``max_retries`` 5); when retries run out, the outcome is
recorded (a failed deployment), never silently dropped. The receivers at the end queue these tasks
after commit when the services announce a change (``governance.signals``).
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import OperationalError, transaction
from django.dispatch import receiver
from django.utils import timezone

from governance import registry, selectors, signals
from governance.errors import InvalidState, RegistryUnreachable
from governance.models import GovernanceChangeRequest, PromotionRequest
from governance.services import (
    admission,
    break_glass,
    change_requests,
    deployments,
    follow_ups,
    promotions,
    registry_mirror,
    webhooks,
)
from web.outage import require_broker

logger = logging.getLogger(__name__)
State = PromotionRequest.State


class RegistryUnavailable(Exception):
    """An MLflow registry call failed (one of ``registry.REGISTRY_ERRORS``, its cause): Celery retries the task.

    A class of our own because ``autoretry_for`` is fixed when the task is defined, and naming
    MLflow's exception there would import MLflow whenever Django starts."""


#: Retries by Celery: 1, 2, 4, 8, 16 s apart (exponential, at most 60 s), then the task's last attempt records
#: the failure itself.
_RETRIED = {"autoretry_for": (RegistryUnavailable,), "retry_backoff": True, "retry_backoff_max": 60,
            "retry_jitter": False, "max_retries": 5, "acks_late": True, "bind": True}
_TASK: dict[str, Any] = {**_RETRIED, "soft_time_limit": 60, "time_limit": 90}


def _load(request_id: int) -> PromotionRequest | None:
    return (
        PromotionRequest.objects.select_related("version__model", "environment").filter(pk=request_id).first()
    )


def _can_retry(task: Any) -> bool:
    # Eager (no broker): a retry would raise out of the after-commit hook into the
    # caller, whose change already committed; the failure is recorded instead.
    return not task.request.is_eager and bool(task.request.retries < task.max_retries)


def _retry_or_fail(task: Any, request: PromotionRequest, exc: BaseException) -> None:
    """Hand a registry error to Celery's retry (``RegistryUnavailable``), or on the last attempt record the
    deployment as failed."""
    if _can_retry(task):
        raise RegistryUnavailable(str(exc)) from exc
    logger.warning("promotion %s: MLflow change failed after %s retries", request.pk, task.max_retries)
    try:
        deployments.promotion_deploy_failed(promotion=request, error=f"MLflow registry error: {exc}")
    except InvalidState:
        pass


def _retry_or_give_up(task: Any, request: PromotionRequest, exc: BaseException) -> None:
    """Hand a registry error to Celery's retry, or on the last attempt leave the alias to the reconcile."""
    if _can_retry(task):
        raise RegistryUnavailable(str(exc)) from exc
    # Out of retries (or eager): the reconcile finds the alias out of step and repairs or flags it.
    logger.warning("promotion %s: MLflow alias change failed: %s", request.pk, exc.__class__.__name__)


def _follows_up(name: str) -> Callable[[Callable[[Any, int], str]], Callable[[Any, int], str]]:
    """A promotion's follow-up task (``governance.services.follow_ups``): each attempt stamps the request's mark
    as it starts (the sweep leaves a live task alone) and clears it when it returns. An attempt that raises
    (Celery retries it) or dies with its worker leaves the mark: the retry stamps it again, a lost one is
    re-queued by the sweep once the mark is older than ``FOLLOW_UP_GRACE_SECONDS``."""

    def wrap(run: Callable[[Any, int], str]) -> Callable[[Any, int], str]:
        @functools.wraps(run)
        def task(self: Any, request_id: int) -> str:
            follow_ups.promotion_follow_up_attempt(promotion_id=request_id, task=name)
            outcome = run(self, request_id)
            follow_ups.promotion_follow_up_done(promotion_id=request_id, task=name)
            return outcome

        return task

    return wrap


@shared_task(name=follow_ups.APPLY_PROMOTION, **_TASK)
@_follows_up(follow_ups.APPLY_PROMOTION)
def apply_promotion(self: Any, request_id: int) -> str:
    """Move the environment's alias (or the rollout's candidate alias) to an approved version."""
    request = _load(request_id)
    if request is None:
        return "missing"
    if request.state in (State.APPROVED, State.DEPLOYING):
        try:
            request = deployments.promotion_deploy_start(promotion=request)  # counts the attempt
        except InvalidState:
            return "not approved any more"
    if request.state != State.DEPLOYING:
        return f"nothing to do ({request.state})"
    if deployments.promotion_deploy_refuse_unjustified(promotion=request):
        return "refused: break-glass found unjustified"
    if settings.MLFLOW_EVIDENCE_REFRESH and not request.is_break_glass:
        # The evidence as MLflow has it now, not as last synced (no webhook tells of a model-card edit).
        try:
            registry_mirror.version_evidence_refresh(version=request.version)
        except RegistryUnreachable as exc:
            _retry_or_fail(self, request, exc)
            return "failed"
        if deployments.promotion_deploy_refuse_changed_evidence(promotion=request):
            return "refused: evidence changed since the approval"
    alias = deployments.rollout_alias(request)
    try:
        registry.set_alias(request.version.model.name, alias, request.version.version)
    except registry.REGISTRY_ERRORS as exc:
        _retry_or_fail(self, request, exc)
        return "failed"
    try:
        deployments.promotion_alias_applied(promotion=request, alias=alias)
    except InvalidState:
        return "already completed by the reconcile"
    return f"{alias} -> {request.version.ref}"


@shared_task(name=follow_ups.COMPLETE_ROLLOUT, **_TASK)
@_follows_up(follow_ups.COMPLETE_ROLLOUT)
def complete_rollout(self: Any, request_id: int) -> str:
    """A canary/shadow finished: the environment's alias moves to the version; the candidate alias goes."""
    request = _load(request_id)
    if request is None or request.state != State.DEPLOYING:
        return "nothing to do"
    model, main = request.version.model.name, request.environment.mlflow_alias
    candidate = deployments.rollout_alias(request)
    try:
        registry.set_alias(model, main, request.version.version)
        # Another rollout of this environment may hold the candidate alias by now: that one is not ours to remove.
        if registry.alias_version(model, candidate) == request.version.version:
            registry.delete_alias(model, candidate)
    except registry.REGISTRY_ERRORS as exc:
        _retry_or_fail(self, request, exc)
        return "failed"
    try:
        deployments.promotion_alias_applied(promotion=request, alias=main)
    except InvalidState:
        return "nothing to do any more"  # a concurrent run of this task recorded it
    return f"{main} -> {request.version.ref}"


@shared_task(name=follow_ups.REMOVE_CANDIDATE_ALIAS, **_TASK)
@_follows_up(follow_ups.REMOVE_CANDIDATE_ALIAS)
def remove_candidate_alias(self: Any, request_id: int) -> str:
    """A canary/shadow failed: remove its candidate alias if it still names the version (else it is not ours)."""
    request = _load(request_id)
    if request is None or request.strategy == PromotionRequest.Strategy.FULL:
        return "nothing to do"
    model, alias = request.version.model.name, deployments.rollout_alias(request)
    try:
        current = registry.alias_version(model, alias)
        if current != request.version.version:
            return "not ours"
        registry.delete_alias(model, alias)
    except registry.REGISTRY_ERRORS as exc:
        _retry_or_give_up(self, request, exc)
        return "failed"
    deployments.mlflow_alias_change_record(
        model=model, alias=alias, version=None, previous_version=current, reason=f"rollout #{request.pk} failed"
    )
    return f"removed {alias}"


@shared_task(name=follow_ups.APPLY_ROLLBACK, **_TASK)
@_follows_up(follow_ups.APPLY_ROLLBACK)
def apply_rollback(self: Any, request_id: int) -> str:
    """Point the environment's alias at whatever is live now (the restored version), or remove it."""
    request = _load(request_id)
    if request is None:
        return "missing"
    live = selectors.live_version(model_id=request.version.model_id, environment=request.environment)
    model, alias = request.version.model.name, request.environment.mlflow_alias
    try:
        previous = registry.alias_version(model, alias)
        target = live.version.version if live else None
        if previous == target:
            return "already in place"
        if target is None:
            registry.delete_alias(model, alias)
        else:
            registry.set_alias(model, alias, target)
    except registry.REGISTRY_ERRORS as exc:
        _retry_or_give_up(self, request, exc)
        return "failed"
    deployments.mlflow_alias_change_record(
        model=model, alias=alias, version=target, previous_version=previous, reason=f"rollback of #{request.pk}"
    )
    return f"{alias} -> {target}"


@shared_task(name="governance.tasks.expire_promotions", autoretry_for=(OperationalError,), max_retries=3,
             soft_time_limit=120, time_limit=180)
def expire_promotions() -> int:
    pending = PromotionRequest.objects.filter(state=State.PENDING).values_list("pk", flat=True)
    return sum(promotions.promotion_expire(promotion=PromotionRequest(pk=pk)) for pk in list(pending))


@shared_task(name="governance.tasks.flag_overdue_reviews", autoretry_for=(OperationalError,), max_retries=3,
             soft_time_limit=120, time_limit=180)
def flag_overdue_reviews() -> int:
    return break_glass.break_glass_reviews_flag_overdue()


@shared_task(name="governance.tasks.expire_change_requests", autoretry_for=(OperationalError,), max_retries=3,
             retry_backoff=True, soft_time_limit=120, time_limit=180)
def expire_change_requests() -> int:
    """Expire the change requests left pending past ``CHANGE_REQUEST_EXPIRY_DAYS`` (beat). Idempotent: one
    already expired, or decided meanwhile, is left alone by the service."""
    return sum(change_requests.change_request_expire(change_request=GovernanceChangeRequest(pk=pk))
               for pk in change_requests.change_requests_due())


# --- the MLflow registry mirror ----------------------------------------------------------------------

_SYNC_TASK: dict[str, Any] = _RETRIED


def _retry_or_raise(task: Any, exc: BaseException, what: str) -> None:
    """Hand a registry error to Celery's retry (eager runs retry too, at once), or on the last attempt log it;
    the caller re-raises it."""
    if task.request.retries < task.max_retries:
        raise RegistryUnavailable(str(exc)) from exc
    logger.warning("%s failed after %s retries: %s", what, task.max_retries, type(exc).__name__)


@shared_task(name="governance.tasks.reconcile_registry", soft_time_limit=240, time_limit=300, **_SYNC_TASK)
def reconcile_registry(self: Any) -> dict[str, Any]:
    """Mirror every registered model and version from MLflow and reconcile every alias (the beat schedule)."""

    try:
        report = registry_mirror.registry_reconcile()
    except registry.REGISTRY_ERRORS as exc:
        _retry_or_raise(self, exc, "registry reconcile")
        raise
    return report.as_dict()


@shared_task(name="governance.tasks.sync_model", soft_time_limit=60, time_limit=90, **_SYNC_TASK)
def sync_model(self: Any, name: str) -> dict[str, Any]:
    """Mirror one registered model and its versions, and reconcile its aliases (queued by webhooks)."""

    try:
        report = registry_mirror.registered_model_sync(name)
    except registry.REGISTRY_ERRORS as exc:
        _retry_or_raise(self, exc, f"sync of model {name}")
        raise
    return report.as_dict()


# --- MLflow webhook deliveries: the outbox of their follow-ups ----------------------------------------------


@shared_task(name="governance.tasks.follow_up_webhook_delivery", acks_late=True, soft_time_limit=60,
             time_limit=90)
def follow_up_webhook_delivery(delivery_id: int) -> str:
    """Sync the model an accepted delivery names and mark the delivery done (queued after it commits).

    Not retried by Celery: a failure leaves the delivery pending with its backoff in the outbox, and the
    drain retries it. Idempotent: a delivery done, or claimed by a drain, is left alone."""
    return webhooks.webhook_delivery_follow_up(delivery_id=delivery_id)


@shared_task(name="governance.tasks.drain_webhook_deliveries", soft_time_limit=240, time_limit=300)
def drain_webhook_deliveries() -> dict[str, int]:
    """Follow up every pending delivery that is due (beat, every ``MLFLOW_WEBHOOK_DRAIN_INTERVAL`` seconds):
    those whose task was never queued (broker down), lost or failed. Idempotent (``webhook_delivery_claim``)."""
    return webhooks.webhook_deliveries_drain()


# --- MLflow webhook refusals ----------------------------------------------------------------------------


@shared_task(name="governance.tasks.summarise_webhook_refusals", autoretry_for=(OperationalError,),
             max_retries=3, retry_backoff=True, soft_time_limit=60, time_limit=90)
def summarise_webhook_refusals() -> int:
    """Summarise closed intervals of refused webhook deliveries into the ledger (beat, and the first
    refusal of each interval). Idempotent: what was summarised is never summarised again."""
    return webhooks.webhook_refusals_summarise(now=timezone.now())


# --- what the services announce (governance.signals): queued after their transaction commits -------------
# A follow-up that nothing else would redo (deploy, complete, remove the candidate, roll back) first checks
# that the broker accepts connections, inside the service's transaction: when it does not, the change
# rolls back and the caller gets a 503 (web.outage) instead of a committed change that never moves on.
# It is also marked on the request in that transaction (governance.services.follow_ups): a broker that
# fails after the check loses the task, not the follow-up, which the beat's sweep (web.follow_ups) re-queues.


def _follow_up_after_commit(task: Any, promotion_id: int, promotion: PromotionRequest | None = None) -> None:
    """``promotion``: the request, locked, that its sender saves afterwards with the follow-up's fields (the
    mark is then set on it in memory, see ``follow_ups.promotion_follow_up_mark``)."""
    require_broker()
    if promotion is not None:
        follow_ups.promotion_follow_up_mark(promotion=promotion, task=task.name)
    else:
        follow_ups.promotion_follow_up_request(promotion_id=promotion_id, task=task.name)
    transaction.on_commit(lambda: task.delay(promotion_id))


@receiver(signals.promotion_approved)
def _deploy_when_approved(*, promotion_id: int, promotion: PromotionRequest | None = None, **_: Any) -> None:
    _follow_up_after_commit(apply_promotion, promotion_id, promotion)


@receiver(signals.rollout_completed)
def _complete_rollout_when_reported(*, promotion_id: int, **_: Any) -> None:
    _follow_up_after_commit(complete_rollout, promotion_id)


@receiver(signals.rollout_failed)
def _remove_candidate_alias_when_failed(*, promotion_id: int, **_: Any) -> None:
    _follow_up_after_commit(remove_candidate_alias, promotion_id)


@receiver(signals.promotion_rolled_back)
def _apply_rollback_when_rolled_back(*, promotion_id: int, **_: Any) -> None:
    _follow_up_after_commit(apply_rollback, promotion_id)


#: The follow-up tasks by name, for the sweep (a name read from the database never picks any other task).
FOLLOW_UP_TASKS: dict[str, Any] = {
    t.name: t for t in (apply_promotion, complete_rollout, remove_candidate_alias, apply_rollback)
}


@receiver(signals.webhook_delivery_accepted)
def _follow_up_when_accepted(*, delivery_id: int, **_: Any) -> None:
    transaction.on_commit(lambda: queue_webhook_follow_up(delivery_id))


def queue_webhook_follow_up(delivery_id: int) -> bool:
    """Queue the follow-up of a stored delivery (after its commit); False when it could not be queued.

    The delivery is already durable (``pending`` in the outbox), so a broker that refuses the task loses
    nothing: it is logged and left to ``drain_webhook_deliveries``. Without a broker (eager Celery, the
    embedded setup) the follow-up runs here, in-process, as every task does there.

    With a broker configured but down, the web process does **not** run the follow-up itself, on purpose:
    the follow-up is a sync of the whole model, MLflow calls with the MLflow client's own retries (minutes
    when MLflow is slow) and artifact digests (downloads of up to ``MLFLOW_DIGEST_MAX_BYTES``). Run in the
    request, a burst of deliveries during a broker outage would pin every web worker, so the outage of the
    broker would take the API down with it, and MLflow, whose delivery times out after 30 s, would retry
    into a 409. The cost is that an out-of-band alias change made during a broker outage is put back when
    the broker returns (the first drain after it, within ``MLFLOW_WEBHOOK_DRAIN_INTERVAL``), not at once;
    the beat could not have run the periodic reconcile meanwhile either.
    """
    try:
        follow_up_webhook_delivery.delay(delivery_id)
    except Exception:  # the broker's errors (kombu, redis, amqp) have no common base; an eager run's too
        logger.warning("webhook delivery %s: follow-up not queued; it stays pending for the drain", delivery_id,
                       exc_info=True)
        return False
    return True


@receiver(signals.webhook_refusal_interval_opened)
def _summarise_refusals_when_an_interval_opens(**_: Any) -> None:
    transaction.on_commit(summarise_webhook_refusals.delay, robust=True)


# --- Kubernetes admission decisions ---------------------------------------------------------------------


@shared_task(name="governance.tasks.summarise_admission_decisions", autoretry_for=(OperationalError,),
             max_retries=3, retry_backoff=True, soft_time_limit=240, time_limit=300)
def summarise_admission_decisions() -> int:
    """Close the admission windows whose interval is over (``admission.summarised`` when one counted repeats).
    Idempotent: a closed window is never closed again."""
    return admission.admission_decisions_summarise()
