"""Deploying an approved promotion and taking it back: deploy start, alias applied, rollout progress,
failure, rollback. The MLflow alias itself moves in Celery tasks after commit (``governance.signals``);
these services record each step.
"""
from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from access import roles
from access.roles import role_names
from audit.ledger import Actor, Subject, record
from governance import lock_objects, selectors, signals
from governance.errors import GovernanceError, InvalidState, NotPermitted
from governance.models import (
    BreakGlassReview,
    Environment,
    LiveDeployment,
    PromotionRequest,
    RegisteredModel,
)

# The module, not its names: evidence → lineage → promotions → registry_mirror → here is a cycle.
from governance.services import evidence, receipts
from governance.services.common import State, Strategy, base_payload, lock_promotion, promotion_subject, require_text

# Besides the model's owner, who may roll a model back.
ROLLBACK_ROLES = frozenset({roles.MODEL_OWNER, roles.INFOSEC, roles.BREAK_GLASS})


def may_roll_back(user: User, model: RegisteredModel) -> bool:
    """Who may roll ``model`` back: its owner, a model-owner, InfoSec or break-glass (as above, the
    console shows its form by it and ``promotion_rollback`` refuses by it)."""
    return model.owner_id == user.pk or bool(role_names(user) & ROLLBACK_ROLES)


def rollout_alias(request: PromotionRequest) -> str:
    """The MLflow alias a promotion moves: the environment's alias, or a candidate alias while rolling out."""
    base = request.environment.mlflow_alias
    if request.strategy == Strategy.FULL:
        return base
    return f"{base}-{request.strategy}"


@transaction.atomic
def promotion_deploy_start(*, promotion: PromotionRequest) -> PromotionRequest:
    """approved → deploying (idempotent for a request already deploying)."""
    promotion = lock_promotion(promotion)
    if promotion.state == State.DEPLOYING:
        promotion.deploy_attempts += 1
        promotion.save(update_fields=["deploy_attempts"])
        return promotion
    if promotion.state != State.APPROVED:
        raise InvalidState(f"promotion #{promotion.pk} is {promotion.state}; only approved requests can be deployed")
    live = selectors.live_version(model_id=promotion.version.model_id, environment=promotion.environment)
    promotion.previous_version = live.version if live else None
    promotion.state = State.DEPLOYING
    promotion.deploy_attempts += 1
    promotion.save(update_fields=["previous_version", "state", "deploy_attempts"])
    record(
        event_type="promotion.deploy_started",
        actor=Actor.system("deployer"),
        subject=promotion_subject(promotion),
        payload={**base_payload(promotion), "strategy": promotion.strategy, "alias": rollout_alias(promotion),
                 "previous_version": live.version.version if live else None},
    )
    return promotion


def _make_live(request: PromotionRequest, now: datetime) -> None:
    LiveDeployment.objects.update_or_create(
        model=request.version.model,
        environment=request.environment,
        defaults={"version": request.version, "promotion": request, "since": now},
    )


@transaction.atomic
def promotion_alias_applied(*, promotion: PromotionRequest, alias: str) -> PromotionRequest:
    """MLflow now points ``alias`` at the version. A full rollout is then deployed.

    The first alias application (a full rollout's, or a canary/shadow's candidate alias) also issues the
    promotion's signed deployment receipt, in this transaction and last (it may integrate the ledger's
    queue, taking the ``LedgerHead`` lock, the last in the lock order); a later one finds it and issues
    none. A break-glass release rolled back here at once (its review found it unjustified) gets none.
    """
    promotion = lock_promotion(promotion)
    if promotion.state != State.DEPLOYING:
        raise InvalidState(f"promotion #{promotion.pk} is {promotion.state}, not deploying")
    now = timezone.now()
    record(
        event_type="promotion.alias_applied",
        actor=Actor.system("deployer"),
        subject=promotion_subject(promotion),
        payload={**base_payload(promotion), "alias": alias},
    )
    if alias == promotion.environment.mlflow_alias:
        promotion.state = State.DEPLOYED
        promotion.deployed_at = now
        promotion.traffic_percent = 100  # the environment's alias now serves this version
        promotion.save(update_fields=["state", "deployed_at", "traffic_percent"])
        _make_live(promotion, now)
        record(
            event_type="promotion.deployed",
            actor=Actor.system("deployer"),
            subject=promotion_subject(promotion),
            payload={**base_payload(promotion), "strategy": promotion.strategy},
        )
        # Read under the request's lock: a conclusion committed before it is seen here, one after it
        # finds the promotion deployed and rolls it back itself.
        review = _unjustified_review(promotion)
        if review is not None and review.reviewed_by is not None:
            live = lock_objects.live_deployments_lock().select_related("environment").get(
                model_id=promotion.version.model_id, environment=promotion.environment)
            roll_back(live, actor=review.reviewed_by, reason=unjustified_reason(promotion, review.comment,
                                                                                 "its deployment completed"))
            return promotion
    receipts.promotion_receipt_issue(actor=Actor.system("deployer"), promotion=promotion)
    return promotion


