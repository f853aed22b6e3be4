"""Access requests: ask for access, approve (the owner and/or InfoSec), reject, withdraw.

The last approval creates the grant (``access.services.grants.grant_create``).
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from access import roles
from access.errors import AccessError, InvalidState, NotPermitted
from access.lock_objects import access_request_lock, resource_lock
from access.models import (
    AccessRequest,
    ServiceAccount,
)
from access.principals import account_ids, person_ids, same_person
from access.resources import (
    Resource,
    duration_what,
    get_resource,
    max_duration_days,
    needs_infosec,
    resource_kind,
    resource_label,
    resource_level,
    resource_owner_id,
    resource_subject,
)
from access.roles import has_role, role_names
from access.services.checks import principal_label
from access.services.grants import (
    check_permission_applies,
    grant_create,
    require_mfa_if_restricted,
)
from access.services.inputs import TEXT_MAX, require_active, require_text
from audit.ledger import Actor, Subject, record


def may_request_access(user: User) -> bool:
    """Anyone with a governance role may ask for access (``access_request_create`` refuses others)."""
    return bool(role_names(user) & frozenset(roles.ROLES))


OWNER = "owner"


INFOSEC = "infosec"


INFOSEC_FOR_OWNER = "infosec_for_owner"


def approval_slot(
    *, user: User, request: AccessRequest, owner_id: int | None, needs_infosec: bool, infosec: bool,
    accounts: set[int] | None = None, persons: Mapping[int, int] | None = None,
) -> str | None:
    """The approval ``user`` may give ``request`` now: ``owner``, ``infosec``, ``infosec_for_owner``, or None.

    The owner's approval is needed when the resource has an owner; InfoSec's when
    ``needs_infosec``. InfoSec stands in for an owner who cannot approve (they asked,
    or the access is for them). One person fills one slot; the requester and the
    principal fill none, nor do their service accounts or owners (one person, see ``access.principals``).
    ``accounts``: ``account_ids(user)``, and ``persons``: ``person_ids`` of the requester, principal and
    owner, when the caller already has them (a list of many requests).
    """
    if request.state != AccessRequest.State.PENDING or not user.is_active:
        return None
    mine = account_ids(user) if accounts is None else accounts
    if request.requester_id in mine or request.principal_user_id in mine:
        return None
    # One person fills one slot: alice as owner and alice-bot as InfoSec would be one approval.
    if mine & {request.owner_approved_by_id, request.infosec_approved_by_id}:
        return None
    owner_open = owner_id is not None and request.owner_approved_by_id is None
    infosec_open = needs_infosec and request.infosec_approved_by_id is None
    if owner_open and user.pk == owner_id:
        return OWNER
    if infosec and infosec_open:
        return INFOSEC
    if infosec and owner_open and owner_id is not None and _owner_is_party(owner_id, request, persons):
        return INFOSEC_FOR_OWNER
    return None


def approvals_complete(request: AccessRequest, *, owner_id: int | None, needs_infosec: bool) -> bool:
    owner_done = owner_id is None or request.owner_approved_by_id is not None
    infosec_done = not needs_infosec or request.infosec_approved_by_id is not None
    return owner_done and infosec_done


def approvals_needed(request: AccessRequest, resource: Resource) -> list[dict[str, object]]:
    """The approvals ``request`` needs under ``access_request_approve``'s rule, each with who gave it (None:
    still missing): the resource owner's (InfoSec stands in when the owner asked or the access is for them)
    and InfoSec's when the data is restricted or PCI, the request is for an environment, or it was asked so.
    A read for the console's request page; the classification is read as it is now, as approving would."""
    owner_id = resource_owner_id(resource)
    needs = request.needs_infosec or needs_infosec(resource)
    slots: list[dict[str, object]] = []
    if owner_id is not None:
        stand_in = _owner_is_party(owner_id, request)
        slots.append({
            "slot": OWNER,
            "who": "InfoSec, in place of the owner (who asked, or the access is for them)" if stand_in
            else "the owner of " + resource_label(resource),
            "by": request.owner_approved_by,
        })
    if needs:
        slots.append({"slot": INFOSEC, "who": "InfoSec (restricted or PCI data, or a resource without an owner)",
                      "by": request.infosec_approved_by})
    return slots


