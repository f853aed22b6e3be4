"""Time-bound grants: create, revoke, expire; each mirrored into django-guardian.

Every state change is one of these functions: keyword-only, ``@transaction.atomic``,
checking who may do it first and writing its ledger entry in the same
transaction. A refusal raises an ``access.errors.AccessError`` (``NotPermitted``,
``InvalidState``) before anything is written.

Our ``Grant`` table is the source of truth. Each change is mirrored into
django-guardian's direct foreign-key tables in the same transaction, so
``user.has_perm("access.read_data", dataset)`` agrees with ``access.services.checks.check``.
A guardian row stays while at least one active grant backs it (overlapping grants).

Lifecycle of a grant (no extra columns: ``revoked_at`` closes a grant either way):

* active: ``revoked_at`` is null and ``expires_at`` is in the future;
* lapsed: ``expires_at`` has passed but ``grants_expire`` has not run yet. ``check()``
  already denies (it compares ``expires_at`` to the clock); guardian still has the row
  for at most one beat interval (30 s);
* expired: closed by ``grants_expire`` with ``revoked_at = expires_at``, no
  ``revoked_by``, ``revoke_reason = "expired"``;
* revoked: closed before its expiry, so ``revoked_at < expires_at`` (a revocation at or
  after ``expires_at`` is refused: the grant has already ended).

Locks: every grant change first locks the resource row (``select_for_update``), so
the "is another active grant still backing this guardian row?" question cannot race a
concurrent grant on the same resource. Several resources are locked in
``(resource_type, id)`` order.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from access import roles
from access.authn import require_recent_mfa
from access.classification import RESTRICTED
from access.errors import AccessError, InvalidState, NotPermitted
from access.lock_objects import grant_lock, grants_lock, resource_lock, resources_lock
from access.models import (
    RESOURCE_PERMISSIONS,
    AccessRequest,
    Grant,
    ServiceAccount,
)
from access.principals import account_ids, same_person
from access.resources import (
    Principal,
    Resource,
    duration_what,
    guardian_perm,
    max_duration_days,
    needs_infosec,
    resource_kind,
    resource_label,
    resource_level,
    resource_owner_id,
    resource_subject,
)
from access.roles import has_role
from access.services.checks import principal_label
from access.services.inputs import require_active, require_aware, require_text
from audit.canonical import format_timestamp
from audit.ledger import Actor, Event, record, record_many

EXPIRED_REASON = "expired"


def check_permission_applies(resource_type: str, permission: str) -> None:
    allowed = RESOURCE_PERMISSIONS[resource_type]
    if permission not in allowed:
        raise AccessError(
            f"{permission!r} does not apply to a {resource_type}; use one of {', '.join(allowed)}",
            code="invalid_permission",
        )


def _may_grant_directly(user: User, resource: Resource) -> bool:
    if has_role(user, roles.INFOSEC):
        return True
    owner_id = resource_owner_id(resource)
    return owner_id is not None and owner_id == user.pk and not needs_infosec(resource)


def require_may_grant_directly(user: User, resource: Resource) -> None:
    """Raise ``NotPermitted`` unless ``user`` may grant on ``resource`` without an access request (InfoSec,
    or the owner of a resource that needs no InfoSec approval). ``grant_create`` refuses by it; the API and
    the console ask it *before* resolving the principal, so a caller who may not grant learns nothing about
    which names exist."""
    if not _may_grant_directly(user, resource):
        raise NotPermitted(
            f"only InfoSec may grant access to {resource_label(resource)}"
            if needs_infosec(resource) else
            f"only InfoSec or the owner of {resource_label(resource)} may grant access to it"
        )


def _principal_of(grant: Grant) -> Principal:
    if grant.user_id is not None:
        assert grant.user is not None
        return grant.user
    assert grant.group is not None
    return grant.group


def require_mfa_if_restricted(actor: User, resource: Resource, action: str) -> None:
    """``access.authn.require_recent_mfa`` for ``action`` when ``resource`` is classified restricted
    (its level as ``resource_level`` reads it now: a dataset whose classification rose since a request
    was made counts as restricted). Callers hold the resource's lock so the level cannot change meanwhile."""
    if resource_level(resource) == RESTRICTED:
        require_recent_mfa(actor=actor, action=action)


def grant_principal_label(grant: Grant) -> str:
    return principal_label(_principal_of(grant))


def _mirror_add(grant: Grant, resource: Resource) -> None:
    assign_perm(guardian_perm(grant.resource_type, grant.permission), _principal_of(grant), resource)


def _principal_filter(grant: Grant) -> dict[str, int]:
    if grant.user_id is not None:
        return {"user_id": grant.user_id}
    assert grant.group_id is not None
    return {"group_id": grant.group_id}