def _unjustified_review(request: PromotionRequest) -> BreakGlassReview | None:
    """The break-glass review of ``request`` when it concluded "unjustified" and the effective policy rolls
    such a release back (``rollback_unjustified_break_glass``); None otherwise."""
    if not request.is_break_glass:
        return None
    review = BreakGlassReview.objects.select_related("reviewed_by").filter(
        request=request, state=BreakGlassReview.State.UNJUSTIFIED).first()
    if review is None or review.reviewed_by is None:
        return None
    policy, _ = selectors.policy_for(environment=request.environment, model_id=request.version.model_id)
    return review if policy.rollback_unjustified_break_glass else None


def unjustified_reason(request: PromotionRequest, comment: str, when: str = "") -> str:
    after = f" (undone when {when})" if when else ""
    return f"break-glass promotion #{request.pk} found unjustified in its review{after}: {comment}"[:5000]


@transaction.atomic
def promotion_deploy_refuse_unjustified(*, promotion: PromotionRequest) -> bool:
    """The deploy tasks ask this before moving an alias: a break-glass promotion whose review concluded
    "unjustified" (with rollback by policy) while it was deploying is stopped instead (``failed``,
    recorded; nothing was live of it). Returns whether it was stopped; otherwise nothing changes."""
    promotion = lock_promotion(promotion)
    if promotion.state != State.DEPLOYING:
        return False
    review = _unjustified_review(promotion)
    if review is None:
        return False
    _mark_failed(promotion, "deployment stopped: " + unjustified_reason(promotion, review.comment),
                 Actor.system("deployer"))
    return True


@transaction.atomic
def promotion_deploy_refuse_changed_evidence(*, promotion: PromotionRequest) -> bool:
    """The deploy task asks this after re-reading the version from MLflow, before moving an alias: the gates
    are run again, and when the evidence is no longer what the approvals were given on (its digest
    changed: a model card edited in MLflow, a metric, the artifact's bytes...) the deployment is stopped:
    ``promotion.evidence_changed`` and ``failed`` are recorded, nothing was live of it, and the owner asks
    again (its approvals were for other evidence). Returns whether it was stopped; otherwise nothing changes.

    Break-glass promotions are not stopped here: they were released without approvals or passing gates by
    design, and their post-hoc review judges them.
    """
    promotion = lock_promotion(promotion)
    if promotion.state != State.DEPLOYING or promotion.is_break_glass:
        return False
    policy, _ = selectors.policy_for(environment=promotion.environment, model_id=promotion.version.model_id)
    results, digest = evidence.evaluate(promotion.version, promotion.environment, policy)
    if digest == promotion.evidence_digest:
        return False
    previous = promotion.evidence_digest
    promotion.evidence = evidence.evidence_doc(promotion.version, results)
    promotion.evidence_digest = digest
    promotion.save(update_fields=["evidence", "evidence_digest"])
    record(
        event_type="promotion.evidence_changed",
        actor=Actor.system("deployer"),
        subject=promotion_subject(promotion),
        payload={**base_payload(promotion), "previous_digest": previous, "evidence_digest": digest,
                 "gates": promotion.evidence["gates"]},
    )
    _mark_failed(promotion, "deployment stopped: the version's evidence changed after its approval; its approvals "
                 "were given on other evidence, so request the promotion again", Actor.system("deployer"))
    return True


@transaction.atomic
def promotion_deploy_failed(*, promotion: PromotionRequest, error: str) -> PromotionRequest:
    promotion = lock_promotion(promotion)
    if promotion.state != State.DEPLOYING:
        raise InvalidState(f"promotion #{promotion.pk} is {promotion.state}, not deploying")
    _mark_failed(promotion, error, Actor.system("deployer"))
    return promotion


def _mark_failed(request: PromotionRequest, error: str, actor: Actor) -> None:
    """deploying → failed, recorded; the caller holds the request's lock."""
    request.state = State.FAILED
    request.last_error = error[:2000]
    request.finished_at = timezone.now()
    request.save(update_fields=["state", "last_error", "finished_at"])
    record(
        event_type="promotion.deploy_failed",
        actor=actor,
        subject=promotion_subject(request),
        payload={**base_payload(request), "error": error[:500]},
    )


PROGRESS_STATUSES = ("step", "completed", "failed")


