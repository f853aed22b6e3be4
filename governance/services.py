"""Services of the promotion-governance domain.

Every state change is one of these functions: keyword-only, ``@transaction.atomic``,
and each writes its ledger entry in the same transaction. Transitions lock the
promotion request row (``select_for_update``) first, so two approvers approving
at once, or an approval racing a withdrawal, serialise and leave one consistent
outcome. MLflow is changed only after commit, by Celery tasks (``governance.tasks``).
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar, cast

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from access import roles
from access.checks import check, principal_label
from access.classification import LEVELS, RESTRICTED
from access.models import DEPLOY_TO
from access.principals import account_ids, same_person
from access.roles import role_names
from audit.ledger import Actor, Subject, record
from governance import selectors
from governance.errors import Frozen, GovernanceError, InvalidState, NotPermitted
from governance.models import (
    VIA_API_TOKEN,
    VIA_IDENTITY_LINK,
    Approval,
    BreakGlassReview,
    ComplianceViolation,
    Environment,
    FreezeWindow,
    IdentityLink,
    LiveDeployment,
    ModelVersion,
    PromotionPolicy,
    PromotionRequest,
    RegisteredModel,
)
from governance.policy import (
    DEFAULT_RULES,
    NO_TRUSTED_CREATOR,
    Gate,
    GateInput,
    GateResult,
    Policy,
    PolicyError,
    evaluate_gate,
    evidence_digest,
    parse_policy,
)
from governance.policy_floor import below_floor, floor_for, floor_problems

State = PromotionRequest.State
Strategy = PromotionRequest.Strategy


def _subject(request: PromotionRequest) -> Subject:
    return Subject("promotion_request", str(request.pk))


def version_subject(version: ModelVersion) -> Subject:
    return Subject("model_version", version.ref)


def _base_payload(request: PromotionRequest) -> dict[str, Any]:
    return {
        "model": request.version.model.name,
        "version": request.version.version,
        "environment": request.environment.name,
    }


def _lock(request: PromotionRequest) -> PromotionRequest:
    # of=("self",): lock the request only, not the version, model and environment rows it joins.
    return (
        PromotionRequest.objects.select_for_update(of=("self",))
        .select_related("version__model", "environment")
        .get(pk=request.pk)
    )


def _require_text(value: str, what: str) -> str:
    value = (value or "").strip()
    if not value:
        raise GovernanceError(f"a {what} is required", code="required")
    if len(value) > 5000:
        raise GovernanceError(f"the {what} is longer than 5000 characters", code="too_long")
    return value


# --- evidence ----------------------------------------------------------------------------


def _gate_input(version: ModelVersion, environment: Environment, now: datetime) -> GateInput:
    previous = selectors.previous_environment(environment)
    # Soak time counts only while the version is the one live there: a version replaced
    # after an hour has soaked an hour, however long ago that was.
    live = selectors.live_version(model_id=version.model_id, environment=previous) if previous else None
    since = live.since if live is not None and live.version_id == version.pk else None
    metrics = {k: float(v) for k, v in (version.metrics or {}).items() if isinstance(v, int | float)}
    from governance.lineage import lineage_state, mlflow_inputs

    # No MLflow inputs, nothing uncatalogued: spare the lineage query.
    uncatalogued = lineage_state(version).unknown if mlflow_inputs(version) else ()
    return GateInput(
        metrics=metrics,
        description=version.description or version.model.description,
        data_classification=version.data_classification,
        environment_max_classification=environment.max_data_classification,
        previous_environment=previous.name if previous else None,
        in_previous_environment_since=since,
        now=now,
        uncatalogued=uncatalogued,
        artifact_digest=version.artifact_digest,
        artifact_digest_error=version.artifact_digest_error,
        registered_by=f"user:{version.registered_by_id}" if version.registered_by_id is not None else None,
        registered_via=version.registered_via,
    )


def evaluate(version: ModelVersion, environment: Environment, policy: Policy) -> tuple[list[GateResult], str]:
    """Run the policy's gates. A version trained on datasets the catalog does not know has an unknown
    classification: below the top level no environment admits it, so there the data_classification
    gate runs even when the policy does not list it."""
    data = _gate_input(version, environment, timezone.now())
    gates = list(policy.gates)
    implicit = data.uncatalogued and environment.max_data_classification != LEVELS[-1]
    if implicit and not any(g.type == "data_classification" for g in gates):
        gates.append(Gate(type="data_classification"))
    results = [evaluate_gate(g, data) for g in gates]
    return results, evidence_digest(version.artifact_digest, results)


def _evidence_doc(version: ModelVersion, results: list[GateResult]) -> dict[str, Any]:
    """The request's evidence. ``registered_by`` is the account the product knows registered the
    version (``user:<id>``), or ``NO_TRUSTED_CREATOR``: MLflow's creator name is never evidence."""
    return {
        "artifact_digest": version.artifact_digest,
        "gates": [r.as_dict() for r in results],
        "registered_by": f"user:{version.registered_by_id}" if version.registered_by_id is not None
        else NO_TRUSTED_CREATOR,
        "registered_via": version.registered_via or None,
        "evaluated_at": timezone.now().isoformat(),
    }


def _refresh_evidence(request: PromotionRequest, policy: Policy, actor: Actor, *, save: bool = True) -> bool:
    """Re-run the gates; record when the evidence changed (which makes earlier approvals stale).

    ``save=False``: the caller writes ``evidence`` and ``evidence_digest`` itself, later in the
    same transaction (one UPDATE instead of two)."""
    results, digest = evaluate(request.version, request.environment, policy)
    changed = digest != request.evidence_digest
    request.evidence = _evidence_doc(request.version, results)
    if changed:
        old = request.evidence_digest
        request.evidence_digest = digest
        record(
            event_type="promotion.evidence_changed",
            actor=actor,
            subject=_subject(request),
            payload={**_base_payload(request), "previous_digest": old, "evidence_digest": digest,
                     "gates": request.evidence["gates"]},
        )
    if save:
        request.save(update_fields=["evidence", "evidence_digest"])
    return changed


# --- access catalog: restricted data needs a deploy_to grant (docs/access.md) ----------

NEEDS_DEPLOY_TO = "needs_deploy_to"
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _check_deploy_grant(user: User, version: ModelVersion, environment: Environment) -> None:
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


def _records_deploy_to_denial(service: Callable[_P, _R]) -> Callable[_P, _R]:
    """Outside the service's transaction: a refusal for a missing deploy_to grant is recorded as
    ``access.check_denied`` (the refused request itself rolled back and left nothing)."""

    @functools.wraps(service)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return service(*args, **kwargs)
        except NotPermitted as exc:
            if exc.code == NEEDS_DEPLOY_TO:
                check(cast(User, kwargs["user"]), DEPLOY_TO, cast(Environment, kwargs["environment"]))
            raise

    return wrapper


# --- requesting --------------------------------------------------------------------------


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


# Besides the model's owner, who may roll a model back.
ROLLBACK_ROLES = frozenset({roles.MODEL_OWNER, roles.INFOSEC, roles.BREAK_GLASS})


def may_roll_back(user: User, model: RegisteredModel) -> bool:
    """Who may roll ``model`` back: its owner, a model-owner, InfoSec or break-glass (as above, the
    console shows its form by it and ``promotion_rollback`` refuses by it)."""
    return model.owner_id == user.pk or bool(role_names(user) & ROLLBACK_ROLES)