def _still_backed(grant: Grant, now: datetime) -> bool:
    return (
        Grant.objects.filter(
            **_principal_filter(grant), resource_type=grant.resource_type, resource_id=grant.resource_id,
            permission=grant.permission, revoked_at__isnull=True, expires_at__gt=now,
        )
        .exclude(pk=grant.pk)
        .exists()
    )


def _mirror_remove(grant: Grant, resource: Resource, now: datetime) -> None:
    """Remove the guardian row unless another active grant gives the same principal the same access."""
    if not _still_backed(grant, now):
        remove_perm(guardian_perm(grant.resource_type, grant.permission), _principal_of(grant), resource)


def _grant_payload(grant: Grant, resource: Resource) -> dict[str, Any]:
    return {"grant_id": grant.pk, "principal": grant_principal_label(grant), "resource": resource_label(resource),
            "permission": grant.permission}


def _check_principal(principal: Any, granted_by: User) -> None:
    if isinstance(principal, Group):
        if principal.pk is None:
            raise AccessError("the group does not exist", code="invalid_principal")
        # Membership through one of the granter's service accounts counts too: alice-bot in the
        # group would hold the access for alice.
        if principal.user_set.filter(pk__in=account_ids(granted_by)).exists():
            raise NotPermitted(
                f"you or a service account you own are a member of group {principal.name}, so granting it "
                "access would grant yourself",
                code="self_grant",
            )
        return
    if not isinstance(principal, User) or principal.pk is None:
        raise AccessError("a grant is to a user, a service account's user or a group", code="invalid_principal")
    if principal.pk == granted_by.pk:
        raise NotPermitted("you cannot grant access to yourself; ask for it instead", code="self_grant")
    if same_person(principal, granted_by):
        raise NotPermitted(
            "you own this service account, so granting it access would grant yourself; ask for it instead",
            code="self_grant",
        )
    if not principal.is_active:
        raise AccessError(f"user {principal.pk} is inactive", code="inactive_principal")
    if ServiceAccount.objects.filter(user=principal, disabled_at__isnull=False).exists():
        raise AccessError("the service account is disabled", code="inactive_principal")


def _check_request_backs(
    request: AccessRequest, granted_by: User, principal: Principal, resource_type: str, resource_id: int,
    permission: str,
) -> None:
    """An approved request authorises the grant it asked for, made by one of its approvers, once."""
    request = AccessRequest.objects.get(pk=request.pk)
    matches = (
        isinstance(principal, User) and request.principal_user_id == principal.pk
        and request.resource_type == resource_type and request.resource_id == resource_id
        and request.permission == permission
    )
    if not matches:
        raise AccessError(f"the grant does not match access request #{request.pk}", code="request_mismatch")
    if request.state != AccessRequest.State.APPROVED:
        raise InvalidState(f"access request #{request.pk} is {request.state}, not approved")
    if granted_by.pk not in (request.owner_approved_by_id, request.infosec_approved_by_id):
        raise NotPermitted(f"only an approver of access request #{request.pk} may grant it")
    if request.grants.exists():
        raise InvalidState(f"access request #{request.pk} has already been granted")


def _check_expiry(expires_at: datetime, now: datetime, resource: Resource) -> None:
    if expires_at <= now:
        raise AccessError("a grant must expire in the future", code="invalid_expiry")
    level = resource_level(resource)
    days = max_duration_days(resource, level)
    if expires_at > now + timedelta(days=days):
        what = duration_what(resource, level)
        raise AccessError(
            f"a grant on {what} may last at most {days} days; ask for a shorter one", code="duration_too_long"
        )