@transaction.atomic
def promotion_report_progress(
    *, actor: Actor, promotion: PromotionRequest, status: str, traffic_percent: int | None = None, detail: str = "",
    account: User | None = None,
) -> PromotionRequest:
    """A runtime reports a canary/shadow rollout's progress or outcome.

    ``completed`` moves the environment's main alias to the version (after commit);
    ``failed`` ends the rollout and removes the candidate alias. A caller from the API
    passes ``user`` (a person or a service account's user): only the requester, the
    model's owner, InfoSec or a holder of ``deploy_to`` may report.
    """
    if account is not None and not selectors.may_report_progress(account, promotion):
        raise NotPermitted("you may not report this rollout's progress")
    if status not in PROGRESS_STATUSES:
        raise GovernanceError(f"status must be one of {', '.join(PROGRESS_STATUSES)}", code="invalid_status")
    promotion = lock_promotion(promotion)
    if promotion.state != State.DEPLOYING or promotion.strategy == Strategy.FULL:
        raise InvalidState(f"promotion #{promotion.pk} is not a canary or shadow rollout in progress")
    if status == "step":
        if promotion.strategy != Strategy.CANARY:
            raise GovernanceError("traffic steps only apply to canary rollouts", code="invalid_status")
        if traffic_percent is None or traffic_percent not in promotion.canary_steps:
            raise GovernanceError(
                f"traffic_percent must be one of the request's canary steps {promotion.canary_steps}",
                code="invalid_step",
            )
        if traffic_percent is None or traffic_percent <= promotion.traffic_percent:
            raise GovernanceError("canary traffic only moves forward; roll back instead", code="invalid_step")
        promotion.traffic_percent = traffic_percent
        promotion.save(update_fields=["traffic_percent"])
    record(
        event_type="promotion.progress_reported",
        actor=actor,
        subject=promotion_subject(promotion),
        payload={**base_payload(promotion), "status": status, "traffic_percent": promotion.traffic_percent,
                 "detail": detail[:500]},
    )
    if status == "completed":
        # The marker: the main alias moves by our hand between now and promotion_alias_applied.
        promotion.rollout_completing_at = timezone.now()
        promotion.save(update_fields=["rollout_completing_at"])
        signals.rollout_completed.send(sender=PromotionRequest, promotion_id=promotion.pk)
    elif status == "failed":
        _mark_failed(promotion, detail or "rollout reported failed", actor)
        signals.rollout_failed.send(sender=PromotionRequest, promotion_id=promotion.pk)
    return promotion


@transaction.atomic
def promotion_rollback(
    *, actor: User, model: RegisteredModel, environment: Environment, reason: str
) -> PromotionRequest:
    """Put the previously deployed version back in ``environment`` in one action (alias moved after commit)."""
    reason = require_text(reason, "reason")
    if not may_roll_back(actor, model):
        raise NotPermitted("only the model's owner, a model-owner, InfoSec or break-glass may roll back")
    live = lock_objects.live_deployments_lock().filter(model=model, environment=environment).first()
    if live is None:
        raise InvalidState(f"no version of {model.name} is live in {environment.name}")
    return roll_back(live, actor=actor, reason=reason)


def roll_back(live: LiveDeployment, *, actor: User, reason: str) -> PromotionRequest:
    """The one rollback path: the live promotion becomes ``rolled_back``, the previously deployed version
    is live again (or none), recorded, and MLflow follows after commit. The caller holds ``live``'s lock
    and has decided that ``user`` may (``promotion_rollback``, or a break-glass review by policy)."""
    environment = live.environment
    request = lock_promotion(live.promotion)
    if request.state != State.DEPLOYED:
        raise InvalidState(f"promotion #{request.pk} is {request.state}; only a deployed promotion rolls back")
    now = timezone.now()
    request.state = State.ROLLED_BACK
    request.finished_at = now
    request.save(update_fields=["state", "finished_at"])
    restored = request.previous_version
    if restored is not None:
        earlier = (
            PromotionRequest.objects.filter(version=restored, environment=environment, state=State.DEPLOYED)
            .order_by("-deployed_at")
            .first()
        )
        if earlier is None:
            raise InvalidState(f"the previous version {restored.ref} has no deployed promotion to return to")
        live.version = restored
        live.promotion = earlier
        live.since = now
        live.save(update_fields=["version", "promotion", "since"])
    else:
        live.delete()
    record(
        event_type="promotion.rolled_back",
        actor=Actor.user(actor),
        subject=promotion_subject(request),
        payload={**base_payload(request), "reason": reason,
                 "restored_version": restored.version if restored else None},
    )
    signals.promotion_rolled_back.send(sender=PromotionRequest, promotion_id=request.pk)
    return request


@transaction.atomic
def mlflow_alias_change_record(
    *, model: str, alias: str, version: int | None, previous_version: int | None, reason: str
) -> None:
    """Record an alias change this service made in MLflow (the change itself happened in a task)."""
    record(
        event_type="mlflow.alias_changed",
        actor=Actor.system("deployer"),
        subject=Subject("registered_model", model),
        payload={"model": model, "alias": alias, "version": version, "previous_version": previous_version,
                 "reason": reason},
    )