@_records_deploy_to_denial
@transaction.atomic
def promotion_request(
    *,
    user: User,
    version: ModelVersion,
    environment: Environment,
    reason: str,
    strategy: str = Strategy.FULL,
    canary_steps: list[int] | None = None,
) -> PromotionRequest:
    """Ask to promote ``version`` into ``environment``. Gates are evaluated and kept as evidence."""
    reason = _require_text(reason, "reason")
    if not may_request_promotion(user, version.model):
        raise NotPermitted("only the model's owner or a model-owner may request a promotion")
    if strategy not in Strategy.values:
        raise GovernanceError(f"strategy must be one of {', '.join(Strategy.values)}", code="invalid_strategy")
    steps = _canary_steps(strategy, canary_steps)
    _check_deploy_grant(user, version, environment)  # access catalog: restricted data
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
                requested_by=user,
                strategy=strategy,
                canary_steps=steps,
                reason=reason,
                evidence=_evidence_doc(version, results),
                evidence_digest=digest,
            )
    except IntegrityError:
        raise GovernanceError(
            f"{version.ref} already has an open promotion request to {environment.name}", code="duplicate"
        ) from None
    record(
        event_type="promotion.requested",
        actor=Actor.user(user),
        subject=_subject(request),
        payload={**_base_payload(request), "strategy": strategy, "canary_steps": steps, "reason": reason,
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


# --- approving ---------------------------------------------------------------------------


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


def _who(user: User, account_id: int) -> str:
    """How a refusal names the account that is ``user`` as a person."""
    return "you" if account_id == user.pk else f"your service account (user:{account_id})"


def _check_separation_of_duties(user: User, request: PromotionRequest) -> set[int]:
    """Neither the requester nor whoever registered the version may decide, as a person: their service
    accounts count as them. The version's ``creator`` (MLflow's client-set ``mlflow.user``) is free
    text anyone can set, so it decides nothing; ``registered_by`` is the account the product knows.
    Returns the person's accounts (``access.principals.account_ids``)."""
    mine = account_ids(user)
    if request.requested_by_id in mine:
        raise NotPermitted(f"{_who(user, request.requested_by_id)} requested this promotion, so you cannot approve "
                           "or reject it", code="self_approval")
    registered_by = request.version.registered_by_id
    if registered_by is not None and registered_by in mine:
        raise NotPermitted(f"{_who(user, registered_by)} registered this model version, so you cannot approve its "
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


@transaction.atomic
def promotion_approve(*, user: User, request: PromotionRequest, comment: str) -> PromotionRequest:
    """Record an approval; the request becomes approved once every rule and gate is satisfied."""
    comment = _require_text(comment, "comment")
    request = _lock(request)
    if request.state != State.PENDING:
        raise InvalidState(f"promotion #{request.pk} is {request.state}; only pending requests can be approved")
    mine = _check_separation_of_duties(user, request)
    now = timezone.now()
    _check_not_frozen(request.environment, now)
    policy, _ = selectors.policy_for(environment=request.environment, model_id=request.version.model_id)
    # Read once under the request's lock: no other approval of this request can appear meanwhile.
    approvals = list(request.approvals.all())
    group = _approver_group(user, request, policy, approvals)
    _refresh_evidence(request, policy, Actor.user(user), save=False)
    others = [a for a in approvals if a.approver_id != user.pk and a.approver_id in mine]
    if others:
        # alice and alice-bot are one person: two approvals from them would count twice.
        raise GovernanceError("you have already decided on this promotion through another account you own",
                              code="duplicate_approval")
    previous = next((a for a in approvals if a.approver_id == user.pk), None)
    if previous is not None:
        cutoff = now - timedelta(days=policy.approval_expiry_days)
        if previous.evidence_digest == request.evidence_digest and previous.created_at >= cutoff:
            raise GovernanceError("you have already decided on this promotion", code="duplicate_approval")
        # The evidence changed, or the approval expired: the new approval replaces the old one.
        previous.delete()
        approvals.remove(previous)
    approvals.append(Approval.objects.create(
        request=request, approver=user, decision=Approval.Decision.APPROVE, group=group, comment=comment,
        evidence_digest=request.evidence_digest,
    ))
    record(
        event_type="promotion.approval_given",
        actor=Actor.user(user),
        subject=_subject(request),
        payload={**_base_payload(request), "group": group, "comment": comment,
                 "evidence_digest": request.evidence_digest},
    )
    # One UPDATE carries the refreshed evidence and, when this approval completes the rules, the decision.
    _approve_if_complete(request, policy, Actor.user(user), now, approvals, also_save=["evidence", "evidence_digest"])
    return request


def _approve_if_complete(
    request: PromotionRequest, policy: Policy, actor: Actor, now: datetime,
    approvals: Iterable[Approval] | None = None, also_save: list[str] | None = None,
) -> bool:
    """Approve ``request`` if every rule and gate is satisfied. ``also_save``: fields the caller
    changed and left unsaved, written in the same UPDATE whatever the outcome."""
    valid = _valid_approvals(request, policy, now, approvals)
    _, unmet = _approval_state(request, policy, now, valid)
    unmet += _floor_unmet(request.environment, policy)
    failed = [g["gate"] for g in request.evidence.get("gates", []) if not g["passed"]]
    if unmet or failed:
        if also_save:
            request.save(update_fields=also_save)
        return False
    request.state = State.APPROVED
    request.decided_at = now
    request.save(update_fields=["state", "decided_at", *(also_save or [])])
    record(
        event_type="promotion.approved",
        actor=actor,
        subject=_subject(request),
        payload={**_base_payload(request), "evidence_digest": request.evidence_digest,
                 "approvers": sorted(str(a.approver_id) for a in valid),
                 "gates": request.evidence.get("gates", [])},
    )
    _deploy_after_commit(request)
    return True


def _deploy_after_commit(request: PromotionRequest) -> None:
    from governance import tasks

    request_id = request.pk
    transaction.on_commit(lambda: tasks.apply_promotion.delay(request_id))


@transaction.atomic
def promotion_reject(*, user: User, request: PromotionRequest, comment: str) -> PromotionRequest:
    comment = _require_text(comment, "comment")
    request = _lock(request)
    if request.state != State.PENDING:
        raise InvalidState(f"promotion #{request.pk} is {request.state}; only pending requests can be rejected")
    mine = _check_separation_of_duties(user, request)
    policy, _ = selectors.policy_for(environment=request.environment, model_id=request.version.model_id)
    group = _approver_group(user, request, policy)
    if request.approvals.filter(approver_id__in=mine).exists():
        raise GovernanceError("you have already decided on this promotion", code="duplicate_approval")
    Approval.objects.create(
        request=request, approver=user, decision=Approval.Decision.REJECT, group=group, comment=comment,
        evidence_digest=request.evidence_digest,
    )
    request.state = State.REJECTED
    request.decided_at = timezone.now()
    request.save(update_fields=["state", "decided_at"])
    record(
        event_type="promotion.rejected",
        actor=Actor.user(user),
        subject=_subject(request),
        payload={**_base_payload(request), "group": group, "comment": comment},
    )
    return request


@transaction.atomic
def promotion_withdraw(*, user: User, request: PromotionRequest, reason: str) -> PromotionRequest:
    reason = _require_text(reason, "reason")
    request = _lock(request)
    if request.state not in (State.PENDING, State.APPROVED):
        raise InvalidState(f"promotion #{request.pk} is {request.state}; only pending or approved can be withdrawn")
    if request.requested_by_id != user.pk and roles.INFOSEC not in role_names(user):
        raise NotPermitted("only the requester or InfoSec may withdraw a promotion request")
    _mark_withdrawn(request, Actor.user(user), reason)
    return request


def _mark_withdrawn(request: PromotionRequest, actor: Actor, reason: str) -> None:
    """pending/approved → withdrawn, recorded; the caller holds the request's lock and checked who may."""
    request.state = State.WITHDRAWN
    request.finished_at = timezone.now()
    request.save(update_fields=["state", "finished_at"])
    record(
        event_type="promotion.withdrawn",
        actor=actor,
        subject=_subject(request),
        payload={**_base_payload(request), "reason": reason},
    )


@transaction.atomic
def promotion_expire(*, request: PromotionRequest, now: datetime | None = None) -> bool:
    """Expire a pending request older than its policy allows. Returns whether it expired."""
    now = now or timezone.now()
    request = _lock(request)
    if request.state != State.PENDING:
        return False
    policy, _ = selectors.policy_for(environment=request.environment, model_id=request.version.model_id)
    if request.created_at > now - timedelta(days=policy.request_expiry_days):
        return False
    request.state = State.EXPIRED
    request.finished_at = now
    request.save(update_fields=["state", "finished_at"])
    record(
        event_type="promotion.expired",
        actor=Actor.system("scheduler"),
        subject=_subject(request),
        payload={**_base_payload(request), "after_days": policy.request_expiry_days},
    )
    return True


@transaction.atomic
def promotion_reevaluate(*, request: PromotionRequest, actor: Actor) -> bool:
    """Re-run the gates of a pending request (the version or its data changed). Returns whether evidence changed."""
    request = _lock(request)
    if request.state != State.PENDING:
        return False
    policy, _ = selectors.policy_for(environment=request.environment, model_id=request.version.model_id)
    changed = _refresh_evidence(request, policy, actor)
    _approve_if_complete(request, policy, actor, timezone.now())
    return changed


# --- deploying ---------------------------------------------------------------------------


def rollout_alias(request: PromotionRequest) -> str:
    """The MLflow alias a promotion moves: the environment's alias, or a candidate alias while rolling out."""
    base = request.environment.mlflow_alias
    if request.strategy == Strategy.FULL:
        return base
    return f"{base}-{request.strategy}"


@transaction.atomic
def promotion_deploy_start(*, request: PromotionRequest) -> PromotionRequest:
    """approved → deploying (idempotent for a request already deploying)."""
    request = _lock(request)
    if request.state == State.DEPLOYING:
        request.deploy_attempts += 1
        request.save(update_fields=["deploy_attempts"])
        return request
    if request.state != State.APPROVED:
        raise InvalidState(f"promotion #{request.pk} is {request.state}; only approved requests can be deployed")
    live = selectors.live_version(model_id=request.version.model_id, environment=request.environment)
    request.previous_version = live.version if live else None
    request.state = State.DEPLOYING
    request.deploy_attempts += 1
    request.save(update_fields=["previous_version", "state", "deploy_attempts"])
    record(
        event_type="promotion.deploy_started",
        actor=Actor.system("deployer"),
        subject=_subject(request),
        payload={**_base_payload(request), "strategy": request.strategy, "alias": rollout_alias(request),
                 "previous_version": live.version.version if live else None},
    )
    return request


def _make_live(request: PromotionRequest, now: datetime) -> None:
    LiveDeployment.objects.update_or_create(
        model=request.version.model,
        environment=request.environment,
        defaults={"version": request.version, "promotion": request, "since": now},
    )


@transaction.atomic
def promotion_alias_applied(*, request: PromotionRequest, alias: str) -> PromotionRequest:
    """MLflow now points ``alias`` at the version. A full rollout is then deployed."""
    request = _lock(request)
    if request.state != State.DEPLOYING:
        raise InvalidState(f"promotion #{request.pk} is {request.state}, not deploying")
    now = timezone.now()
    record(
        event_type="promotion.alias_applied",
        actor=Actor.system("deployer"),
        subject=_subject(request),
        payload={**_base_payload(request), "alias": alias},
    )
    if alias == request.environment.mlflow_alias:
        request.state = State.DEPLOYED
        request.deployed_at = now
        request.traffic_percent = 100  # the environment's alias now serves this version
        request.save(update_fields=["state", "deployed_at", "traffic_percent"])
        _make_live(request, now)
        record(
            event_type="promotion.deployed",
            actor=Actor.system("deployer"),
            subject=_subject(request),
            payload={**_base_payload(request), "strategy": request.strategy},
        )
        # Read under the request's lock: a conclusion committed before it is seen here, one after it
        # finds the promotion deployed and rolls it back itself.
        review = _unjustified_review(request)
        if review is not None and review.reviewed_by is not None:
            live = LiveDeployment.objects.select_for_update().select_related("environment").get(
                model_id=request.version.model_id, environment=request.environment)
            _roll_back(live, user=review.reviewed_by, reason=_unjustified_reason(request, review.comment,
                                                                                 "its deployment completed"))
    return request


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


def _unjustified_reason(request: PromotionRequest, comment: str, when: str = "") -> str:
    after = f" (undone when {when})" if when else ""
    return f"break-glass promotion #{request.pk} found unjustified in its review{after}: {comment}"[:5000]


@transaction.atomic
def promotion_deploy_refuse_unjustified(*, request: PromotionRequest) -> bool:
    """The deploy tasks ask this before moving an alias: a break-glass promotion whose review concluded
    "unjustified" (with rollback by policy) while it was deploying is stopped instead (``failed``,
    recorded; nothing was live of it). Returns whether it was stopped; otherwise nothing changes."""
    request = _lock(request)
    if request.state != State.DEPLOYING:
        return False
    review = _unjustified_review(request)
    if review is None:
        return False
    _mark_failed(request, "deployment stopped: " + _unjustified_reason(request, review.comment),
                 Actor.system("deployer"))
    return True


@transaction.atomic
def promotion_deploy_failed(*, request: PromotionRequest, error: str) -> PromotionRequest:
    request = _lock(request)
    if request.state != State.DEPLOYING:
        raise InvalidState(f"promotion #{request.pk} is {request.state}, not deploying")
    _mark_failed(request, error, Actor.system("deployer"))
    return request


def _mark_failed(request: PromotionRequest, error: str, actor: Actor) -> None:
    """deploying → failed, recorded; the caller holds the request's lock."""
    request.state = State.FAILED
    request.last_error = error[:2000]
    request.finished_at = timezone.now()
    request.save(update_fields=["state", "last_error", "finished_at"])
    record(
        event_type="promotion.deploy_failed",
        actor=actor,
        subject=_subject(request),
        payload={**_base_payload(request), "error": error[:500]},
    )


PROGRESS_STATUSES = ("step", "completed", "failed")


@transaction.atomic
def promotion_report_progress(
    *, actor: Actor, request: PromotionRequest, status: str, traffic_percent: int | None = None, detail: str = "",
    user: User | None = None,
) -> PromotionRequest:
    """A runtime reports a canary/shadow rollout's progress or outcome.

    ``completed`` moves the environment's main alias to the version (after commit);
    ``failed`` ends the rollout and removes the candidate alias. A caller from the API
    passes ``user`` (a person or a service account's user): only the requester, the
    model's owner, InfoSec or a holder of ``deploy_to`` may report.
    """
    if user is not None and not selectors.may_report_progress(user, request):
        raise NotPermitted("you may not report this rollout's progress")
    if status not in PROGRESS_STATUSES:
        raise GovernanceError(f"status must be one of {', '.join(PROGRESS_STATUSES)}", code="invalid_status")
    request = _lock(request)
    if request.state != State.DEPLOYING or request.strategy == Strategy.FULL:
        raise InvalidState(f"promotion #{request.pk} is not a canary or shadow rollout in progress")
    if status == "step":
        if request.strategy != Strategy.CANARY:
            raise GovernanceError("traffic steps only apply to canary rollouts", code="invalid_status")
        if traffic_percent is None or traffic_percent not in request.canary_steps:
            raise GovernanceError(
                f"traffic_percent must be one of the request's canary steps {request.canary_steps}",
                code="invalid_step",
            )
        if traffic_percent is None or traffic_percent <= request.traffic_percent:
            raise GovernanceError("canary traffic only moves forward; roll back instead", code="invalid_step")
        request.traffic_percent = traffic_percent
        request.save(update_fields=["traffic_percent"])
    record(
        event_type="promotion.progress_reported",
        actor=actor,
        subject=_subject(request),
        payload={**_base_payload(request), "status": status, "traffic_percent": request.traffic_percent,
                 "detail": detail[:500]},
    )
    from governance import tasks

    request_id = request.pk
    if status == "completed":
        # The marker: the main alias moves by our hand between now and promotion_alias_applied.
        request.rollout_completing_at = timezone.now()
        request.save(update_fields=["rollout_completing_at"])
        transaction.on_commit(lambda: tasks.complete_rollout.delay(request_id))
    elif status == "failed":
        _mark_failed(request, detail or "rollout reported failed", actor)
        transaction.on_commit(lambda: tasks.remove_candidate_alias.delay(request_id))
    return request


@transaction.atomic
def promotion_rollback(
    *, user: User, model: RegisteredModel, environment: Environment, reason: str
) -> PromotionRequest:
    """Put the previously deployed version back in ``environment`` in one action (alias moved after commit)."""
    reason = _require_text(reason, "reason")
    if not may_roll_back(user, model):
        raise NotPermitted("only the model's owner, a model-owner, InfoSec or break-glass may roll back")
    live = LiveDeployment.objects.select_for_update().filter(model=model, environment=environment).first()
    if live is None:
        raise InvalidState(f"no version of {model.name} is live in {environment.name}")
    return _roll_back(live, user=user, reason=reason)


def _roll_back(live: LiveDeployment, *, user: User, reason: str) -> PromotionRequest:
    """The one rollback path: the live promotion becomes ``rolled_back``, the previously deployed version
    is live again (or none), recorded, and MLflow follows after commit. The caller holds ``live``'s lock
    and has decided that ``user`` may (``promotion_rollback``, or a break-glass review by policy)."""
    environment = live.environment
    request = _lock(live.promotion)
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
        actor=Actor.user(user),
        subject=_subject(request),
        payload={**_base_payload(request), "reason": reason,
                 "restored_version": restored.version if restored else None},
    )
    from governance import tasks

    request_id = request.pk
    transaction.on_commit(lambda: tasks.apply_rollback.delay(request_id))
    return request


# --- break-glass -------------------------------------------------------------------------


BREAK_GLASS_BUDGET_EXCEEDED = "break_glass_budget_exceeded"


@dataclass(frozen=True)
class _BudgetExceeded:
    """What a refusal for an exhausted break-glass budget reports to InfoSec (no personal data)."""

    scope: str  # "person" or "environment"
    used: int
    limit: int
    window_days: int


class BreakGlassBudgetExceeded(NotPermitted):
    def __init__(self, message: str, *, budget: _BudgetExceeded) -> None:
        super().__init__(message, code=BREAK_GLASS_BUDGET_EXCEEDED)
        self.budget = budget


def _alerts_break_glass_budget(service: Callable[_P, _R]) -> Callable[_P, _R]:
    """Outside the service's transaction: a break-glass refused for an exhausted budget raises a
    ``break_glass_budget_exceeded`` compliance violation (InfoSec's alert) in its own transaction,
    after the refused promotion rolled back and left nothing."""

    @functools.wraps(service)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return service(*args, **kwargs)
        except BreakGlassBudgetExceeded as exc:
            user = cast(User, kwargs["user"])
            version = cast(ModelVersion, kwargs["version"])
            environment = cast(Environment, kwargs["environment"])
            budget = exc.budget
            violation_record(
                kind=ComplianceViolation.Kind.BREAK_GLASS_BUDGET_EXCEEDED,
                subject=Subject("environment", environment.name),
                summary=f"break-glass of {version.ref} to {environment.name} refused: the {budget.scope}'s budget "
                f"of {budget.limit} per {budget.window_days} days is used up",
                details={"model": version.model.name, "version": version.version, "environment": environment.name,
                         "person": principal_label(user), "scope": budget.scope, "used": budget.used,
                         "limit": budget.limit, "window_days": budget.window_days},
                actor=Actor.user(user),
            )
            raise

    return wrapper


def _check_break_glass_budget(user: User, environment: Environment, now: datetime) -> None:
    """At most ``BREAK_GLASS_MAX_PER_PERSON`` break-glass promotions per person (their service accounts
    count as them) and ``BREAK_GLASS_MAX_PER_ENVIRONMENT`` per environment in the last
    ``BREAK_GLASS_WINDOW_DAYS`` days, whatever became of them. Locks the environment and the person's
    account rows first, so two concurrent break-glasses cannot both take the last one."""
    accounts = account_ids(user)
    Environment.objects.select_for_update().filter(pk=environment.pk).exists()
    list(User.objects.select_for_update().filter(pk__in=accounts).order_by("pk").values_list("pk", flat=True))
    window = int(settings.BREAK_GLASS_WINDOW_DAYS)
    used_in_window = PromotionRequest.objects.filter(is_break_glass=True, created_at__gte=now - timedelta(days=window))
    checks = (
        ("person", int(settings.BREAK_GLASS_MAX_PER_PERSON), used_in_window.filter(requested_by_id__in=accounts)),
        ("environment", int(settings.BREAK_GLASS_MAX_PER_ENVIRONMENT), used_in_window.filter(environment=environment)),
    )
    for scope, limit, rows in checks:
        used = rows.count()
        if used >= limit:
            where = "you have" if scope == "person" else f"{environment.name} has had"
            raise BreakGlassBudgetExceeded(
                f"break-glass refused: {where} used {used} of {limit} break-glass promotions allowed per "
                f"{window} days; InfoSec is alerted. Use the ordinary approval path",
                budget=_BudgetExceeded(scope=scope, used=used, limit=limit, window_days=window),
            )


@_alerts_break_glass_budget
@_records_deploy_to_denial
@transaction.atomic
def promotion_break_glass(
    *, user: User, version: ModelVersion, environment: Environment, justification: str
) -> PromotionRequest:
    """Emergency promotion without approvals; opens a post-hoc review with a deadline.

    Limited by a per-person and a per-environment budget (``_check_break_glass_budget``): beyond it the
    promotion is refused with ``break_glass_budget_exceeded``, nothing of it is written, and a compliance
    violation of that kind alerts InfoSec."""
    justification = _require_text(justification, "justification")
    if roles.BREAK_GLASS not in role_names(user):
        raise NotPermitted("only members of the break-glass group may promote without approval")
    _check_deploy_grant(user, version, environment)  # access catalog: restricted data
    live = selectors.live_version(model_id=version.model_id, environment=environment)
    if live is not None and live.version_id == version.pk:
        raise GovernanceError(f"{version.ref} is already live in {environment.name}", code="already_live")
    open_request = PromotionRequest.objects.select_for_update(of=("self",)).filter(
        version=version, environment=environment, state__in=[State.PENDING, State.APPROVED, State.DEPLOYING]
    ).first()
    if open_request is not None and open_request.state != State.PENDING:
        raise GovernanceError(
            f"promotion #{open_request.pk} for {version.ref} to {environment.name} is already {open_request.state}",
            code="duplicate",
        )
    _check_break_glass_budget(user, environment, timezone.now())
    if open_request is not None:
        # An emergency must not wait for someone to withdraw the ordinary request: it is superseded.
        _mark_withdrawn(open_request, Actor.user(user), "superseded by a break-glass promotion")
    policy, _ = selectors.policy_for(environment=environment, model_id=version.model_id)
    results, digest = evaluate(version, environment, policy)
    now = timezone.now()
    request = PromotionRequest.objects.create(
        version=version, environment=environment, requested_by=user, reason=justification, is_break_glass=True,
        state=State.APPROVED, decided_at=now, evidence=_evidence_doc(version, results), evidence_digest=digest,
    )
    review = BreakGlassReview.objects.create(
        request=request, due_at=now + timedelta(hours=policy.break_glass_review_hours)
    )
    record(
        event_type="promotion.break_glass",
        actor=Actor.user(user),
        subject=_subject(request),
        payload={**_base_payload(request), "justification": justification, "review_due_at": review.due_at.isoformat(),
                 "gates": request.evidence["gates"], "break_glass": True},
    )
    _deploy_after_commit(request)
    return request


class Outcome:
    """What a break-glass review concludes."""

    JUSTIFIED = "justified"
    UNJUSTIFIED = "unjustified"
    ALL = (JUSTIFIED, UNJUSTIFIED)


@transaction.atomic
def break_glass_review_approve(*, user: User, review: BreakGlassReview, comment: str) -> BreakGlassReview:
    """Conclude a break-glass review as justified (``break_glass_review_conclude``)."""
    return break_glass_review_conclude(user=user, review=review, outcome=Outcome.JUSTIFIED, comment=comment)


@transaction.atomic
def break_glass_review_conclude(
    *, user: User, review: BreakGlassReview, outcome: str, comment: str
) -> BreakGlassReview:
    """Conclude an open or overdue break-glass review: ``justified`` (state ``approved``) or ``unjustified``.

    Reviewers: the environment's approval groups (InfoSec where the policy names none); never, as a
    person, whoever used break-glass or registered the version. ``unjustified`` raises an
    ``unjustified_break_glass`` compliance violation and, when the policy's
    ``rollback_unjustified_break_glass`` is on, takes the release back through the rollback path of
    ``promotion_rollback`` (the policy authorises it: the reviewer needs no rollback role) if it is
    the live one, or withdraws it if it has not started deploying. Otherwise (already replaced, or
    deploying) nothing is rolled back and the violation says so.
    """
    if outcome not in Outcome.ALL:
        raise GovernanceError(f"the outcome must be one of {', '.join(Outcome.ALL)}", code="invalid_outcome")
    comment = _require_text(comment, "comment")
    review = BreakGlassReview.objects.select_for_update().select_related(
        "request__version__model", "request__environment"
    ).get(pk=review.pk)
    if review.state in (BreakGlassReview.State.APPROVED, BreakGlassReview.State.UNJUSTIFIED):
        raise InvalidState(f"this break-glass review is already concluded ({review.state})")
    request = review.request
    if same_person(user, request.requested_by_id):
        raise NotPermitted(f"{_who(user, request.requested_by_id)} used break-glass, so you cannot review it",
                           code="self_approval")
    registered_by = request.version.registered_by_id
    if registered_by is not None and same_person(user, registered_by):
        raise NotPermitted(f"{_who(user, registered_by)} registered this model version, so you cannot review its "
                           "release", code="self_approval")
    policy, _ = selectors.policy_for(environment=request.environment, model_id=request.version.model_id)
    # An environment whose policy names no approvers (dev) is reviewed by InfoSec.
    reviewers = set(policy.approval_groups) or {roles.INFOSEC}
    if not role_names(user) & reviewers:
        raise NotPermitted(
            "break-glass reviews must come from: " + ", ".join(sorted(reviewers)), code="not_in_required_group"
        )
    late = review.state == BreakGlassReview.State.OVERDUE
    review.state = (BreakGlassReview.State.APPROVED if outcome == Outcome.JUSTIFIED
                    else BreakGlassReview.State.UNJUSTIFIED)
    review.reviewed_by = user
    review.comment = comment
    review.reviewed_at = timezone.now()
    review.save(update_fields=["state", "reviewed_by", "comment", "reviewed_at"])
    if outcome == Outcome.JUSTIFIED:
        record(
            event_type="promotion.break_glass_reviewed",
            actor=Actor.user(user),
            subject=_subject(request),
            payload={**_base_payload(request), "comment": comment, "late": late},
        )
        return review
    undone = _undo_break_glass(request, user=user, comment=comment) if policy.rollback_unjustified_break_glass \
        else "the policy does not roll back unjustified break-glass"
    reverted = undone in ("rolled_back", "withdrawn")
    record(
        event_type="promotion.break_glass_found_unjustified",
        actor=Actor.user(user),
        subject=_subject(request),
        payload={**_base_payload(request), "comment": comment, "late": late, "reverted": reverted},
    )
    violation_record(
        kind=ComplianceViolation.Kind.UNJUSTIFIED_BREAK_GLASS,
        subject=_subject(request),
        summary=f"break-glass promotion #{request.pk} of {request.version.ref} to {request.environment.name} "
        "was found unjustified" + (f" and {undone.replace('_', ' ')}" if reverted else f" ({undone})"),
        details={**_base_payload(request), "reviewer": principal_label(user), "outcome": undone},
        reverted=reverted,
        actor=Actor.user(user),
    )
    return review


def _undo_break_glass(request: PromotionRequest, *, user: User, comment: str) -> str:
    """Take back an unjustified break-glass release where that can still be done cleanly; the outcome."""
    reason = _unjustified_reason(request, comment)
    request = _lock(request)
    if request.state == State.APPROVED:
        # Not deploying yet: the deploy task refuses a request that is no longer approved.
        _mark_withdrawn(request, Actor.user(user), reason)
        return "withdrawn"
    if request.state == State.DEPLOYING:
        # The alias may be moving right now (break-glass deploys in full): the deploy task refuses to move
        # it from now on, and promotion_alias_applied rolls back a move that completes anyway.
        return "to be rolled back: the promotion is deploying; it is stopped, or rolled back as soon as its " \
            "deployment completes"
    if request.state != State.DEPLOYED:
        return f"not rolled back: the promotion is {request.state}"
    live = LiveDeployment.objects.select_for_update().select_related("environment").filter(
        model_id=request.version.model_id, environment=request.environment
    ).first()
    if live is None or live.promotion_id != request.pk:
        return "not rolled back: another promotion has replaced it"
    _roll_back(live, user=user, reason=reason)
    return "rolled_back"


@transaction.atomic
def break_glass_reviews_flag_overdue(*, now: datetime | None = None) -> int:
    """Mark open reviews past their deadline overdue, each a compliance violation. Idempotent."""
    now = now or timezone.now()
    overdue = list(
        BreakGlassReview.objects.select_for_update()
        .select_related("request__version__model", "request__environment")
        .filter(state=BreakGlassReview.State.OPEN, due_at__lt=now)
    )
    for review in overdue:
        review.state = BreakGlassReview.State.OVERDUE
        review.save(update_fields=["state"])
        request = review.request
        violation_record(
            kind=ComplianceViolation.Kind.OVERDUE_BREAK_GLASS_REVIEW,
            subject=_subject(request),
            summary=f"break-glass promotion #{request.pk} of {request.version.ref} to "
            f"{request.environment.name} was not reviewed by {review.due_at:%Y-%m-%d %H:%M} UTC",
            details={**_base_payload(request), "due_at": review.due_at.isoformat()},
        )
    return len(overdue)


# --- compliance ---------------------------------------------------------------------------


@transaction.atomic
def violation_record(
    *, kind: str, subject: Subject, summary: str, details: dict[str, Any], reverted: bool = False,
    actor: Actor | None = None,
) -> ComplianceViolation:
    violation = ComplianceViolation.objects.create(
        kind=kind, subject_type=subject.type, subject_id=subject.id, summary=summary[:500], details=details,
        reverted=reverted,
    )
    record(
        event_type="compliance.violation",
        actor=actor or Actor.system("compliance"),
        subject=subject,
        payload={"violation_id": violation.pk, "kind": kind, "summary": summary[:500], "details": details,
                 "reverted": reverted},
    )
    return violation


@transaction.atomic
def violation_acknowledge(
    *, user: User, violation: ComplianceViolation, comment: str
) -> ComplianceViolation:
    comment = _require_text(comment, "comment")
    if roles.INFOSEC not in role_names(user):
        raise NotPermitted("only InfoSec may acknowledge a compliance violation")
    violation = ComplianceViolation.objects.select_for_update().get(pk=violation.pk)
    if violation.acknowledged_at is not None:
        raise InvalidState("this violation is already acknowledged")
    violation.acknowledged_by = user
    violation.acknowledged_at = timezone.now()
    violation.acknowledgement = comment
    violation.save(update_fields=["acknowledged_by", "acknowledged_at", "acknowledgement"])
    record(
        event_type="compliance.violation_acknowledged",
        actor=Actor.user(user),
        subject=Subject(violation.subject_type, violation.subject_id),
        payload={"violation_id": violation.pk, "kind": violation.kind, "comment": comment},
    )
    return violation


# --- environments and policies -----------------------------------------------------------------
# The rules of a *protected* environment (its policies, model policies included, its alias and
# ceiling, the environments joining the path below it, its freeze windows, and the protection
# itself) change only through ``governance.change_requests``: a second InfoSec member approves.
# The direct services below refuse such changes (409 ``two_person_required``) and keep the
# one-step behaviour for unprotected environments. Each is split into a check (validation, no
# write) and an apply (write and record), so a change request validates its proposal when it is
# made and again, unchanged, when it is approved.


def _require_infosec(user: User, what: str) -> None:
    if roles.INFOSEC not in role_names(user):
        raise NotPermitted(f"only InfoSec may {what}")


def lock_environment(environment: Environment) -> Environment:
    """The environment's row, locked: changes to one environment's rules serialise, and the
    ``protected`` flag read is the committed one, not a stale copy the caller holds."""
    return Environment.objects.select_for_update().get(pk=environment.pk)


def _refuse_if_protected(environment: Environment, what: str) -> None:
    if environment.protected:
        raise InvalidState(
            f"{environment.name} is protected: {what} needs a second InfoSec member's approval; "
            f"propose it as a change request",
            code="two_person_required",
        )


def policy_check(*, environment: Environment, rules: Any) -> Policy:
    """Refuse a policy document that is malformed or below the environment's configured floor
    (``settings.POLICY_FLOOR``): the floor holds for default and model policies, protected or not,
    however many people agree."""
    try:
        policy = parse_policy(rules)
    except PolicyError as exc:
        raise GovernanceError(f"invalid policy: {exc}", code="invalid_policy") from None
    problems = floor_problems(floor_for(environment.name), policy)
    if problems:
        raise GovernanceError(
            f"this policy is below the floor configured for {environment.name} (POLICY_FLOOR), which cannot be "
            f"lowered through the product: " + "; ".join(problems),
            code="below_floor",
        )
    return policy


def policy_apply(
    *, user: User, environment: Environment, rules: Any, model: RegisteredModel | None
) -> PromotionPolicy:
    """Write a checked policy and record it. Callers check and hold the environment's lock."""
    policy, created = PromotionPolicy.objects.update_or_create(
        environment=environment, model=model, defaults={"rules": rules}
    )
    record(
        event_type="policy.updated",
        actor=Actor.user(user),
        subject=Subject("environment", environment.name),
        payload={"environment": environment.name, "model": model.name if model else None, "rules": rules,
                 "created": created},
    )
    return policy


@transaction.atomic
def policy_set(
    *, user: User, environment: Environment, rules: Any, model: RegisteredModel | None = None
) -> PromotionPolicy:
    """Create or replace the policy of an unprotected environment (or of one model in it). InfoSec only.

    Refuses a protected environment (``two_person_required``: see ``governance.change_requests``)
    and any policy below the floor."""
    _require_infosec(user, "change promotion policies")
    policy_check(environment=environment, rules=rules)
    environment = lock_environment(environment)
    _refuse_if_protected(environment, "changing its policies")
    return policy_apply(user=user, environment=environment, rules=rules, model=model)


def environment_changes(
    *, environment: Environment, max_data_classification: str | None = None, mlflow_alias: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """The validated changes (only the fields given); refuses bad values. Writes nothing."""
    changes: dict[str, Any] = {}
    if max_data_classification is not None:
        if max_data_classification not in LEVELS:
            raise GovernanceError(f"classification must be one of {', '.join(LEVELS)}", code="invalid_level")
        changes["max_data_classification"] = max_data_classification
    if mlflow_alias is not None:
        alias = mlflow_alias.strip()
        if not alias or not alias.replace("-", "").replace("_", "").isalnum():
            raise GovernanceError("an MLflow alias is letters, digits, '-' and '_'", code="invalid_alias")
        if Environment.objects.exclude(pk=environment.pk).filter(mlflow_alias=alias).exists():
            raise GovernanceError(f"alias {alias!r} is used by another environment", code="duplicate")
        changes["mlflow_alias"] = alias
    if description is not None:
        changes["description"] = description[:300]
    return changes


def environment_apply(*, user: User, environment: Environment, changes: dict[str, Any]) -> Environment:
    """Write checked changes and record them. Callers check and hold the environment's lock."""
    for key, value in changes.items():
        setattr(environment, key, value)
    environment.save(update_fields=list(changes))
    record(
        event_type="environment.updated",
        actor=Actor.user(user),
        subject=Subject("environment", environment.name),
        payload={"environment": environment.name, "changes": changes},
    )
    return environment


@transaction.atomic
def environment_update(
    *, user: User, environment: Environment, max_data_classification: str | None = None,
    mlflow_alias: str | None = None, description: str | None = None,
) -> Environment:
    """Change an unprotected environment's alias, ceiling or description. InfoSec only; a protected
    environment is refused (``two_person_required``)."""
    _require_infosec(user, "change environments")
    changes = environment_changes(environment=environment, max_data_classification=max_data_classification,
                                  mlflow_alias=mlflow_alias, description=description)
    if not changes:
        return environment
    locked = lock_environment(environment)
    _refuse_if_protected(locked, "changing it")
    environment_apply(user=user, environment=locked, changes=changes)
    for key, value in changes.items():  # the caller's copy says what was saved
        setattr(environment, key, value)
    return environment


def protected_above(order: int) -> Environment | None:
    """The nearest protected environment after ``order`` in the promotion path: a new environment
    at ``order`` joins the path to it (its soak gate then counts time in the new one)."""
    return Environment.objects.filter(protected=True, order__gt=order).order_by("order").first()


def environment_create_check(
    *, name: str, order: int, mlflow_alias: str, max_data_classification: str, description: str = ""
) -> dict[str, Any]:
    """The validated fields of a new environment; refuses bad or clashing values. Writes nothing."""
    slug = (name or "").strip() if isinstance(name, str) else ""
    if not slug or not slug.replace("-", "").replace("_", "").isalnum() or len(slug) > 50:
        raise GovernanceError("an environment name is 1-50 letters, digits, '-' and '_'", code="invalid_name")
    if max_data_classification not in LEVELS:
        raise GovernanceError(f"classification must be one of {', '.join(LEVELS)}", code="invalid_level")
    alias = (mlflow_alias or "").strip() if isinstance(mlflow_alias, str) else ""
    if not alias or not alias.replace("-", "").replace("_", "").isalnum():
        raise GovernanceError("an MLflow alias is letters, digits, '-' and '_'", code="invalid_alias")
    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise GovernanceError("order must be a non-negative integer", code="invalid_order")
    if order > 32767:  # the column's size: refused here, not as a database error
        raise GovernanceError("order must be at most 32767", code="invalid_order")
    if not isinstance(description, str):
        raise GovernanceError("a description is text", code="invalid")
    clash = Environment.objects.filter(models.Q(name=slug) | models.Q(order=order) | models.Q(mlflow_alias=alias))
    if clash.exists():
        raise GovernanceError("another environment has this name, order or alias", code="duplicate")
    return {"name": slug, "order": order, "mlflow_alias": alias, "max_data_classification": max_data_classification,
            "description": description[:300]}


def environment_create_apply(*, user: User, fields: dict[str, Any]) -> Environment:
    """Create a checked environment and record it."""
    environment = Environment.objects.create(**fields)
    record(
        event_type="environment.created",
        actor=Actor.user(user),
        subject=Subject("environment", environment.name),
        payload={"environment": environment.name, "order": environment.order,
                 "mlflow_alias": environment.mlflow_alias,
                 "max_data_classification": environment.max_data_classification},
    )
    return environment


@transaction.atomic
def environment_create(
    *, user: User, name: str, order: int, mlflow_alias: str, max_data_classification: str, description: str = ""
) -> Environment:
    """Add an environment to the promotion path (e.g. ``pre-prod`` between staging and production). InfoSec only.

    One joining the path below a protected environment changes that environment's path, so it is
    refused (``two_person_required``) and goes through a change request of that environment."""
    _require_infosec(user, "add environments")
    fields = environment_create_check(name=name, order=order, mlflow_alias=mlflow_alias,
                                      max_data_classification=max_data_classification, description=description)
    above = protected_above(fields["order"])
    if above is not None:
        lock_environment(above)
        _refuse_if_protected(above, f"adding an environment to the path below {above.name}")
    return environment_create_apply(user=user, fields=fields)


@transaction.atomic
def environment_protect(*, user: User, environment: Environment) -> Environment:
    """Protect an environment (two-person control from now on). InfoSec only, in one step: it only
    tightens. Removing protection is itself a protected change (a change request)."""
    _require_infosec(user, "protect environments")
    locked = lock_environment(environment)
    if not locked.protected:
        locked.protected = True
        locked.save(update_fields=["protected"])
        record(
            event_type="environment.protection_changed",
            actor=Actor.user(user),
            subject=Subject("environment", locked.name),
            payload={"environment": locked.name, "protected": True},
        )
    environment.protected = True
    return environment


def environment_unprotect_apply(*, user: User, environment: Environment) -> Environment:
    """Remove protection, as approved by a change request. Callers hold the environment's lock."""
    environment.protected = False
    environment.save(update_fields=["protected"])
    record(
        event_type="environment.protection_changed",
        actor=Actor.user(user),
        subject=Subject("environment", environment.name),
        payload={"environment": environment.name, "protected": False},
    )
    return environment


FREEZE_REASON_MAX = 300


def freeze_window_check(*, starts_at: datetime, ends_at: datetime, reason: str) -> str:
    """The window's reason, trimmed; refuses a window that is backwards, over, or unexplained."""
    reason = _require_text(reason, "reason")
    if len(reason) > FREEZE_REASON_MAX:  # the column's size: refused here, not as a database error
        raise GovernanceError(f"the reason is longer than {FREEZE_REASON_MAX} characters", code="too_long")
    if ends_at <= starts_at:
        raise GovernanceError("a freeze window must end after it starts", code="invalid_window")
    if ends_at <= timezone.now():
        # It would block nothing: surely a typo.
        raise GovernanceError("this freeze window has already ended: its end must be in the future",
                              code="invalid_window")
    return reason


def freeze_window_apply(
    *, user: User, environment: Environment, starts_at: datetime, ends_at: datetime, reason: str,
    created_by: User | None = None,
) -> FreezeWindow:
    """Create a checked freeze window and record it (``created_by``: who declared it, default ``user``)."""
    freeze = FreezeWindow.objects.create(
        environment=environment, starts_at=starts_at, ends_at=ends_at, reason=reason, created_by=created_by or user
    )
    record(
        event_type="environment.freeze_declared",
        actor=Actor.user(user),
        subject=Subject("environment", environment.name),
        payload={"environment": environment.name, "starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat(),
                 "reason": reason},
    )
    return freeze


@transaction.atomic
def freeze_window_create(
    *, user: User, environment: Environment, starts_at: datetime, ends_at: datetime, reason: str
) -> FreezeWindow:
    """Declare a freeze window of an unprotected environment. InfoSec only; a protected environment
    is refused (``two_person_required``)."""
    _require_infosec(user, "declare freeze windows")
    reason = freeze_window_check(starts_at=starts_at, ends_at=ends_at, reason=reason)
    locked = lock_environment(environment)
    _refuse_if_protected(locked, "declaring a freeze window")
    return freeze_window_apply(user=user, environment=locked, starts_at=starts_at, ends_at=ends_at, reason=reason)


def _check_not_classified_by_lineage(version: ModelVersion, level: str) -> None:
    """Access catalog: a version with lineage takes its classification from its datasets."""
    from governance.lineage import lineage_state

    lineage = lineage_state(version)
    if lineage.unknown:  # #13: data nobody catalogued cannot be declared anything
        raise GovernanceError(
            f"{version.ref} was trained on datasets the catalog does not know ({', '.join(lineage.unknown)}); "
            "register and classify them instead",
            code="uncatalogued_lineage",
        )
    if lineage.level is None:
        return
    if lineage.complete:
        raise GovernanceError(
            f"{version.ref} takes its classification ({lineage.level}) from the datasets it was trained on "
            f"({', '.join(lineage.datasets)}); reclassify those datasets instead",
            code="classified_by_lineage",
        )
    if LEVELS.index(level) < LEVELS.index(lineage.level):
        raise GovernanceError(
            f"{version.ref} was trained on {lineage.level} data ({', '.join(lineage.datasets)}); "
            f"it cannot be declared {level}",
            code="below_lineage",
        )


@transaction.atomic
def model_version_declare_classification(
    *, user: User, version: ModelVersion, level: str, reason: str
) -> ModelVersion:
    """Declare the training data's classification (data steward or InfoSec).

    A version with complete lineage takes its classification from its datasets and is
    refused (``classified_by_lineage``); with incomplete lineage, a level below what the
    linked datasets already say is refused (``below_lineage``). See governance.lineage.
    """
    reason = _require_text(reason, "reason")
    if level not in LEVELS:
        raise GovernanceError(f"classification must be one of {', '.join(LEVELS)}", code="invalid_level")
    groups = role_names(user)
    if not groups & {roles.DATA_STEWARD, roles.INFOSEC}:
        raise NotPermitted("only a data steward or InfoSec may declare a version's data classification")
    _check_not_classified_by_lineage(version, level)
    previous = version.data_classification
    version.data_classification = level
    version.save(update_fields=["data_classification"])
    record(
        event_type="model.version_classified",
        actor=Actor.user(user),
        subject=version_subject(version),
        payload={"model": version.model.name, "version": version.version, "level": level,
                 "previous_level": previous or None, "reason": reason},
    )
    for request in PromotionRequest.objects.filter(version=version, state=State.PENDING):
        promotion_reevaluate(request=request, actor=Actor.user(user))
    return version


# --- MLflow ------------------------------------------------------------------------------------


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


# --- request changes -----------------------------------------------------------------------------


@transaction.atomic
def promotion_request_changes(*, user: User, request: PromotionRequest, comment: str) -> PromotionRequest:
    """An approver sends a pending request back: it is closed (``changes_requested``) and the requester
    files a new one once the changes are made. Same rules as approving: an approver of one of the policy's
    groups, neither the requester nor the version's creator, pending requests only."""
    comment = _require_text(comment, "comment")
    request = _lock(request)
    if request.state != State.PENDING:
        raise InvalidState(
            f"promotion #{request.pk} is {request.state}; changes can only be requested on pending requests"
        )
    _check_separation_of_duties(user, request)
    policy, _ = selectors.policy_for(environment=request.environment, model_id=request.version.model_id)
    group = _approver_group(user, request, policy)
    now = timezone.now()
    request.state = State.CHANGES_REQUESTED
    request.decided_at = now
    request.finished_at = now
    request.save(update_fields=["state", "decided_at", "finished_at"])
    record(
        event_type="promotion.changes_requested",
        actor=Actor.user(user),
        subject=_subject(request),
        payload={**_base_payload(request), "group": group, "comment": comment},
    )
    return request


# --- ownership and trusted creators (#13: MLflow grants no rights) ------------------------------------------
# Ownership of a model is assigned only here; MLflow's ``owner`` tag is compared with it (drift), never
# obeyed. A version's registrant is an account only through an IdentityLink made by InfoSec, or the report
# of a pipeline's API token. Ledger payloads name accounts as ``user:<id>``; MLflow identities are personal.

MAX_IDENTITY = 256


def _account_ref(account: User | int) -> str:
    return f"user:{account if isinstance(account, int) else account.pk}"


def _is_service_account(account: User) -> bool:
    from access.models import ServiceAccount

    return ServiceAccount.objects.filter(user_id=account.pk).exists()


def may_set_owner(user: User, model: RegisteredModel) -> bool:
    """InfoSec, or the model's current owner handing it over."""
    if not user.is_active:
        return False
    return roles.INFOSEC in role_names(user) or (model.owner_id is not None and model.owner_id == user.pk)


@transaction.atomic
def model_owner_set(*, user: User, model: RegisteredModel, owner: User, reason: str) -> RegisteredModel:
    """Make ``owner`` (an active person's account) the owner of ``model``; InfoSec or the current owner.

    Records ``model.owner_set`` with ``user:<id>`` references. Setting the owner it already
    has changes and records nothing. A later MLflow ``owner`` tag that disagrees is drift
    (``model_ownership_drift_check``), never a change of owner.
    """
    reason = _require_text(reason, "reason")
    model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
    if not may_set_owner(user, model):
        raise NotPermitted("only InfoSec or the model's current owner may assign its owner")
    if not isinstance(owner, User) or owner.pk is None or not owner.is_active:
        raise GovernanceError("the new owner must be an active account", code="invalid_owner")
    if _is_service_account(owner):
        raise GovernanceError("a service account cannot own a model: name the person accountable for it",
                              code="invalid_owner")
    if model.owner_id == owner.pk:
        return model
    previous = model.owner_id
    model.owner = owner
    model.save(update_fields=["owner"])
    record(
        event_type="model.owner_set",
        actor=Actor.user(user),
        subject=Subject("registered_model", model.name),
        payload={"model": model.name, "owner": _account_ref(owner),
                 "previous_owner": _account_ref(previous) if previous is not None else None, "reason": reason},
    )
    model_ownership_drift_check(model=model, previous_tags=model.tags, actor=Actor.user(user))
    return model


@transaction.atomic
def model_ownership_drift_check(
    *, model: RegisteredModel, previous_tags: dict[str, Any] | None = None, actor: Actor | None = None
) -> ComplianceViolation | None:
    """Record ``ownership_drift`` when MLflow's ``owner`` tag names someone other than the owner assigned here.

    Nothing is recorded while the model has no owner here (there is nothing to disagree with) or
    the tag agrees. Recorded once per owner, and again only when the tag's value changes. The
    tag's value is free text that can name a person: it stays out of the violation.
    """
    from governance.sync import OWNER_TAG

    claimed = str((model.tags or {}).get(OWNER_TAG) or "")
    if not claimed or model.owner_id is None:
        return None
    owner = User.objects.filter(pk=model.owner_id).first()
    if owner is None or claimed == owner.get_username():
        return None
    tag_changed = previous_tags is not None and str(previous_tags.get(OWNER_TAG) or "") != claimed
    latest = (
        ComplianceViolation.objects.filter(
            kind=ComplianceViolation.Kind.OWNERSHIP_DRIFT, subject_type="registered_model", subject_id=model.name
        ).order_by("-pk").first()
    )
    if latest is not None and latest.details.get("owner") == _account_ref(owner) and not tag_changed:
        return None
    return violation_record(
        kind=ComplianceViolation.Kind.OWNERSHIP_DRIFT,
        subject=Subject("registered_model", model.name),
        summary=f"MLflow's '{OWNER_TAG}' tag of {model.name} does not name its owner here ({_account_ref(owner)}). "
        "The tag grants nothing; correct it in MLflow, or hand the model over here if the owner changed.",
        details={"model": model.name, "owner": _account_ref(owner), "tag": OWNER_TAG},
        actor=actor,
    )


def _reevaluate_version(version: ModelVersion, actor: Actor) -> None:
    for request in PromotionRequest.objects.filter(version=version, state=State.PENDING).order_by("pk"):
        promotion_reevaluate(request=request, actor=actor)


@transaction.atomic
def model_version_registrant_link(
    *, version: ModelVersion, account: User, actor: Actor, via_link: IdentityLink | None = None,
    token_id: int | None = None,
) -> ModelVersion:
    """Set the account the product knows registered ``version`` (through ``via_link`` or an API token).

    First trusted link wins: a version with another registrant is refused (``InvalidState``,
    code ``conflict``); the same one again changes and records nothing. Records
    ``model.version_registrant_linked`` and re-evaluates the version's pending requests.
    """
    if (via_link is None) == (token_id is None):
        raise GovernanceError("a registrant is linked through exactly one of an identity link or an API token")
    version = ModelVersion.objects.select_for_update(of=("self",)).select_related("model").get(pk=version.pk)
    if version.registered_by_id == account.pk:
        return version
    if version.registered_by_id is not None:
        raise InvalidState(
            f"{version.ref} was already reported as registered by another account "
            f"({_account_ref(version.registered_by_id)}, {version.registered_via.replace('_', ' ')}); "
            "the first trusted report stands",
            code="conflict",
        )
    via = VIA_IDENTITY_LINK if via_link is not None else VIA_API_TOKEN
    version.registered_by = account
    version.registered_via = via
    version.save(update_fields=["registered_by", "registered_via"])
    record(
        event_type="model.version_registrant_linked",
        actor=actor,
        subject=version_subject(version),
        payload={"model": version.model.name, "version": version.version, "registered_by": _account_ref(account),
                 "via": via, **({"link_id": via_link.pk} if via_link is not None else {}),
                 **({"token_id": token_id} if token_id is not None else {})},
    )
    _reevaluate_version(version, actor)
    return version


@transaction.atomic
def model_version_report_registered(
    *, user: User, version: ModelVersion, token_id: int, run_id: str
) -> ModelVersion:
    """A pipeline's API token reports "I registered this version": its service account becomes the registrant.

    Only a service account's token may report (a person's session is not a pipeline), naming
    the version's MLflow run id (it must be the one the registry mirror holds). The caller
    must be able to see the model (the API answers 404 otherwise). First report wins; a
    different account reporting later is refused 409 (``conflict``).
    """
    if not isinstance(token_id, int) or isinstance(token_id, bool):
        raise NotPermitted("only a pipeline's API token may report that it registered a version")
    if not _is_service_account(user) or not user.is_active:
        raise NotPermitted("only a service account's API token may report that it registered a version")
    run_id = (run_id or "").strip() if isinstance(run_id, str) else ""
    if not run_id:
        raise GovernanceError("run_id is required: the MLflow run the version was registered from", code="required")
    if run_id != version.run_id:
        raise GovernanceError(f"run_id does not match the MLflow run of {version.ref}", code="run_mismatch")
    return model_version_registrant_link(version=version, account=user, token_id=token_id, actor=Actor.user(user))


def _identity(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise GovernanceError("an MLflow identity (the registry's user id) is required", code="required")
    identity = str(value).strip()
    if len(identity) > MAX_IDENTITY or any(ord(c) < 0x20 or ord(c) == 0x7F for c in identity):
        raise GovernanceError(f"an MLflow identity has at most {MAX_IDENTITY} printable characters",
                              code="invalid_identity")
    return identity


@transaction.atomic
def identity_link_create(*, user: User, mlflow_identity: str, account: User, reason: str) -> IdentityLink:
    """InfoSec vouches that MLflow identity ``mlflow_identity`` is ``account``.

    Records ``mlflow.identity_linked`` (the identity as personal data of ``account``), then links
    the mirrored versions created by that identity that have no registrant yet. The link is only
    as strong as the MLflow server's authentication of ``user_id``.
    """
    _require_infosec(user, "link MLflow identities to accounts")
    identity = _identity(mlflow_identity)
    reason = _require_text(reason, "reason")
    if not isinstance(account, User) or account.pk is None or not account.is_active:
        raise GovernanceError("the linked account must be an active account", code="invalid_account")
    try:
        with transaction.atomic():
            link = IdentityLink.objects.create(mlflow_identity=identity, account=account, reason=reason,
                                               created_by=user)
    except IntegrityError:
        raise InvalidState("this MLflow identity is already linked; remove that link first", code="duplicate") from None
    record(
        event_type="mlflow.identity_linked",
        actor=Actor.user(user),
        subject=Subject("identity_link", str(link.pk)),
        payload={"link_id": link.pk, "mlflow_identity": identity, "account": _account_ref(account),
                 "reason": reason},
        data_subject=_account_ref(account),
    )
    for version in ModelVersion.objects.filter(creator=identity, registered_by__isnull=True).order_by("pk"):
        model_version_registrant_link(version=version, account=account, via_link=link, actor=Actor.user(user))
    return link


@transaction.atomic
def identity_link_remove(*, user: User, link: IdentityLink, reason: str) -> None:
    """InfoSec removes a link. Versions already linked keep their registrant (it was true when linked)."""
    _require_infosec(user, "remove MLflow identity links")
    reason = _require_text(reason, "reason")
    locked = IdentityLink.objects.select_for_update().filter(pk=link.pk).first()
    if locked is None:
        raise InvalidState("this identity link no longer exists", code="gone")
    link = locked
    record(
        event_type="mlflow.identity_unlinked",
        actor=Actor.user(user),
        subject=Subject("identity_link", str(link.pk)),
        payload={"link_id": link.pk, "account": _account_ref(link.account_id), "reason": reason},
    )
    link.delete()