@transaction.atomic
def grant_create(
    *,
    actor: User,
    principal: Principal,
    resource: Resource,
    permission: str,
    expires_at: datetime,
    justification: str,
    access_request: AccessRequest | None = None,
) -> Grant:
    """Give ``principal`` ``permission`` on ``resource`` until ``expires_at``, and mirror it into guardian.

    Directly: InfoSec, or the owner of a dataset (not restricted, no PCI data) or of a
    registered model. Through ``request``: one of the approvers of that approved request.
    On restricted data (``resource_level``) it needs a recent second factor when ``MFA_REQUIRED``
    (``require_mfa_if_restricted``), checked under the resource's lock before the grant is written.
    """
    require_active(actor)
    resource_type = resource_kind(resource)
    check_permission_applies(resource_type, permission)
    justification = require_text(justification, "justification")
    expires_at = require_aware(expires_at, "expires_at")
    _check_principal(principal, actor)
    resource = resource_lock(resource_type, resource.pk)
    if access_request is None:
        require_may_grant_directly(actor, resource)
    else:
        _check_request_backs(access_request, actor, principal, resource_type, resource.pk, permission)
    now = timezone.now()
    _check_expiry(expires_at, now, resource)
    require_mfa_if_restricted(actor, resource, "granting access to restricted data")
    grant = Grant.objects.create(
        user=principal if isinstance(principal, User) else None,
        group=principal if isinstance(principal, Group) else None,
        resource_type=resource_type,
        resource_id=resource.pk,
        permission=permission,
        expires_at=expires_at,
        justification=justification,
        granted_by=actor,
        request=access_request,
    )
    _mirror_add(grant, resource)
    record(
        event_type="access.grant_created",
        actor=Actor.user(actor),
        subject=resource_subject(resource),
        payload={**_grant_payload(grant, resource), "expires_at": format_timestamp(expires_at),
                 "justification": justification,
                 "request_id": access_request.pk if access_request is not None else None},
    )
    return grant


def _may_revoke(user: User, grant: Grant, resource: Resource) -> bool:
    if has_role(user, roles.INFOSEC):
        return True
    return user.pk in (resource_owner_id(resource), grant.granted_by_id)


def _close(grant: Grant, resource: Resource, *, at: datetime, by: User | None, reason: str) -> None:
    grant.revoked_at = at
    grant.revoked_by = by
    grant.revoke_reason = reason[:300]
    grant.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
    _mirror_remove(grant, resource, at)


def revoke_locked(grant: Grant, resource: Resource, *, now: datetime, by: User | None, reason: str,
                   actor: Actor) -> None:
    _close(grant, resource, at=now, by=by, reason=reason)
    record(
        event_type="access.grant_revoked",
        actor=actor,
        subject=resource_subject(resource),
        payload={**_grant_payload(grant, resource), "reason": grant.revoke_reason},
    )


def _require_open(grant: Grant, now: datetime) -> None:
    if grant.revoked_at is not None:
        ended = "expired" if grant.revoked_at >= grant.expires_at else "been revoked"
        raise InvalidState(f"grant #{grant.pk} has already {ended}")
    if grant.expires_at <= now:
        raise InvalidState(f"grant #{grant.pk} has already expired")


@transaction.atomic
def grant_revoke(*, actor: User, grant: Grant, reason: str) -> Grant:
    """End a grant now. InfoSec, the resource's owner or whoever granted it. Effective at once, in guardian too."""
    require_active(actor)
    reason = require_text(reason, "reason", max_length=300)
    current = Grant.objects.filter(pk=grant.pk).values_list("resource_type", "resource_id").first()
    if current is None:
        raise AccessError(f"grant #{grant.pk} does not exist", code="not_found")
    resource = resource_lock(*current)
    locked = grant_lock(grant)
    if not _may_revoke(actor, locked, resource):
        raise NotPermitted(
            f"only InfoSec, the owner of {resource_label(resource)} or the granter may revoke this grant"
        )
    now = timezone.now()
    _require_open(locked, now)
    revoke_locked(locked, resource, now=now, by=actor, reason=reason, actor=Actor.user(actor))
    return locked


@transaction.atomic
def grants_expire(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Close every active grant whose ``expires_at`` has passed (at most ``limit``) and remove its guardian row
    unless another active grant backs it. Returns how many were closed; idempotent (system)."""
    now = now or timezone.now()
    due = list(
        Grant.objects.filter(revoked_at__isnull=True, expires_at__lte=now)
        .order_by("expires_at", "pk")
        .values_list("pk", "resource_type", "resource_id")[:limit]
    )
    if not due:
        return 0
    resources = resources_lock((t, r) for _, t, r in due)
    grants = grants_lock(
        Grant.objects.filter(pk__in=[pk for pk, _, _ in due], revoked_at__isnull=True, expires_at__lte=now)
    )
    events = []
    for grant in grants:
        resource = resources.get((grant.resource_type, grant.resource_id))
        if resource is None:  # the resource row is gone (guardian's rows went with it)
            grant.revoked_at, grant.revoke_reason = grant.expires_at, EXPIRED_REASON
            grant.save(update_fields=["revoked_at", "revoke_reason"])
            continue
        _close(grant, resource, at=grant.expires_at, by=None, reason=EXPIRED_REASON)
        events.append(Event(
            event_type="access.grant_expired",
            actor=Actor.system("access-expiry"),
            subject=resource_subject(resource),
            payload={**_grant_payload(grant, resource), "expired_at": format_timestamp(grant.expires_at)},
        ))
    if events:
        record_many(events)
    return len(grants)
