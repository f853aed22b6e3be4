"""An environment's rules: its fields, protection, promotion policies and freeze windows.

Every direct change here is a policy change in the sense of docs/identity.md: besides InfoSec it
needs a recent second factor when ``MFA_REQUIRED`` (``access.authn.require_recent_mfa``, checked right
after the role and before anything is locked or written).

The rules of a *protected* environment change only through ``governance.services.change_requests``
(a second InfoSec member approves); the direct services here refuse such changes (409
``two_person_required``). Each is split into a check (validation, no write) and an apply (write and
record), so a change request validates its proposal when it is made and again when it is approved.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import models, transaction
from django.utils import timezone

from access.authn import require_recent_mfa
from access.classification import LEVELS
from audit.ledger import Actor, Subject, record
from governance import lock_objects
from governance.errors import GovernanceError, InvalidState
from governance.models import (
    Environment,
    EnvironmentNamespace,
    FreezeWindow,
    PromotionPolicy,
    RegisteredModel,
)
from governance.policy import (
    Policy,
    PolicyError,
    parse_policy,
)
from governance.policy_floor import floor_for, floor_problems
from governance.services.common import require_infosec, require_text


def lock_environment(environment: Environment) -> Environment:
    """The environment's row, locked: changes to one environment's rules serialise, and the
    ``protected`` flag read is the committed one, not a stale copy the caller holds."""
    return lock_objects.environments_lock().get(pk=environment.pk)


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
    *, actor: User, environment: Environment, rules: Any, model: RegisteredModel | None
) -> PromotionPolicy:
    """Write a checked policy and record it. Callers check and hold the environment's lock."""
    policy, created = PromotionPolicy.objects.update_or_create(
        environment=environment, model=model, defaults={"rules": rules}
    )
    record(
        event_type="policy.updated",
        actor=Actor.user(actor),
        subject=Subject("environment", environment.name),
        payload={"environment": environment.name, "model": model.name if model else None, "rules": rules,
                 "created": created},
    )
    return policy


@transaction.atomic
def policy_set(
    *, actor: User, environment: Environment, rules: Any, model: RegisteredModel | None = None
) -> PromotionPolicy:
    """Create or replace the policy of an unprotected environment (or of one model in it). InfoSec only.

    Refuses a protected environment (``two_person_required``: see ``governance.services.change_requests``)
    and any policy below the floor."""
    require_infosec(actor, "change promotion policies")
    require_recent_mfa(actor=actor, action="changing a promotion policy")
    policy_check(environment=environment, rules=rules)
    environment = lock_environment(environment)
    _refuse_if_protected(environment, "changing its policies")
    return policy_apply(actor=actor, environment=environment, rules=rules, model=model)


#: A Kubernetes namespace name: an RFC 1123 DNS label (what the API server accepts for a namespace).
NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
#: The most namespaces one environment governs (a bound on the list a change request carries).
MAX_NAMESPACES = 100


def namespaces_check(*, environment: Environment, namespaces: Any) -> list[str]:
    """The namespaces, sorted and de-duplicated; refuses a malformed list, a name that is not a DNS label,
    and a namespace another environment governs (one namespace maps to at most one environment). Writes nothing.
    """
    if not isinstance(namespaces, list | tuple) or not all(isinstance(n, str) for n in namespaces):
        raise GovernanceError("kubernetes_namespaces is a list of namespace names", code="invalid_namespaces")
    names = sorted({n.strip() for n in namespaces})
    if len(names) > MAX_NAMESPACES:
        raise GovernanceError(f"an environment governs at most {MAX_NAMESPACES} namespaces",
                              code="invalid_namespaces")
    bad = [n for n in names if not NAMESPACE_RE.match(n)]
    if bad:
        raise GovernanceError(f"not a Kubernetes namespace name (a DNS label of at most 63 characters): "
                              f"{', '.join(repr(n[:70]) for n in bad[:5])}", code="invalid_namespaces")
    taken = list(EnvironmentNamespace.objects.filter(namespace__in=names).exclude(environment=environment)
                 .select_related("environment").order_by("namespace")[:5])
    if taken:
        raise GovernanceError("namespace(s) already governed by another environment: " + ", ".join(
            f"{t.namespace} ({t.environment.name})" for t in taken), code="duplicate")
    return names