def _owner_is_party(owner_id: int, request: AccessRequest, persons: Mapping[int, int] | None = None) -> bool:
    """Whether the resource's owner is, as a person, the requester or the principal (then InfoSec stands in)."""
    if owner_id in (request.requester_id, request.principal_user_id):
        return True
    ids = (owner_id, request.requester_id, request.principal_user_id)
    if persons is None or not all(i in persons for i in ids):
        persons = person_ids(ids)
    return persons[owner_id] in (persons[request.requester_id], persons[request.principal_user_id])


def _is_party(user: User, request: AccessRequest) -> bool:
    """Whether ``user`` is, as a person, the requester or the principal of ``request``."""
    mine = account_ids(user)
    return request.requester_id in mine or request.principal_user_id in mine


def _through(user: User, request: AccessRequest) -> str:
    """The refusal's precision when the party is another account of the same person."""
    return "" if user.pk in (request.requester_id, request.principal_user_id) else " (through a service account)"


def _request_resource(request: AccessRequest, *, lock: bool) -> Resource:
    if lock:
        return resource_lock(request.resource_type, request.resource_id)
    return get_resource(request.resource_type, request.resource_id)


def _request_subject(request: AccessRequest) -> Subject:
    try:
        return resource_subject(get_resource(request.resource_type, request.resource_id))
    except AccessError:
        return Subject(request.resource_type, str(request.resource_id))


@transaction.atomic
def access_request_create(
    *,
    actor: User,
    resource: Resource,
    permission: str,
    duration_days: int,
    justification: str,
    for_service_account: ServiceAccount | None = None,
) -> AccessRequest:
    """Ask for ``permission`` on ``resource`` for ``duration_days`` (for yourself or a service account you own).

    Anyone with a governance role may ask. The duration may not exceed the maximum
    for the resource's classification.
    """
    require_active(actor)
    if not may_request_access(actor):
        raise NotPermitted("only people with a governance role may ask for access", code="no_role")
    resource_type = resource_kind(resource)
    check_permission_applies(resource_type, permission)
    justification = require_text(justification, "justification")
    if isinstance(duration_days, bool) or not isinstance(duration_days, int) or duration_days < 1:
        raise AccessError("the duration is a whole number of days, at least 1", code="invalid_duration")
    resource = get_resource(resource_type, resource.pk)
    level = resource_level(resource)
    days = max_duration_days(resource, level)
    if duration_days > days:
        what = duration_what(resource, level)
        raise AccessError(f"access to {what} may last at most {days} days", code="duration_too_long")
    principal = actor
    if for_service_account is not None:
        account = ServiceAccount.objects.select_related("user").filter(pk=for_service_account.pk).first()
        if account is None:
            raise AccessError("the service account does not exist", code="not_found")
        if account.owner_id != actor.pk and not has_role(actor, roles.INFOSEC):
            raise NotPermitted(f"only the owner of service account {account.name} or InfoSec may ask for it")
        if account.disabled_at is not None or not account.user.is_active:
            raise AccessError(f"service account {account.name} is disabled", code="inactive_principal")
        principal = account.user
    duplicate = AccessRequest.objects.filter(
        state=AccessRequest.State.PENDING, principal_user=principal, resource_type=resource_type,
        resource_id=resource.pk, permission=permission,
    )
    if duplicate.exists():
        raise AccessError("the same access is already requested and pending", code="duplicate")
    needs = needs_infosec(resource)
    request = AccessRequest.objects.create(
        requester=actor, principal_user=principal, resource_type=resource_type, resource_id=resource.pk,
        permission=permission, duration_days=duration_days, justification=justification, needs_infosec=needs,
    )
    record(
        event_type="access.request_created",
        actor=Actor.user(actor),
        subject=resource_subject(resource),
        payload={"request_id": request.pk, "principal": principal_label(principal),
                 "resource": resource_label(resource), "permission": permission, "duration_days": duration_days,
                 "justification": justification, "needs_infosec": needs},
    )
    return request


