"""Promotion requests, from asking to deciding: request, approve, reject, request changes, withdraw, expire,
re-evaluate.

Every transition locks the request row first (``governance.lock_objects``), so two approvers approving at
once, or an approval racing a withdrawal, serialise and leave one consistent outcome. An approved request
is deployed after commit by a Celery task, queued through ``governance.signals``.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar, cast

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from access import roles
from access.authn import require_recent_mfa
from access.classification import RESTRICTED
from access.models import DEPLOY_TO
from access.principals import account_ids
from access.roles import role_names
from access.services.checks import check
from audit.ledger import Actor, Event, record, record_many
from governance import lock_objects, selectors, signals
from governance.errors import Frozen, GovernanceError, InvalidState, NotPermitted
from governance.models import (
    Approval,
    Environment,
    FreezeWindow,
    ModelVersion,
    PromotionPolicy,
    PromotionRequest,
    RegisteredModel,
)
from governance.policy import (
    DEFAULT_RULES,
    Policy,
    PolicyError,
    parse_policy,
)
from governance.policy_floor import below_floor, floor_for, floor_problems
from governance.services import registry_mirror
from governance.services.common import (
    State,
    Strategy,
    base_payload,
    lock_promotion,
    promotion_subject,
    require_text,
    who,
)
from governance.services.evidence import evaluate, evidence_doc, refresh_evidence
from governance.services.follow_ups import FOLLOW_UP_FIELDS

_P = ParamSpec("_P")
_R = TypeVar("_R")


NEEDS_DEPLOY_TO = "needs_deploy_to"


def check_deploy_grant(user: User, version: ModelVersion, environment: Environment) -> None:
    """A version trained on restricted data may only be promoted by someone with ``deploy_to`` on the environment."""
    level = ModelVersion.objects.filter(pk=version.pk).values_list("data_classification", flat=True).first()
    if level != RESTRICTED:
        return
    if not check(user, DEPLOY_TO, environment, record_denial=False):
        raise NotPermitted(
            f"{version.ref} was trained on restricted data: promoting it to {environment.name} needs an active "
            f"deploy_to grant on environment:{environment.name}, and user:{user.pk} ({user.get_username()}) "
            "has none (ask InfoSec for one)",
            code=NEEDS_DEPLOY_TO,
        )


def records_deploy_to_denial(service: Callable[_P, _R]) -> Callable[_P, _R]:
    """Outside the service's transaction: a refusal for a missing deploy_to grant is recorded as
    ``access.check_denied`` (the refused request itself rolled back and left nothing)."""

    @functools.wraps(service)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return service(*args, **kwargs)
        except NotPermitted as exc:
            if exc.code == NEEDS_DEPLOY_TO:
                check(cast(User, kwargs["actor"]), DEPLOY_TO, cast(Environment, kwargs["environment"]))
            raise

    return wrapper


def _check_not_frozen(environment: Environment, now: datetime) -> None:
    freeze = selectors.active_freeze(environment=environment, at=now)
    if freeze is not None:
        raise Frozen(
            f"{environment.name} is frozen until {freeze.ends_at:%Y-%m-%d %H:%M} UTC ({freeze.reason}); "
            "promotions to it are refused"
        )


def _check_not_skipping(version: ModelVersion, environment: Environment) -> None:
    previous = selectors.previous_environment(environment)
    if previous is None:
        return
    if selectors.deployed_since(version=version, environment=previous) is None:
        raise GovernanceError(
            f"{version.ref} has not been deployed to {previous.name}; promotions may not skip an environment",
            code="skips_environment",
        )


def may_request_promotion(user: User, model: RegisteredModel) -> bool:
    """Who may request a promotion of ``model``: its owner or a model-owner. The console asks it to
    decide which forms to show; ``promotion_request`` asks it to decide."""
    return model.owner_id == user.pk or roles.MODEL_OWNER in role_names(user)


@records_deploy_to_denial
@transaction.atomic
def promotion_request(
    *,
    actor: User,
    version: ModelVersion,
    environment: Environment,
    reason: str,
    strategy: str = Strategy.FULL,
    canary_steps: list[int] | None = None,
) -> PromotionRequest:
    """Ask to promote ``version`` into ``environment``. Gates are evaluated and kept as evidence."""
    reason = require_text(reason, "reason")
    if not may_request_promotion(actor, version.model):
        raise NotPermitted("only the model's owner or a model-owner may request a promotion")
    if strategy not in Strategy.values:
        raise GovernanceError(f"strategy must be one of {', '.join(Strategy.values)}", code="invalid_strategy")
    steps = _canary_steps(strategy, canary_steps)
    check_deploy_grant(actor, version, environment)  # access catalog: restricted data
    now = timezone.now()
    _check_not_frozen(environment, now)
    _check_not_skipping(version, environment)
    live = selectors.live_version(model_id=version.model_id, environment=environment)
    if live is not None and live.version_id == version.pk:
        raise GovernanceError(f"{version.ref} is already live in {environment.name}", code="already_live")
    policy, _ = selectors.policy_for(environment=environment, model_id=version.model_id)
    results, digest = evaluate(version, environment, policy)
    try:
        with transaction.atomic():
            request = PromotionRequest.objects.create(
                version=version,
                environment=environment,
                requested_by=actor,
                strategy=strategy,
                canary_steps=steps,
                reason=reason,
                evidence=evidence_doc(version, results),
                evidence_digest=digest,
            )
    except IntegrityError:
        raise GovernanceError(
            f"{version.ref} already has an open promotion request to {environment.name}", code="duplicate"
        ) from None
    record(
        event_type="promotion.requested",
        actor=Actor.user(actor),
        subject=promotion_subject(request),
        payload={**base_payload(request), "strategy": strategy, "canary_steps": steps, "reason": reason,
                 "evidence_digest": digest, "gates": request.evidence["gates"]},
    )
    # A policy without approval rules (e.g. dev) approves as soon as the gates pass.
    _approve_if_complete(request, policy, Actor.system("policy"), now)
    return request


def _canary_steps(strategy: str, steps: list[int] | None) -> list[int]:
    if strategy != Strategy.CANARY:
        if steps:
            raise GovernanceError("canary steps are only for the canary strategy", code="invalid_strategy")
        return []
    steps = steps or [5, 25, 50, 100]
    if (
        not isinstance(steps, list)
        or not all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= 100 for s in steps)
        or steps != sorted(set(steps))
        or steps[-1] != 100
    ):
        raise GovernanceError(
            "canary steps must be increasing traffic percents between 1 and 100, ending at 100",
            code="invalid_canary_steps",
        )
    return steps


def _valid_approvals(
    request: PromotionRequest, policy: Policy, now: datetime, approvals: Iterable[Approval] | None = None
) -> list[Approval]:
    """Approvals that count: for the current evidence, not expired, toward one of the policy's rules.

    ``approvals``: the request's approvals when the caller already holds them (a service that
    reads them once under the request's lock); else they are read here.
    """
    cutoff = now - timedelta(days=policy.approval_expiry_days)
    groups = set(policy.approval_groups)
    return [
        approval
        for approval in (request.approvals.all() if approvals is None else approvals)
        if approval.decision == Approval.Decision.APPROVE
        and approval.evidence_digest == request.evidence_digest
        and approval.created_at >= cutoff
        and approval.group in groups
    ]


def _approval_state(
    request: PromotionRequest, policy: Policy, now: datetime, approvals: Iterable[Approval] | None = None
) -> tuple[dict[str, int], list[str]]:
    """Valid approvals per rule group, and the rules still unmet (expired and stale approvals don't count)."""
    counts: dict[str, int] = {rule.group: 0 for rule in policy.approvals}
    for approval in _valid_approvals(request, policy, now, approvals):
        counts[approval.group] += 1
    unmet = [f"{rule.count - counts[rule.group]} more from {rule.group}"
             for rule in policy.approvals if counts[rule.group] < rule.count]
    return counts, unmet


def approval_status(request: PromotionRequest) -> dict[str, Any]:
    """What the console and API show: gates, valid approvals and the rules still unmet, all under the
    effective policy (the stored one raised to the floor, see ``selectors.policy_for``)."""
    policy, _ = selectors.policy_for(environment=request.environment, model_id=request.version.model_id)
    counts, unmet = _approval_state(request, policy, timezone.now())
    unmet += _floor_unmet(request.environment, policy)
    gates = request.evidence.get("gates", [])
    return {
        "approvals": counts,
        "unmet_rules": unmet,
        "failed_gates": [g["gate"] for g in gates if not g["passed"]],
        "ready": not unmet and all(g["passed"] for g in gates),
    }


def floor_applied(row: PromotionPolicy | None, environment: Environment) -> list[str]:
    """What the stored policy (``row``; None: the built-in one) lacks to meet its environment's floor, in
    words: what ``selectors.policy_for`` raised for decisions there (empty: it meets its floor)."""
    rules = row.rules if row is not None else DEFAULT_RULES
    try:
        return below_floor(environment.name, parse_policy(rules))
    except PolicyError:
        return []


def _floor_unmet(environment: Environment, policy: Policy) -> list[str]:
    """What the floor requires that it could not add to the effective policy by itself (a required metric
    gate, say): until the policy is fixed (a change request) such a promotion is never approved."""
    return [f"the policy of {environment.name} is below its floor (POLICY_FLOOR): {problem}; "
            "InfoSec must fix the policy before any promotion there is approved"
            for problem in floor_problems(floor_for(environment.name), policy)]


def _check_separation_of_duties(user: User, request: PromotionRequest) -> set[int]:
    """Neither the requester nor whoever registered the version may decide, as a person: their service
    accounts count as them. The version's ``creator`` (MLflow's client-set ``mlflow.user``) is free
    text anyone can set, so it decides nothing; ``registered_by`` is the account the product knows.
    Returns the person's accounts (``access.principals.account_ids``)."""
    mine = account_ids(user)
    if request.requested_by_id in mine:
        raise NotPermitted(f"{who(user, request.requested_by_id)} requested this promotion, so you cannot approve "
                           "or reject it", code="self_approval")
    registered_by = request.version.registered_by_id
    if registered_by is not None and registered_by in mine:
        raise NotPermitted(f"{who(user, registered_by)} registered this model version, so you cannot approve its "
                           "promotion", code="self_approval")
    missing = selectors.missing_approve_promotion(user, request.version.model_id, request.environment_id)
    if missing:
        raise NotPermitted(
            "approvals of this promotion are restricted to holders of approve_promotion on "
            + " and ".join(missing) + "; you hold none (ask InfoSec for one)",
            code=NEEDS_APPROVE_PROMOTION,
        )
    return mine


# Code of the refusal of an approver without approve_promotion where a model or environment restricts it.
NEEDS_APPROVE_PROMOTION = "needs_approve_promotion"


def decision_refusal(user: User, request: PromotionRequest, policy: Policy) -> NotPermitted | None:
    """Why ``user`` may not approve, reject or request changes on ``request`` as a person (separation of
    duties, the approve_promotion restriction, the policy's groups), or None. The very checks of
    ``promotion_approve``/``promotion_reject``/``promotion_request_changes``, without raising, so the
    console offers its forms only to those the services would hear. A few queries whatever the request."""
    try:
        _check_separation_of_duties(user, request)
        _approver_group_of(user, policy)
    except NotPermitted as refusal:
        return refusal
    return None


def _duplicate_decision(
    user_pk: int, mine: set[int], request: PromotionRequest, policy: Policy, approvals: Iterable[Approval],
    now: datetime,
) -> str | None:
    """Why another approval from the person behind ``user_pk`` (accounts ``mine``) would count twice, or None:
    an approval from another account of theirs, or their own on the current evidence that has not expired
    (an older or expired one of their own is replaced by the new approval)."""
    approvals = list(approvals)
    if any(a.approver_id != user_pk and a.approver_id in mine for a in approvals):
        # alice and alice-bot are one person: two approvals from them would count twice.
        return "you have already decided on this promotion through another account you own"
    cutoff = now - timedelta(days=policy.approval_expiry_days)
    if any(a.approver_id == user_pk and a.evidence_digest == request.evidence_digest and a.created_at >= cutoff
           for a in approvals):
        return "you have already decided on this promotion"
    return None


def has_decided(user: User, request: PromotionRequest, policy: Policy, approvals: Iterable[Approval]) -> bool:
    """Whether ``promotion_approve`` would refuse ``user`` as a duplicate (``_duplicate_decision``, the
    service's own rule). The console then hides its decision forms (``approvals``: the request's, loaded)."""
    return _duplicate_decision(user.pk, account_ids(user), request, policy, approvals, timezone.now()) is not None


def approval_outcome(request: PromotionRequest) -> str:
    """What an approval left to do, in words, after ``promotion_approve`` returned ``request``: "All rules
    met — deploying." once it is approved, else every rule, gate and floor problem still in the way."""
    if request.state in (State.APPROVED, State.DEPLOYING, State.DEPLOYED):
        return "All rules met — deploying."
    if request.state != State.PENDING:
        return f"The request is {request.state.replace('_', ' ')}."
    policy, _ = selectors.policy_for(environment=request.environment, model_id=request.version.model_id)
    counts, _ = _approval_state(request, policy, timezone.now())
    missing = [
        f"{rule.count - counts[rule.group]} more approval{'s' if rule.count - counts[rule.group] != 1 else ''} "
        f"from {rule.group} needed"
        for rule in policy.approvals if counts[rule.group] < rule.count
    ]
    soak_hours = {g.name: float(g.params["hours"]) for g in policy.gates if g.type == "soak"}
    for gate in request.evidence.get("gates", []):
        if gate["passed"]:
            continue
        detail = str(gate.get("detail") or "")
        until = _soak_until(request, soak_hours.get(gate["gate"]), gate.get("observed"))
        if until is not None:
            missing.append(f"soak until {until:%Y-%m-%d %H:%M} UTC: {detail}")
        else:
            missing.append(f"gate {gate['gate']} unmet" + (f" ({detail})" if detail else ""))
    missing += _floor_unmet(request.environment, policy)
    if not missing:  # approved by the next evaluation (a gate's evidence refreshed meanwhile)
        return "Every rule is met; the request is approved on its next evaluation."
    return "Still missing: " + "; ".join(missing) + "."


def _soak_until(request: PromotionRequest, hours: float | None, observed: object) -> datetime | None:
    """When a soak gate that had ``observed`` hours at the last evaluation passes (None: not a soak gate in
    progress, e.g. the version is not deployed in the previous environment at all)."""
    if hours is None or isinstance(observed, bool) or not isinstance(observed, int | float):
        return None
    try:
        evaluated = datetime.fromisoformat(str(request.evidence.get("evaluated_at")))
    except ValueError:
        return None
    if evaluated.tzinfo is None:
        return None
    return (evaluated + timedelta(hours=hours - float(observed))).astimezone(UTC)


def _approver_group_of(user: User, policy: Policy) -> list[str]:
    eligible = [rule.group for rule in policy.approvals if rule.group in role_names(user)]
    if not eligible:
        raise NotPermitted(
            "approvals for this promotion must come from: " + ", ".join(policy.approval_groups or ("nobody",)),
            code="not_in_required_group",
        )
    return eligible


def _approver_group(
    user: User, request: PromotionRequest, policy: Policy, approvals: Iterable[Approval] | None = None
) -> str:
    eligible = _approver_group_of(user, policy)
    counts, _ = _approval_state(request, policy, timezone.now(), approvals)
    for rule in policy.approvals:
        if rule.group in eligible and counts[rule.group] < rule.count:
            return rule.group
    return eligible[0]


def promotion_approve(*, actor: User, promotion: PromotionRequest, comment: str) -> PromotionRequest:
    """Record an approval; the request becomes approved once every rule and gate is satisfied.

    The approval is counted on the version's evidence as MLflow has it now, not as last synced: MLflow
    sends no webhook when a model card (description) or a registered model's tags are edited. So the
    version and its model are first re-read from MLflow (``registry_mirror.version_evidence_refresh``,
    outside any transaction: MLflow is never called inside one); a change is recorded and re-evaluates
    the request (``promotion.evidence_changed``), and the approval is then decided on the fresh evidence
    under the request's lock by the same rules as always (a failed gate keeps it pending). When MLflow
    cannot be read the approval is refused (``RegistryUnreachable``, a 503 in the API) with nothing
    written: never approved on stale evidence. A version MLflow no longer has (marked DELETED by the re-read
    or a sync) is refused (``InvalidState``, code ``version_deleted``, a 409) with nothing written.

    Before MLflow is read, the refusals that need no evidence (state, separation of duties, the approver's
    group) are checked without locks, so that someone who may not approve cannot make the service call
    MLflow; all of them are checked again under the lock. A change made in MLflow between the re-read
    and the decision (milliseconds) is the next sync's.
    """
    comment = require_text(comment, "comment")
    # First, before MLflow is read or a lock taken: an approval needs a recent second factor (docs/identity.md).
    require_recent_mfa(actor=actor, action="approving a promotion")
    if settings.MLFLOW_EVIDENCE_REFRESH:
        current = _approval_precheck(actor, promotion)
        registry_mirror.version_evidence_refresh(version=current.version)
    return _promotion_approve(actor=actor, promotion=promotion, comment=comment)


def _approval_precheck(user: User, promotion: PromotionRequest) -> PromotionRequest:
    """The refusals of ``_promotion_approve`` that need no evidence, read without locks (a few queries);
    returns the request as stored now. Their answers are not reused under the lock: a grant revoked or
    an account linked while MLflow is read (a network call) must still refuse the approval."""
    request = PromotionRequest.objects.select_related("version__model", "environment").get(pk=promotion.pk)
    if request.state != State.PENDING:
        raise InvalidState(f"promotion #{request.pk} is {request.state}; only pending requests can be approved")
    _check_separation_of_duties(user, request)
    policy, _ = selectors.policy_for(environment=request.environment, model_id=request.version.model_id)
    _approver_group_of(user, policy)
    return request


def _lock_for_approval(promotion: PromotionRequest, now: datetime) -> tuple[PromotionRequest, Frozen | None]:
    """``lock_promotion`` and the environment's freeze at ``now`` (``_check_not_frozen``), in one statement:
    the freeze window active then, if any, comes as two columns of the locked row."""
    active = FreezeWindow.objects.filter(
        environment=OuterRef("environment_id"), starts_at__lte=now, ends_at__gt=now).order_by("pk")
    locked = (
        lock_objects.promotion_requests_lock()
        .select_related("version__model", "environment")
        .annotate(freeze_ends_at=Subquery(active.values("ends_at")[:1]),
                  freeze_reason=Subquery(active.values("reason")[:1]))
        .get(pk=promotion.pk)
    )
    ends_at: datetime | None = locked.freeze_ends_at
    if ends_at is None:
        return locked, None
    return locked, Frozen(
        f"{locked.environment.name} is frozen until {ends_at:%Y-%m-%d %H:%M} UTC "
        f"({locked.freeze_reason}); promotions to it are refused"
    )


@transaction.atomic
def _promotion_approve(*, actor: User, promotion: PromotionRequest, comment: str) -> PromotionRequest:
    """The approval itself, in one transaction under the request's lock (``promotion_approve``)."""
    # One moment for every time rule of this decision (freeze, expiry of approvals): when the lock is asked for.
    now = timezone.now()
    promotion, frozen = _lock_for_approval(promotion, now)
    if promotion.state != State.PENDING:
        raise InvalidState(f"promotion #{promotion.pk} is {promotion.state}; only pending requests can be approved")
    if promotion.version.mlflow_status == registry_mirror.DELETED_STATUS:
        # Consent to a version MLflow no longer holds approves nothing that can be deployed, and the decision
        # would outlive the artifact it was given on. ``promotion_approve``'s re-read marks it; this refuses.
        raise InvalidState(
            f"{promotion.version.ref} is no longer in the MLflow registry (deleted there); it cannot be approved. "
            "Reject or withdraw the request", code="version_deleted",
        )
    mine = _check_separation_of_duties(actor, promotion)
    if frozen is not None:
        raise frozen
    policy, _ = selectors.policy_for(environment=promotion.environment, model_id=promotion.version.model_id)
    # Read once under the request's lock: no other approval of this request can appear meanwhile.
    approvals = list(promotion.approvals.all())
    group = _approver_group(actor, promotion, policy, approvals)
    refresh_evidence(promotion, policy, Actor.user(actor), save=False)
    duplicate = _duplicate_decision(actor.pk, mine, promotion, policy, approvals, now)
    if duplicate is not None:
        raise GovernanceError(duplicate, code="duplicate_approval")
    previous = next((a for a in approvals if a.approver_id == actor.pk), None)
    if previous is not None:
        # The evidence changed, or the approval expired: the new approval replaces the old one.
        previous.delete()
        approvals.remove(previous)
    approvals.append(Approval.objects.create(
        request=promotion, approver=actor, decision=Approval.Decision.APPROVE, group=group, comment=comment,
        evidence_digest=promotion.evidence_digest,
    ))
    given = Event(
        event_type="promotion.approval_given",
        actor=Actor.user(actor),
        subject=promotion_subject(promotion),
        payload={**base_payload(promotion), "group": group, "comment": comment,
                 "evidence_digest": promotion.evidence_digest},
    )
    # One UPDATE carries the refreshed evidence and, when this approval completes the rules, the decision
    # (and the deployment's follow-up mark); one INSERT the approval's entry and, then, the decision's.
    _approve_if_complete(promotion, policy, Actor.user(actor), now, approvals,
                         also_save=["evidence", "evidence_digest"], also_record=[given])
    return promotion


def _approve_if_complete(
    request: PromotionRequest, policy: Policy, actor: Actor, now: datetime,
    approvals: Iterable[Approval] | None = None, also_save: list[str] | None = None,
    also_record: list[Event] | None = None,
) -> bool:
    """Approve ``request`` if every rule and gate is satisfied. ``also_save``: fields the caller
    changed and left unsaved, written in the same UPDATE whatever the outcome; ``also_record``: entries
    the caller has yet to record, recorded first, in the same INSERT as the decision's, whatever the
    outcome."""
    valid = _valid_approvals(request, policy, now, approvals)
    _, unmet = _approval_state(request, policy, now, valid)
    unmet += _floor_unmet(request.environment, policy)
    failed = [g["gate"] for g in request.evidence.get("gates", []) if not g["passed"]]
    events = list(also_record or [])
    if unmet or failed:
        if also_save:
            request.save(update_fields=also_save)
        if events:
            record_many(events)
        return False
    request.state = State.APPROVED
    request.decided_at = now
    # The receiver marks the deployment's follow-up on ``request`` (in memory): this UPDATE writes it.
    deploy_after_commit(request, marks_in_memory=True)
    request.save(update_fields=["state", "decided_at", *(also_save or []), *FOLLOW_UP_FIELDS])
    events.append(Event(
        event_type="promotion.approved",
        actor=actor,
        subject=promotion_subject(request),
        payload={**base_payload(request), "evidence_digest": request.evidence_digest,
                 "approvers": sorted(str(a.approver_id) for a in valid),
                 "gates": request.evidence.get("gates", [])},
    ))
    record_many(events)
    return True


def deploy_after_commit(request: PromotionRequest, *, marks_in_memory: bool = False) -> None:
    """Announce the approval: ``governance.tasks`` deploys it after commit (``signals.promotion_approved``).

    ``marks_in_memory``: the caller saves ``request`` afterwards with ``FOLLOW_UP_FIELDS`` (in the same
    transaction), so the receiver sets the follow-up mark on ``request`` instead of its own UPDATE."""
    signals.promotion_approved.send(sender=PromotionRequest, promotion_id=request.pk,
                                    promotion=request if marks_in_memory else None)


@transaction.atomic
def promotion_reject(*, actor: User, promotion: PromotionRequest, comment: str) -> PromotionRequest:
    """Reject a pending request (an approver of its policy; never the requester). Like an approval it
    needs a recent second factor when ``MFA_REQUIRED`` (checked before anything is locked or written)."""
    comment = require_text(comment, "comment")
    require_recent_mfa(actor=actor, action="rejecting a promotion")
    promotion = lock_promotion(promotion)
    if promotion.state != State.PENDING:
        raise InvalidState(f"promotion #{promotion.pk} is {promotion.state}; only pending requests can be rejected")
    mine = _check_separation_of_duties(actor, promotion)
    policy, _ = selectors.policy_for(environment=promotion.environment, model_id=promotion.version.model_id)
    group = _approver_group(actor, promotion, policy)
    if promotion.approvals.filter(approver_id__in=mine).exists():
        raise GovernanceError("you have already decided on this promotion", code="duplicate_approval")
    Approval.objects.create(
        request=promotion, approver=actor, decision=Approval.Decision.REJECT, group=group, comment=comment,
        evidence_digest=promotion.evidence_digest,
    )
    promotion.state = State.REJECTED
    promotion.decided_at = timezone.now()
    promotion.save(update_fields=["state", "decided_at"])
    record(
        event_type="promotion.rejected",
        actor=Actor.user(actor),
        subject=promotion_subject(promotion),
        payload={**base_payload(promotion), "group": group, "comment": comment},
    )
    return promotion


@transaction.atomic
def promotion_withdraw(*, actor: User, promotion: PromotionRequest, reason: str) -> PromotionRequest:
    reason = require_text(reason, "reason")
    promotion = lock_promotion(promotion)
    if promotion.state not in (State.PENDING, State.APPROVED):
        raise InvalidState(f"promotion #{promotion.pk} is {promotion.state}; only pending or approved can be withdrawn")
    if promotion.requested_by_id != actor.pk and roles.INFOSEC not in role_names(actor):
        raise NotPermitted("only the requester or InfoSec may withdraw a promotion request")
    mark_withdrawn(promotion, Actor.user(actor), reason)
    return promotion


def mark_withdrawn(request: PromotionRequest, actor: Actor, reason: str) -> None:
    """pending/approved → withdrawn, recorded; the caller holds the request's lock and checked who may."""
    request.state = State.WITHDRAWN
    request.finished_at = timezone.now()
    request.save(update_fields=["state", "finished_at"])
    record(
        event_type="promotion.withdrawn",
        actor=actor,
        subject=promotion_subject(request),
        payload={**base_payload(request), "reason": reason},
    )


@transaction.atomic
def promotion_expire(*, promotion: PromotionRequest, now: datetime | None = None) -> bool:
    """Expire a pending request older than its policy allows. Returns whether it expired."""
    now = now or timezone.now()
    promotion = lock_promotion(promotion)
    if promotion.state != State.PENDING:
        return False
    policy, _ = selectors.policy_for(environment=promotion.environment, model_id=promotion.version.model_id)
    if promotion.created_at > now - timedelta(days=policy.request_expiry_days):
        return False
    promotion.state = State.EXPIRED
    promotion.finished_at = now
    promotion.save(update_fields=["state", "finished_at"])
    record(
        event_type="promotion.expired",
        actor=Actor.system("scheduler"),
        subject=promotion_subject(promotion),
        payload={**base_payload(promotion), "after_days": policy.request_expiry_days},
    )
    return True


@transaction.atomic
def promotion_reevaluate(*, promotion: PromotionRequest, actor: Actor) -> bool:
    """Re-run the gates of a pending request (the version or its data changed). Returns whether evidence changed."""
    promotion = lock_promotion(promotion)
    if promotion.state != State.PENDING:
        return False
    policy, _ = selectors.policy_for(environment=promotion.environment, model_id=promotion.version.model_id)
    changed = refresh_evidence(promotion, policy, actor)
    _approve_if_complete(promotion, policy, actor, timezone.now())
    return changed


@transaction.atomic
def promotion_request_changes(*, actor: User, promotion: PromotionRequest, comment: str) -> PromotionRequest:
    """An approver sends a pending request back: it is closed (``changes_requested``) and the requester
    files a new one once the changes are made. Same rules as approving: an approver of one of the policy's
    groups, neither the requester nor the version's creator, pending requests only."""
    comment = require_text(comment, "comment")
    promotion = lock_promotion(promotion)
    if promotion.state != State.PENDING:
        raise InvalidState(
            f"promotion #{promotion.pk} is {promotion.state}; changes can only be requested on pending requests"
        )
    _check_separation_of_duties(actor, promotion)
    policy, _ = selectors.policy_for(environment=promotion.environment, model_id=promotion.version.model_id)
    group = _approver_group(actor, promotion, policy)
    now = timezone.now()
    promotion.state = State.CHANGES_REQUESTED
    promotion.decided_at = now
    promotion.finished_at = now
    promotion.save(update_fields=["state", "decided_at", "finished_at"])
    record(
        event_type="promotion.changes_requested",
        actor=Actor.user(actor),
        subject=promotion_subject(promotion),
        payload={**base_payload(promotion), "group": group, "comment": comment},
    )
    return promotion