def namespaces_of(environment: Environment) -> list[str]:
    return list(EnvironmentNamespace.objects.filter(environment=environment).order_by("namespace")
                .values_list("namespace", flat=True))


def _namespaces_apply(environment: Environment, names: Sequence[str]) -> None:
    """Replace the environment's namespaces (the caller holds its lock). A namespace another environment took
    since the check fails the unique constraint: the whole change rolls back, nothing half-applied."""
    EnvironmentNamespace.objects.filter(environment=environment).exclude(namespace__in=names).delete()
    have = set(namespaces_of(environment))
    EnvironmentNamespace.objects.bulk_create(
        [EnvironmentNamespace(environment=environment, namespace=n) for n in names if n not in have])


def environment_changes(
    *, environment: Environment, max_data_classification: str | None = None, mlflow_alias: str | None = None,
    description: str | None = None, kubernetes_namespaces: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The validated changes (only the fields given, and only what differs for the namespaces); refuses bad
    values. Writes nothing."""
    changes: dict[str, Any] = {}
    if kubernetes_namespaces is not None:
        names = namespaces_check(environment=environment, namespaces=kubernetes_namespaces)
        if names != namespaces_of(environment):
            changes["kubernetes_namespaces"] = names
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


def environment_apply(*, actor: User, environment: Environment, changes: dict[str, Any]) -> Environment:
    """Write checked changes and record them. Callers check and hold the environment's lock.

    ``kubernetes_namespaces`` replaces the namespaces the admission webhook governs under this environment
    (the entry's ``changes`` carries the new list and ``previous_namespaces`` the old one)."""
    fields = {k: v for k, v in changes.items() if k != "kubernetes_namespaces"}
    payload_changes = dict(changes)
    if "kubernetes_namespaces" in changes:
        payload_changes["previous_namespaces"] = namespaces_of(environment)
        _namespaces_apply(environment, changes["kubernetes_namespaces"])
    for key, value in fields.items():
        setattr(environment, key, value)
    if fields:
        environment.save(update_fields=list(fields))
    record(
        event_type="environment.updated",
        actor=Actor.user(actor),
        subject=Subject("environment", environment.name),
        payload={"environment": environment.name, "changes": payload_changes},
    )
    return environment


@transaction.atomic
def environment_update(
    *, actor: User, environment: Environment, max_data_classification: str | None = None,
    mlflow_alias: str | None = None, description: str | None = None,
    kubernetes_namespaces: Sequence[str] | None = None,
) -> Environment:
    """Change an unprotected environment's alias, ceiling, description or Kubernetes namespaces (the whole
    list, replaced). InfoSec only; a protected environment is refused (``two_person_required``)."""
    require_infosec(actor, "change environments")
    require_recent_mfa(actor=actor, action="changing an environment")
    locked = lock_environment(environment)
    _refuse_if_protected(locked, "changing it")
    # Checked under the lock: the namespaces compared are the committed ones.
    changes = environment_changes(environment=locked, max_data_classification=max_data_classification,
                                  mlflow_alias=mlflow_alias, description=description,
                                  kubernetes_namespaces=kubernetes_namespaces)
    if not changes:
        return environment
    environment_apply(actor=actor, environment=locked, changes=changes)
    for key, value in changes.items():  # the caller's copy says what was saved
        if key != "kubernetes_namespaces":
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


def environment_create_apply(*, actor: User, fields: dict[str, Any]) -> Environment:
    """Create a checked environment and record it."""
    environment = Environment.objects.create(**fields)
    record(
        event_type="environment.created",
        actor=Actor.user(actor),
        subject=Subject("environment", environment.name),
        payload={"environment": environment.name, "order": environment.order,
                 "mlflow_alias": environment.mlflow_alias,
                 "max_data_classification": environment.max_data_classification},
    )
    return environment


@transaction.atomic
def environment_create(
    *, actor: User, name: str, order: int, mlflow_alias: str, max_data_classification: str, description: str = ""
) -> Environment:
    """Add an environment to the promotion path (e.g. ``pre-prod`` between staging and production). InfoSec only.

    One joining the path below a protected environment changes that environment's path, so it is
    refused (``two_person_required``) and goes through a change request of that environment."""
    require_infosec(actor, "add environments")
    require_recent_mfa(actor=actor, action="adding an environment")
    fields = environment_create_check(name=name, order=order, mlflow_alias=mlflow_alias,
                                      max_data_classification=max_data_classification, description=description)
    above = protected_above(fields["order"])
    if above is not None:
        lock_environment(above)
        _refuse_if_protected(above, f"adding an environment to the path below {above.name}")
    return environment_create_apply(actor=actor, fields=fields)


@transaction.atomic
def environment_protect(*, actor: User, environment: Environment) -> Environment:
    """Protect an environment (two-person control from now on). InfoSec only, in one step: it only
    tightens. Removing protection is itself a protected change (a change request)."""
    require_infosec(actor, "protect environments")
    require_recent_mfa(actor=actor, action="protecting an environment")
    locked = lock_environment(environment)
    if not locked.protected:
        locked.protected = True
        locked.save(update_fields=["protected"])
        record(
            event_type="environment.protection_changed",
            actor=Actor.user(actor),
            subject=Subject("environment", locked.name),
            payload={"environment": locked.name, "protected": True},
        )
    environment.protected = True
    return environment


def environment_unprotect_apply(*, actor: User, environment: Environment) -> Environment:
    """Remove protection, as approved by a change request. Callers hold the environment's lock."""
    environment.protected = False
    environment.save(update_fields=["protected"])
    record(
        event_type="environment.protection_changed",
        actor=Actor.user(actor),
        subject=Subject("environment", environment.name),
        payload={"environment": environment.name, "protected": False},
    )
    return environment


FREEZE_REASON_MAX = 300


def freeze_window_check(*, starts_at: datetime, ends_at: datetime, reason: str) -> str:
    """The window's reason, trimmed; refuses a window that is backwards, over, or unexplained."""
    reason = require_text(reason, "reason")
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
    *, actor: User, environment: Environment, starts_at: datetime, ends_at: datetime, reason: str,
    created_by: User | None = None,
) -> FreezeWindow:
    """Create a checked freeze window and record it (``created_by``: who declared it, default ``user``)."""
    freeze = FreezeWindow.objects.create(
        environment=environment, starts_at=starts_at, ends_at=ends_at, reason=reason, created_by=created_by or actor
    )
    record(
        event_type="environment.freeze_declared",
        actor=Actor.user(actor),
        subject=Subject("environment", environment.name),
        payload={"environment": environment.name, "starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat(),
                 "reason": reason},
    )
    return freeze


@transaction.atomic
def freeze_window_create(
    *, actor: User, environment: Environment, starts_at: datetime, ends_at: datetime, reason: str
) -> FreezeWindow:
    """Declare a freeze window of an unprotected environment. InfoSec only; a protected environment
    is refused (``two_person_required``)."""
    require_infosec(actor, "declare freeze windows")
    require_recent_mfa(actor=actor, action="declaring a freeze window")
    reason = freeze_window_check(starts_at=starts_at, ends_at=ends_at, reason=reason)
    locked = lock_environment(environment)
    _refuse_if_protected(locked, "declaring a freeze window")
    return freeze_window_apply(actor=actor, environment=locked, starts_at=starts_at, ends_at=ends_at, reason=reason)