@transaction.atomic
def access_request_approve(*, actor: User, access_request: AccessRequest, comment: str) -> AccessRequest:
    """Approve as the resource's owner or as InfoSec. With every needed approval in, the grant is created
    (by this, the last, approver) for ``duration_days`` from now."""
    require_active(actor)
    comment = require_text(comment, "comment")
    access_request = access_request_lock(access_request)
    if access_request.state != AccessRequest.State.PENDING:
        raise InvalidState(f"access request #{access_request.pk} is {access_request.state}")
    if _is_party(actor, access_request):
        raise NotPermitted("you cannot approve access you asked for or that is for you"
                           + _through(actor, access_request),
                           code="self_approval")
    resource = _request_resource(access_request, lock=True)
    owner_id = resource_owner_id(resource)
    needs = access_request.needs_infosec or needs_infosec(resource)  # classification may have risen since the request
    slot = approval_slot(user=actor, request=access_request, owner_id=owner_id, needs_infosec=needs,
                         infosec=has_role(actor, roles.INFOSEC))
    if slot is None:
        approvers = (access_request.owner_approved_by_id, access_request.infosec_approved_by_id)
        if any(same_person(actor, i) for i in approvers
               if i is not None):
            raise NotPermitted("you have already approved this request (perhaps through an account you own); "
                               "another approver is needed", code="already_approved")
        owner_cannot = owner_id is not None and _owner_is_party(owner_id, access_request)
        raise NotPermitted(
            f"only the owner of {resource_label(resource)}"
            + (" or InfoSec" if needs or owner_cannot else "")
            + " may approve this request"
        )
    # Approving access to restricted data is a grant on it: a recent second factor first (docs/identity.md).
    require_mfa_if_restricted(actor, resource, "approving access to restricted data")
    if slot == INFOSEC:
        access_request.infosec_approved_by = actor
    else:
        access_request.owner_approved_by = actor
    access_request.needs_infosec = needs
    final = approvals_complete(access_request, owner_id=owner_id, needs_infosec=needs)
    now = timezone.now()
    if final:
        access_request.state = AccessRequest.State.APPROVED
        access_request.decided_at = now
        access_request.decision_comment = comment
    access_request.save()
    record(
        event_type="access.request_approved",
        actor=Actor.user(actor),
        subject=resource_subject(resource),
        payload={"request_id": access_request.pk, "as_role": slot, "comment": comment, "final": final},
    )
    if final:
        principal = User.objects.get(pk=access_request.principal_user_id)
        grant_create(
            actor=actor, principal=principal, resource=resource, permission=access_request.permission,
            expires_at=now + timedelta(days=access_request.duration_days), justification=access_request.justification,
            access_request=access_request,
        )
    return access_request


@transaction.atomic
def access_request_reject(*, actor: User, access_request: AccessRequest, comment: str) -> AccessRequest:
    """Reject a pending request: the resource's owner or InfoSec (not the requester nor the principal)."""
    require_active(actor)
    comment = require_text(comment, "comment")
    access_request = access_request_lock(access_request)
    if access_request.state != AccessRequest.State.PENDING:
        raise InvalidState(f"access request #{access_request.pk} is {access_request.state}")
    if _is_party(actor, access_request):
        raise NotPermitted("you cannot decide on access you asked for or that is for you"
                           + _through(actor, access_request)
                           + "; withdraw it instead", code="self_approval")
    resource = _request_resource(access_request, lock=False)
    if not (has_role(actor, roles.INFOSEC) or resource_owner_id(resource) == actor.pk):
        raise NotPermitted(f"only the owner of {resource_label(resource)} or InfoSec may reject this request")
    access_request.state = AccessRequest.State.REJECTED
    access_request.decided_at = timezone.now()
    access_request.decision_comment = comment
    access_request.save(update_fields=["state", "decided_at", "decision_comment"])
    record(
        event_type="access.request_rejected",
        actor=Actor.user(actor),
        subject=resource_subject(resource),
        payload={"request_id": access_request.pk, "comment": comment},
    )
    return access_request


@transaction.atomic
def access_request_withdraw(*, actor: User, access_request: AccessRequest, reason: str = "") -> AccessRequest:
    """The requester takes back a pending request."""
    access_request = access_request_lock(access_request)
    if access_request.requester_id != actor.pk:
        raise NotPermitted("only the requester may withdraw an access request")
    if access_request.state != AccessRequest.State.PENDING:
        raise InvalidState(f"access request #{access_request.pk} is {access_request.state}")
    reason = (reason or "").strip()
    if len(reason) > TEXT_MAX:
        raise AccessError(f"the reason is longer than {TEXT_MAX} characters", code="too_long")
    access_request.state = AccessRequest.State.WITHDRAWN
    access_request.decided_at = timezone.now()
    access_request.decision_comment = reason
    access_request.save(update_fields=["state", "decided_at", "decision_comment"])
    record(
        event_type="access.request_withdrawn",
        actor=Actor.user(actor),
        subject=_request_subject(access_request),
        payload={"request_id": access_request.pk, **({"reason": reason} if reason else {})},
    )
    return access_request
