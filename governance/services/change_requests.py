"""Two-person control over the rules of protected environments.

A change to a protected environment (``Environment.protected``; production from the start) is
proposed by one InfoSec member and applied only when a *different person* in InfoSec approves
it; a service account counts as the person who owns it (``access.principals.same_person``), so
nobody approves their own proposal through their bot. The kinds of change:

- ``policy_set``: its default policy, or one model's policy there (``{"rules": {...}}``);
- ``environment_update``: its alias, data-classification ceiling, description or the Kubernetes
  namespaces the admission webhook governs under it (``kubernetes_namespaces``, the whole list);
- ``environment_create``: a new environment joining the path just below it;
- ``freeze_window_create``: a freeze window (``{"starts_at", "ends_at", "reason"}``, ISO 8601);
- ``environment_protection``: removing its protection (``{"protected": false}``): otherwise the
  side door would be to unprotect it and then change it in one step.

A proposal is validated when made (bad input is refused and nothing is written) and stored as it
will be applied. Approval applies exactly that, through the same checks and the same ``*_apply``
service functions as the one-step path, in the approval's transaction; the floor
(``POLICY_FLOOR``) is checked again then. ``base_digest`` pins the environment's rules (its
fields, protection, policies, and the promotion path) at proposal time: if they changed since, the
approval is refused as ``stale`` (409) and the proposer withdraws and proposes again. Every
transition writes its ledger entry (``governance_change.*``) with ``user:<id>`` references only.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from access import roles
from access.authn import require_recent_mfa
from access.principals import same_person
from access.roles import role_names
from access.services.checks import principal_label
from audit.canonical import canonical_json
from audit.ledger import Actor, Subject, record
from governance import lock_objects
from governance.errors import GovernanceError, InvalidState, NotPermitted
from governance.models import (
    Environment,
    EnvironmentNamespace,
    GovernanceChangeRequest,
    PromotionPolicy,
    RegisteredModel,
)
from governance.services import common
from governance.services import environments as environment_services

Kind = GovernanceChangeRequest.Kind
State = GovernanceChangeRequest.State

REASON_MAX = 5000
#: Who may read change requests: those who propose and decide them, and auditors.
READERS = frozenset({roles.INFOSEC, roles.AUDITOR})


# --- reading -------------------------------------------------------------------------------------


def may_see_change_requests(user: User | AnonymousUser) -> bool:
    return bool(user.is_authenticated and user.is_active and role_names(user) & READERS)


def change_requests_visible_to(user: User | AnonymousUser) -> QuerySet[GovernanceChangeRequest]:
    """Every change request for InfoSec and auditors, none for anybody else."""
    if not may_see_change_requests(user):
        return GovernanceChangeRequest.objects.none()
    return GovernanceChangeRequest.objects.select_related("environment", "model", "proposed_by", "decided_by")


def state_digests(
    environments: Iterable[Environment], *, every_environment: list[Environment] | None = None
) -> dict[int, str]:
    """The digest of each environment's rules: its fields and protection, its policies (model
    policies included), its Kubernetes namespaces and the whole promotion path. Three queries whatever
    the number, two when the caller already holds ``every_environment``.

    The namespaces enter the document only when there are some, so the digest of an environment without
    any is what it was before namespaces existed (proposals pending across the upgrade stay valid)."""
    envs = list(environments)
    everyone = every_environment if every_environment is not None else list(Environment.objects.all())
    path = sorted([e.name, e.order, e.mlflow_alias] for e in everyone)
    policies: dict[int, list[list[Any]]] = {e.pk: [] for e in envs}
    for env_id, model_id, rules in PromotionPolicy.objects.filter(environment__in=[e.pk for e in envs]).order_by(
        "environment_id", "model_id"
    ).values_list("environment_id", "model_id", "rules"):
        policies[env_id].append([model_id, rules])
    namespaces: dict[int, list[str]] = {e.pk: [] for e in envs}
    for env_id, namespace in EnvironmentNamespace.objects.filter(environment__in=[e.pk for e in envs]).order_by(
        "environment_id", "namespace"
    ).values_list("environment_id", "namespace"):
        namespaces[env_id].append(namespace)
    digests = {}
    for env in envs:
        doc = {
            "environment": [env.name, env.order, env.mlflow_alias, env.max_data_classification, env.description,
                            env.protected],
            "policies": policies[env.pk],
            "path": path,
        }
        if namespaces[env.pk]:
            doc["kubernetes_namespaces"] = namespaces[env.pk]
        digests[env.pk] = hashlib.sha256(canonical_json(doc).encode()).hexdigest()
    return digests


def state_digest(environment: Environment) -> str:
    return state_digests([environment])[environment.pk]


# --- validating a proposal -------------------------------------------------------------------------


def _when(value: Any, what: str) -> datetime:
    moment: datetime | None = value if isinstance(value, datetime) else None
    if moment is None and isinstance(value, str) and len(value) <= 40:
        try:
            moment = parse_datetime(value)
        except ValueError:  # well formed but impossible, e.g. month 13
            moment = None
    if moment is None:
        raise GovernanceError(f"the {what} must be an ISO 8601 date and time", code="invalid_window")
    if timezone.is_naive(moment):
        raise GovernanceError(f"the {what} must carry its time zone (e.g. 2026-12-20T00:00:00Z)",
                              code="invalid_window")
    return moment


def _only(change: dict[str, Any], allowed: set[str], kind: str) -> None:
    unknown = set(change) - allowed
    if unknown:
        raise GovernanceError(f"unknown field(s) for a {kind} change: {', '.join(sorted(unknown))}", code="invalid")


def _checked(
    kind: str, environment: Environment, model: RegisteredModel | None, change: Any
) -> dict[str, Any]:
    """The proposal as it will be applied, after the same checks as the one-step services."""
    if kind not in Kind.values:
        raise GovernanceError(f"unknown kind of change {kind!r}; kinds are {', '.join(Kind.values)}", code="invalid")
    if not isinstance(change, dict):
        raise GovernanceError("the change must be a JSON object", code="invalid")
    if model is not None and kind != Kind.POLICY_SET:
        raise GovernanceError("only a policy change names a model", code="invalid")
    if kind == Kind.POLICY_SET:
        _only(change, {"rules"}, kind)
        if "rules" not in change:
            raise GovernanceError("a policy change needs its 'rules'", code="invalid_policy")
        environment_services.policy_check(environment=environment, rules=change["rules"])
        return {"rules": change["rules"]}
    if kind == Kind.ENVIRONMENT_UPDATE:
        _only(change, {"max_data_classification", "mlflow_alias", "description", "kubernetes_namespaces"}, kind)
        if any(not isinstance(v, str) for k, v in change.items() if k != "kubernetes_namespaces"):
            raise GovernanceError("an environment's alias, ceiling and description are text", code="invalid")
        changes = environment_services.environment_changes(environment=environment, **change)
        if not changes:
            raise GovernanceError("nothing to change: give mlflow_alias, max_data_classification, description or "
                                  "kubernetes_namespaces (different from the current ones)", code="invalid")
        return changes
    if kind == Kind.ENVIRONMENT_CREATE:
        _only(change, {"name", "order", "mlflow_alias", "max_data_classification", "description"}, kind)
        fields = environment_services.environment_create_check(
            name=change.get("name", ""), order=change.get("order"),  # type: ignore[arg-type]
            mlflow_alias=change.get("mlflow_alias", ""),
            max_data_classification=change.get("max_data_classification", ""),
            description=change.get("description", ""),
        )
        above = environment_services.protected_above(fields["order"])
        if above is None or above.pk != environment.pk:
            raise GovernanceError(
                f"an environment at order {fields['order']} does not join the path just below {environment.name}",
                code="invalid_order",
            )
        return fields
    if kind == Kind.FREEZE_WINDOW_CREATE:
        _only(change, {"starts_at", "ends_at", "reason"}, kind)
        starts_at = _when(change.get("starts_at"), "start")
        ends_at = _when(change.get("ends_at"), "end")
        if not isinstance(change.get("reason", ""), str):
            raise GovernanceError("a freeze window's reason is text", code="invalid")
        reason = environment_services.freeze_window_check(starts_at=starts_at, ends_at=ends_at,
                                                          reason=change.get("reason", ""))
        return {"starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat(), "reason": reason}
    _only(change, {"protected"}, kind)
    if change.get("protected") is not False:
        raise GovernanceError("a protection change is {\"protected\": false}: protecting needs no second person",
                              code="invalid")
    return {"protected": False}


def _apply(request: GovernanceChangeRequest, environment: Environment, user: User) -> None:
    change = request.change
    if request.kind == Kind.POLICY_SET:
        environment_services.policy_apply(actor=user, environment=environment, rules=change["rules"],
                                          model=request.model)
    elif request.kind == Kind.ENVIRONMENT_UPDATE:
        environment_services.environment_apply(actor=user, environment=environment, changes=change)
    elif request.kind == Kind.ENVIRONMENT_CREATE:
        environment_services.environment_create_apply(actor=user, fields=change)
    elif request.kind == Kind.FREEZE_WINDOW_CREATE:
        environment_services.freeze_window_apply(
            actor=user, environment=environment, starts_at=_when(change["starts_at"], "start"),
            ends_at=_when(change["ends_at"], "end"), reason=change["reason"], created_by=request.proposed_by,
        )
    else:
        environment_services.environment_unprotect_apply(actor=user, environment=environment)


def _payload(request: GovernanceChangeRequest) -> dict[str, Any]:
    return {"change_request_id": request.pk, "kind": request.kind, "environment": request.environment.name,
            "model": request.model.name if request.model else None,
            "proposed_by": f"user:{request.proposed_by_id}"}


def _lock(request: GovernanceChangeRequest) -> GovernanceChangeRequest:
    # of=("self",): PostgreSQL cannot lock the nullable side of the outer join to ``model``; the
    # environment's row is locked on its own by the services that change it.
    return lock_objects.change_requests_lock().select_related(
        "environment", "model", "proposed_by").get(pk=request.pk)


def _close(request: GovernanceChangeRequest, state: str, user: User, note: str) -> None:
    """A pending request decided by ``user`` (applied, rejected or withdrawn); the caller holds its lock."""
    request.state = state
    request.decided_by = user
    request.decision_comment = note
    request.decided_at = timezone.now()
    request.save(update_fields=["state", "decided_by", "decision_comment", "decided_at"])


def _pending(request: GovernanceChangeRequest, what: str) -> None:
    if request.state != State.PENDING:
        raise InvalidState(f"change request #{request.pk} is {request.state}; only a pending one can be {what}")


def expiry_days() -> int:
    return int(settings.CHANGE_REQUEST_EXPIRY_DAYS)


def is_expired(request: GovernanceChangeRequest, now: datetime | None = None) -> bool:
    """Whether a pending proposal is older than ``CHANGE_REQUEST_EXPIRY_DAYS``, marked so or not yet."""
    if request.state == State.EXPIRED:
        return True
    return request.state == State.PENDING and request.created_at <= (now or timezone.now()) - timedelta(
        days=expiry_days())


# --- the services ----------------------------------------------------------------------------------


@transaction.atomic
def change_request_create(
    *, actor: User, environment: Environment, kind: str, change: Any, model: RegisteredModel | None = None,
    reason: str = "",
) -> GovernanceChangeRequest:
    """Propose a change to a protected environment. InfoSec only; the proposal is validated now
    (bad input, a policy below the floor: refused, nothing written) and applied on approval."""
    common.require_infosec(actor, "propose changes to protected environments")
    require_recent_mfa(actor=actor, action="proposing a change to a protected environment")
    if not isinstance(reason, str) or len(reason.strip()) > REASON_MAX:
        raise GovernanceError(f"the reason is text of at most {REASON_MAX} characters", code="too_long")
    reason = reason.strip()
    checked = _checked(kind, environment, model, change)
    locked = environment_services.lock_environment(environment)
    if not locked.protected:
        raise InvalidState(f"{locked.name} is not protected: change it directly, no second person is needed",
                           code="not_protected")
    request = GovernanceChangeRequest.objects.create(
        kind=kind, environment=locked, model=model, change=checked, base_digest=state_digest(locked),
        reason=reason, proposed_by=actor,
    )
    record(
        event_type="governance_change.requested",
        actor=Actor.user(actor),
        subject=Subject("environment", locked.name),
        payload={**_payload(request), "change": checked, "reason": reason},
    )
    return request


@transaction.atomic
def change_request_approve(
    *, actor: User, change_request: GovernanceChangeRequest, comment: str
) -> GovernanceChangeRequest:
    """A second InfoSec person approves: the proposal is applied, exactly as proposed, now.

    Refused (nothing written) for the proposer and their service accounts, anyone outside InfoSec,
    a request that is not pending, a stale one (the environment's rules changed since it was
    proposed) and a proposal that no longer passes its checks (say, a floor raised since)."""
    comment = common.require_text(comment, "comment")
    common.require_infosec(actor, "approve changes to protected environments")
    require_recent_mfa(actor=actor, action="approving a change to a protected environment")
    change_request = _lock(change_request)
    _pending(change_request, "approved")
    if is_expired(change_request):
        # The beat task may not have marked it yet: an approval must not revive a stale proposal.
        raise InvalidState(
            f"change request #{change_request.pk} expired: it was left pending more than {expiry_days()} days; "
            "propose the change again", code="expired")
    if same_person(actor, change_request.proposed_by):
        raise NotPermitted("you proposed this change, so a second InfoSec member must approve it",
                           code="self_approval")
    environment = environment_services.lock_environment(change_request.environment)
    if state_digest(environment) != change_request.base_digest:
        raise InvalidState(
            f"change request #{change_request.pk} is stale: the rules of {environment.name} changed since it was "
            "proposed; "
            f"withdraw it and propose the change again",
            code="stale",
        )
    if _checked(change_request.kind, environment, change_request.model, change_request.change) != change_request.change:
        raise InvalidState(f"change request #{change_request.pk} would no longer apply as proposed", code="stale")
    _apply(change_request, environment, actor)
    _close(change_request, State.APPLIED, actor, comment)
    record(
        event_type="governance_change.approved",
        actor=Actor.user(actor),
        subject=Subject("environment", environment.name),
        payload={**_payload(change_request), "approved_by": principal_label(actor), "comment": comment},
    )
    return change_request


@transaction.atomic
def change_request_reject(
    *, actor: User, change_request: GovernanceChangeRequest, comment: str
) -> GovernanceChangeRequest:
    """Another InfoSec person rejects the proposal (the proposer withdraws instead)."""
    comment = common.require_text(comment, "comment")
    common.require_infosec(actor, "reject changes to protected environments")
    change_request = _lock(change_request)
    _pending(change_request, "rejected")
    if same_person(actor, change_request.proposed_by):
        raise NotPermitted("you proposed this change: withdraw it rather than reject it", code="self_approval")
    _close(change_request, State.REJECTED, actor, comment)
    record(
        event_type="governance_change.rejected",
        actor=Actor.user(actor),
        subject=Subject("environment", change_request.environment.name),
        payload={**_payload(change_request), "rejected_by": principal_label(actor), "comment": comment},
    )
    return change_request


@transaction.atomic
def change_request_withdraw(
    *, actor: User, change_request: GovernanceChangeRequest, reason: str
) -> GovernanceChangeRequest:
    """The proposer (or a service account they own) withdraws their pending proposal."""
    reason = common.require_text(reason, "reason")
    change_request = _lock(change_request)
    if not same_person(actor, change_request.proposed_by):
        raise NotPermitted("only the person who proposed a change may withdraw it")
    _pending(change_request, "withdrawn")
    _close(change_request, State.WITHDRAWN, actor, reason)
    record(
        event_type="governance_change.withdrawn",
        actor=Actor.user(actor),
        subject=Subject("environment", change_request.environment.name),
        payload={**_payload(change_request), "reason": reason},
    )
    return change_request


@transaction.atomic
def change_request_expire(*, change_request: GovernanceChangeRequest, now: datetime | None = None) -> bool:
    """Expire a pending proposal older than ``CHANGE_REQUEST_EXPIRY_DAYS`` (the scheduler; no person acts).

    Returns whether it expired: anything else (not pending, not old enough) changes and records
    nothing, so running it again, or concurrently, is harmless. Records ``governance_change.expired``."""
    now = now or timezone.now()
    change_request = _lock(change_request)
    if change_request.state != State.PENDING or not is_expired(change_request, now):
        return False
    change_request.state = State.EXPIRED
    change_request.decided_at = now
    change_request.save(update_fields=["state", "decided_at"])
    record(
        event_type="governance_change.expired",
        actor=Actor.system("scheduler"),
        subject=Subject("environment", change_request.environment.name),
        payload={**_payload(change_request), "after_days": expiry_days()},
    )
    return True


def change_requests_due(now: datetime | None = None) -> list[int]:
    """Ids of the pending proposals old enough to expire (what the beat task hands the service)."""
    cutoff = (now or timezone.now()) - timedelta(days=expiry_days())
    return list(GovernanceChangeRequest.objects.filter(state=State.PENDING, created_at__lte=cutoff)
                .order_by("pk").values_list("pk", flat=True))
