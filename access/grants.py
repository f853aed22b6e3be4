"""Services of access governance: service accounts, time-bound grants, access requests and access reviews.

Every state change is one of these functions: keyword-only, ``@transaction.atomic``,
checking who may do it first and writing its ledger entry in the same
transaction. A refusal raises an ``access.errors.AccessError`` (``NotPermitted``,
``InvalidState``) before anything is written.

Our ``Grant`` table is the source of truth. Each change is mirrored into
django-guardian's direct foreign-key tables in the same transaction, so
``user.has_perm("access.read_data", dataset)`` agrees with ``access.checks.check``.
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

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction
from django.db.models import Model
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from access import roles
from access.checks import principal_label, resource_label, resource_type_of
from access.classification import CONFIDENTIAL, INTERNAL, LEVELS, PUBLIC, RESTRICTED, highest
from access.errors import AccessError, InvalidState, NotPermitted
from access.models import (
    PCI_CATEGORIES,
    RESOURCE_PERMISSIONS,
    AccessRequest,
    Dataset,
    DatasetField,
    Grant,
    ReviewCampaign,
    ReviewItem,
    ServiceAccount,
)
from access.principals import account_ids, person_ids, same_person
from access.roles import role_names
from audit.canonical import format_timestamp
from audit.ledger import Actor, Event, Subject, record, record_many
from governance.models import Environment, ModelVersion, RegisteredModel

Resource = Dataset | RegisteredModel | Environment
Principal = User | Group

RESOURCE_MODELS: dict[str, type[Dataset] | type[RegisteredModel] | type[Environment]] = {
    "dataset": Dataset,
    "registered_model": RegisteredModel,
    "environment": Environment,
}
# The app label of each resource type's guardian permissions ("access.read_data", "governance.deploy_to").
PERMISSION_APP = {"dataset": "access", "registered_model": "governance", "environment": "governance"}

# The longest a grant (or an access request) may run, by the resource's classification.
MAX_DAYS = {PUBLIC: 365, INTERNAL: 180, CONFIDENTIAL: 90, RESTRICTED: 30}
ENVIRONMENT_MAX_DAYS = 90
# A registered model with no classified version counts as internal.
MODEL_DEFAULT_LEVEL = INTERNAL
DEFAULT_REVIEW_LEVELS = (CONFIDENTIAL, RESTRICTED)

EXPIRED_REASON = "expired"
REVIEW_DEADLINE_REASON = "not certified by the review deadline"

_TEXT_MAX = 5000


# --- small helpers ---------------------------------------------------------------------------------------


def _require_text(value: str, what: str, max_length: int = _TEXT_MAX) -> str:
    value = (value or "").strip() if isinstance(value, str) else ""
    if not value:
        raise AccessError(f"a {what} is required", code="required")
    if len(value) > max_length:
        raise AccessError(f"the {what} is longer than {max_length} characters", code="too_long")
    return value


def _require_aware(value: Any, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise AccessError(f"{what} must be a datetime", code="invalid_datetime")
    if timezone.is_naive(value):
        raise AccessError(f"{what} must be timezone-aware", code="invalid_datetime")
    return value


def is_infosec(user: User) -> bool:
    return roles.INFOSEC in role_names(user)


# Who may create service accounts.
SERVICE_ACCOUNT_CREATORS = frozenset({roles.INFOSEC, roles.MODEL_OWNER})


def may_create_service_account(user: User) -> bool:
    return bool(role_names(user) & SERVICE_ACCOUNT_CREATORS)


def may_request_access(user: User) -> bool:
    """Anyone with a governance role may ask for access (``access_request_create`` refuses others)."""
    return bool(role_names(user) & frozenset(roles.ROLES))


def _require_active(user: User) -> None:
    if not isinstance(user, User) or not user.is_active:
        raise NotPermitted("an inactive account cannot do this", code="inactive")


def _ts(value: datetime) -> str:
    return format_timestamp(value)


# --- resources --------------------------------------------------------------------------------------------


def resource_kind(resource: Model) -> str:
    """``dataset``, ``registered_model`` or ``environment``; anything else is refused."""
    try:
        return resource_type_of(resource)
    except AccessError as exc:
        raise AccessError(str(exc), code="invalid_resource") from None


def get_resource(resource_type: str, resource_id: int) -> Resource:
    model = RESOURCE_MODELS.get(resource_type)
    if model is None:
        raise AccessError(f"unknown resource type {resource_type!r}", code="invalid_resource")
    found = model._default_manager.filter(pk=resource_id).first()
    if found is None:
        raise AccessError(f"{resource_type} #{resource_id} does not exist", code="not_found")
    return found


def _lock_resource(resource_type: str, resource_id: int) -> Resource:
    model = RESOURCE_MODELS[resource_type]
    found = model._default_manager.select_for_update().filter(pk=resource_id).first()
    if found is None:
        raise AccessError(f"{resource_type} #{resource_id} does not exist", code="not_found")
    return found


def _lock_resources(keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], Resource]:
    """Lock several resources in a fixed order (type, id), so concurrent sweeps cannot deadlock."""
    by_type: dict[str, set[int]] = defaultdict(set)
    for resource_type, resource_id in keys:
        by_type[resource_type].add(resource_id)
    found: dict[tuple[str, int], Resource] = {}
    for resource_type in sorted(by_type):
        model = RESOURCE_MODELS[resource_type]
        rows = model._default_manager.select_for_update().filter(pk__in=by_type[resource_type]).order_by("pk")
        for obj in rows:
            found[(resource_type, obj.pk)] = obj
    return found


def _check_permission_applies(resource_type: str, permission: str) -> None:
    allowed = RESOURCE_PERMISSIONS[resource_type]
    if permission not in allowed:
        raise AccessError(
            f"{permission!r} does not apply to a {resource_type}; use one of {', '.join(allowed)}",
            code="invalid_permission",
        )


def model_levels(model_ids: Iterable[int]) -> dict[int, str]:
    """The highest data classification of each registered model's versions (``internal`` when none)."""
    ids = list(model_ids)
    levels: dict[int, list[str]] = {pk: [] for pk in ids}
    rows = ModelVersion.objects.filter(model_id__in=ids).exclude(data_classification="")
    for model_id, level in rows.values_list("model_id", "data_classification"):
        levels[model_id].append(level)
    return {pk: highest(found, default=MODEL_DEFAULT_LEVEL) for pk, found in levels.items()}


def resource_level(resource: Resource) -> str:
    """The classification that governs access to ``resource``.

    Datasets: their effective level. Models: the highest classification of their
    versions' data (internal when none is classified). Environments: the most
    sensitive data models running there may have been trained on.
    """
    if isinstance(resource, Dataset):
        return resource.effective_level
    if isinstance(resource, RegisteredModel):
        return model_levels([resource.pk])[resource.pk]
    return resource.max_data_classification


def max_duration_days(resource: Resource, level: str | None = None) -> int:
    if isinstance(resource, Environment):
        return ENVIRONMENT_MAX_DAYS
    return MAX_DAYS[level or resource_level(resource)]


def resource_owner_id(resource: Resource) -> int | None:
    if isinstance(resource, Environment):
        return None
    return resource.owner_id


def pci_datasets(dataset_ids: Iterable[int]) -> set[int]:
    """Which of these datasets carry PCI cardholder data, in their own categories or any field's."""
    ids = list(dataset_ids)
    pci: set[int] = set()
    for pk, categories in Dataset.objects.filter(pk__in=ids).values_list("pk", "pii_categories"):
        if set(categories or ()) & set(PCI_CATEGORIES):
            pci.add(pk)
    for pk, categories in DatasetField.objects.filter(dataset_id__in=ids).values_list("dataset_id", "pii_categories"):
        if set(categories or ()) & set(PCI_CATEGORIES):
            pci.add(pk)
    return pci


def has_pci(dataset: Dataset) -> bool:
    return dataset.pk in pci_datasets([dataset.pk])


def needs_infosec(resource: Resource) -> bool:
    """InfoSec must approve access: restricted or PCI data, or a resource with no owner to decide."""
    if isinstance(resource, Dataset):
        return resource.effective_level == RESTRICTED or has_pci(resource)
    return resource_owner_id(resource) is None


def _may_grant_directly(user: User, resource: Resource) -> bool:
    if is_infosec(user):
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


# --- guardian mirroring ------------------------------------------------------------------------------------


def guardian_perm(resource_type: str, permission: str) -> str:
    """The guardian permission a grant of ``permission`` mirrors to, e.g. ``access.read_data``."""
    return f"{PERMISSION_APP[resource_type]}.{permission}"


def _principal_of(grant: Grant) -> Principal:
    if grant.user_id is not None:
        assert grant.user is not None
        return grant.user
    assert grant.group is not None
    return grant.group


def _grant_principal_label(grant: Grant) -> str:
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
    return {"grant_id": grant.pk, "principal": _grant_principal_label(grant), "resource": resource_label(resource),
            "permission": grant.permission}


def _subject(resource: Resource) -> Subject:
    return Subject(resource_kind(resource), resource.name)


# --- service accounts --------------------------------------------------------------------------------------


@transaction.atomic
def service_account_create(*, user: User, name: str, description: str = "") -> ServiceAccount:
    """A machine principal backed by a Django user ``svc-<name>`` that cannot sign in. InfoSec or model-owners."""
    _require_active(user)
    if not may_create_service_account(user):
        raise NotPermitted("only InfoSec or a model-owner may create service accounts")
    name = (name or "").strip() if isinstance(name, str) else ""
    try:
        validate_slug(name)
    except Exception:
        raise AccessError("a service account name is letters, digits, '-' and '_'", code="invalid_name") from None
    if len(name) > 100:
        raise AccessError("a service account name is at most 100 characters", code="invalid_name")
    description = (description or "").strip()
    if len(description) > 300:
        raise AccessError("the description is longer than 300 characters", code="too_long")
    username = f"svc-{name}"
    if ServiceAccount.objects.filter(name=name).exists() or User.objects.filter(username=username).exists():
        raise AccessError(f"a service account or user named {name!r} already exists", code="duplicate")
    try:
        with transaction.atomic():
            backing = User(username=username, is_active=True)
            backing.set_unusable_password()
            backing.save()
            account = ServiceAccount.objects.create(name=name, user=backing, description=description, owner=user)
    except IntegrityError:
        raise AccessError(f"a service account or user named {name!r} already exists", code="duplicate") from None
    record(
        event_type="access.service_account_created",
        actor=Actor.user(user),
        subject=Subject("service_account", name),
        payload={"name": name, "owner": principal_label(user), **({"description": description} if description else {})},
    )
    return account


# --- grants ------------------------------------------------------------------------------------------------


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
        what = "an environment" if isinstance(resource, Environment) else f"{level} data"
        raise AccessError(
            f"a grant on {what} may last at most {days} days; ask for a shorter one", code="duration_too_long"
        )


@transaction.atomic
def grant_create(
    *,
    granted_by: User,
    principal: Principal,
    resource: Resource,
    permission: str,
    expires_at: datetime,
    justification: str,
    request: AccessRequest | None = None,
) -> Grant:
    """Give ``principal`` ``permission`` on ``resource`` until ``expires_at``, and mirror it into guardian.

    Directly: InfoSec, or the owner of a dataset (not restricted, no PCI data) or of a
    registered model. Through ``request``: one of the approvers of that approved request.
    """
    _require_active(granted_by)
    resource_type = resource_kind(resource)
    _check_permission_applies(resource_type, permission)
    justification = _require_text(justification, "justification")
    expires_at = _require_aware(expires_at, "expires_at")
    _check_principal(principal, granted_by)
    resource = _lock_resource(resource_type, resource.pk)
    if request is None:
        require_may_grant_directly(granted_by, resource)
    else:
        _check_request_backs(request, granted_by, principal, resource_type, resource.pk, permission)
    now = timezone.now()
    _check_expiry(expires_at, now, resource)
    grant = Grant.objects.create(
        user=principal if isinstance(principal, User) else None,
        group=principal if isinstance(principal, Group) else None,
        resource_type=resource_type,
        resource_id=resource.pk,
        permission=permission,
        expires_at=expires_at,
        justification=justification,
        granted_by=granted_by,
        request=request,
    )
    _mirror_add(grant, resource)
    record(
        event_type="access.grant_created",
        actor=Actor.user(granted_by),
        subject=_subject(resource),
        payload={**_grant_payload(grant, resource), "expires_at": _ts(expires_at), "justification": justification,
                 "request_id": request.pk if request is not None else None},
    )
    return grant


def _may_revoke(user: User, grant: Grant, resource: Resource) -> bool:
    if is_infosec(user):
        return True
    return user.pk in (resource_owner_id(resource), grant.granted_by_id)


def _lock_grant(grant: Grant) -> Grant:
    return Grant.objects.select_for_update(of=("self",)).select_related("user", "group").get(pk=grant.pk)


def _close(grant: Grant, resource: Resource, *, at: datetime, by: User | None, reason: str) -> None:
    grant.revoked_at = at
    grant.revoked_by = by
    grant.revoke_reason = reason[:300]
    grant.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
    _mirror_remove(grant, resource, at)


def _revoke_locked(grant: Grant, resource: Resource, *, now: datetime, by: User | None, reason: str,
                   actor: Actor) -> None:
    _close(grant, resource, at=now, by=by, reason=reason)
    record(
        event_type="access.grant_revoked",
        actor=actor,
        subject=_subject(resource),
        payload={**_grant_payload(grant, resource), "reason": grant.revoke_reason},
    )


def _require_open(grant: Grant, now: datetime) -> None:
    if grant.revoked_at is not None:
        ended = "expired" if grant.revoked_at >= grant.expires_at else "been revoked"
        raise InvalidState(f"grant #{grant.pk} has already {ended}")
    if grant.expires_at <= now:
        raise InvalidState(f"grant #{grant.pk} has already expired")


@transaction.atomic
def grant_revoke(*, actor_user: User, grant: Grant, reason: str) -> Grant:
    """End a grant now. InfoSec, the resource's owner or whoever granted it. Effective at once, in guardian too."""
    _require_active(actor_user)
    reason = _require_text(reason, "reason", max_length=300)
    current = Grant.objects.filter(pk=grant.pk).values_list("resource_type", "resource_id").first()
    if current is None:
        raise AccessError(f"grant #{grant.pk} does not exist", code="not_found")
    resource = _lock_resource(*current)
    locked = _lock_grant(grant)
    if not _may_revoke(actor_user, locked, resource):
        raise NotPermitted(
            f"only InfoSec, the owner of {resource_label(resource)} or the granter may revoke this grant"
        )
    now = timezone.now()
    _require_open(locked, now)
    _revoke_locked(locked, resource, now=now, by=actor_user, reason=reason, actor=Actor.user(actor_user))
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
    resources = _lock_resources((t, r) for _, t, r in due)
    grants = list(
        Grant.objects.select_for_update(of=("self",))
        .select_related("user", "group")
        .filter(pk__in=[pk for pk, _, _ in due], revoked_at__isnull=True, expires_at__lte=now)
        .order_by("pk")
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
            subject=_subject(resource),
            payload={**_grant_payload(grant, resource), "expired_at": _ts(grant.expires_at)},
        ))
    if events:
        record_many(events)
    return len(grants)


# --- access requests ---------------------------------------------------------------------------------------

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


def _lock_request(request: AccessRequest) -> AccessRequest:
    return AccessRequest.objects.select_for_update().get(pk=request.pk)


def _request_resource(request: AccessRequest, *, lock: bool) -> Resource:
    if lock:
        return _lock_resource(request.resource_type, request.resource_id)
    return get_resource(request.resource_type, request.resource_id)


def _request_subject(request: AccessRequest) -> Subject:
    try:
        return _subject(get_resource(request.resource_type, request.resource_id))
    except AccessError:
        return Subject(request.resource_type, str(request.resource_id))


@transaction.atomic
def access_request_create(
    *,
    user: User,
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
    _require_active(user)
    if not may_request_access(user):
        raise NotPermitted("only people with a governance role may ask for access", code="no_role")
    resource_type = resource_kind(resource)
    _check_permission_applies(resource_type, permission)
    justification = _require_text(justification, "justification")
    if isinstance(duration_days, bool) or not isinstance(duration_days, int) or duration_days < 1:
        raise AccessError("the duration is a whole number of days, at least 1", code="invalid_duration")
    resource = get_resource(resource_type, resource.pk)
    level = resource_level(resource)
    days = max_duration_days(resource, level)
    if duration_days > days:
        what = "an environment" if isinstance(resource, Environment) else f"{level} data"
        raise AccessError(f"access to {what} may last at most {days} days", code="duration_too_long")
    principal = user
    if for_service_account is not None:
        account = ServiceAccount.objects.select_related("user").filter(pk=for_service_account.pk).first()
        if account is None:
            raise AccessError("the service account does not exist", code="not_found")
        if account.owner_id != user.pk and not is_infosec(user):
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
        requester=user, principal_user=principal, resource_type=resource_type, resource_id=resource.pk,
        permission=permission, duration_days=duration_days, justification=justification, needs_infosec=needs,
    )
    record(
        event_type="access.request_created",
        actor=Actor.user(user),
        subject=_subject(resource),
        payload={"request_id": request.pk, "principal": principal_label(principal),
                 "resource": resource_label(resource), "permission": permission, "duration_days": duration_days,
                 "justification": justification, "needs_infosec": needs},
    )
    return request


@transaction.atomic
def access_request_approve(*, user: User, request: AccessRequest, comment: str) -> AccessRequest:
    """Approve as the resource's owner or as InfoSec. With every needed approval in, the grant is created
    (by this, the last, approver) for ``duration_days`` from now."""
    _require_active(user)
    comment = _require_text(comment, "comment")
    request = _lock_request(request)
    if request.state != AccessRequest.State.PENDING:
        raise InvalidState(f"access request #{request.pk} is {request.state}")
    if _is_party(user, request):
        raise NotPermitted("you cannot approve access you asked for or that is for you" + _through(user, request),
                           code="self_approval")
    resource = _request_resource(request, lock=True)
    owner_id = resource_owner_id(resource)
    needs = request.needs_infosec or needs_infosec(resource)  # classification may have risen since the request
    slot = approval_slot(user=user, request=request, owner_id=owner_id, needs_infosec=needs, infosec=is_infosec(user))
    if slot is None:
        if any(same_person(user, i) for i in (request.owner_approved_by_id, request.infosec_approved_by_id)
               if i is not None):
            raise NotPermitted("you have already approved this request (perhaps through an account you own); "
                               "another approver is needed", code="already_approved")
        owner_cannot = owner_id is not None and _owner_is_party(owner_id, request)
        raise NotPermitted(
            f"only the owner of {resource_label(resource)}"
            + (" or InfoSec" if needs or owner_cannot else "")
            + " may approve this request"
        )
    if slot == INFOSEC:
        request.infosec_approved_by = user
    else:
        request.owner_approved_by = user
    request.needs_infosec = needs
    final = approvals_complete(request, owner_id=owner_id, needs_infosec=needs)
    now = timezone.now()
    if final:
        request.state = AccessRequest.State.APPROVED
        request.decided_at = now
        request.decision_comment = comment
    request.save()
    record(
        event_type="access.request_approved",
        actor=Actor.user(user),
        subject=_subject(resource),
        payload={"request_id": request.pk, "as_role": slot, "comment": comment, "final": final},
    )
    if final:
        principal = User.objects.get(pk=request.principal_user_id)
        grant_create(
            granted_by=user, principal=principal, resource=resource, permission=request.permission,
            expires_at=now + timedelta(days=request.duration_days), justification=request.justification,
            request=request,
        )
    return request


@transaction.atomic
def access_request_reject(*, user: User, request: AccessRequest, comment: str) -> AccessRequest:
    """Reject a pending request: the resource's owner or InfoSec (not the requester nor the principal)."""
    _require_active(user)
    comment = _require_text(comment, "comment")
    request = _lock_request(request)
    if request.state != AccessRequest.State.PENDING:
        raise InvalidState(f"access request #{request.pk} is {request.state}")
    if _is_party(user, request):
        raise NotPermitted("you cannot decide on access you asked for or that is for you" + _through(user, request)
                           + "; withdraw it instead", code="self_approval")
    resource = _request_resource(request, lock=False)
    if not (is_infosec(user) or resource_owner_id(resource) == user.pk):
        raise NotPermitted(f"only the owner of {resource_label(resource)} or InfoSec may reject this request")
    request.state = AccessRequest.State.REJECTED
    request.decided_at = timezone.now()
    request.decision_comment = comment
    request.save(update_fields=["state", "decided_at", "decision_comment"])
    record(
        event_type="access.request_rejected",
        actor=Actor.user(user),
        subject=_subject(resource),
        payload={"request_id": request.pk, "comment": comment},
    )
    return request


@transaction.atomic
def access_request_withdraw(*, user: User, request: AccessRequest, reason: str = "") -> AccessRequest:
    """The requester takes back a pending request."""
    request = _lock_request(request)
    if request.requester_id != user.pk:
        raise NotPermitted("only the requester may withdraw an access request")
    if request.state != AccessRequest.State.PENDING:
        raise InvalidState(f"access request #{request.pk} is {request.state}")
    reason = (reason or "").strip()
    if len(reason) > _TEXT_MAX:
        raise AccessError(f"the reason is longer than {_TEXT_MAX} characters", code="too_long")
    request.state = AccessRequest.State.WITHDRAWN
    request.decided_at = timezone.now()
    request.decision_comment = reason
    request.save(update_fields=["state", "decided_at", "decision_comment"])
    record(
        event_type="access.request_withdrawn",
        actor=Actor.user(user),
        subject=_request_subject(request),
        payload={"request_id": request.pk, **({"reason": reason} if reason else {})},
    )
    return request


# --- access reviews ----------------------------------------------------------------------------------------


def _review_subject(campaign: ReviewCampaign) -> Subject:
    return Subject("access_review", str(campaign.pk))


def grant_levels(grants: Sequence[Grant]) -> dict[tuple[str, int], tuple[str, int | None]]:
    """``(level, owner_id)`` of each grant's resource, in a few queries whatever the number of grants."""
    by_type: dict[str, set[int]] = defaultdict(set)
    for g in grants:
        by_type[g.resource_type].add(g.resource_id)
    found: dict[tuple[str, int], tuple[str, int | None]] = {}
    for pk, level, owner_id in Dataset.objects.filter(pk__in=by_type["dataset"]).values_list(
        "pk", "effective_level", "owner_id"
    ):
        found[("dataset", pk)] = (level, owner_id)
    levels = model_levels(by_type["registered_model"])
    for pk, owner_id in RegisteredModel.objects.filter(pk__in=by_type["registered_model"]).values_list(
        "pk", "owner_id"
    ):
        found[("registered_model", pk)] = (levels[pk], owner_id)
    for pk, level in Environment.objects.filter(pk__in=by_type["environment"]).values_list(
        "pk", "max_data_classification"
    ):
        found[("environment", pk)] = (level, None)
    return found


@transaction.atomic
def review_campaign_start(
    *, user: User, name: str, deadline: datetime, levels: Sequence[str] = DEFAULT_REVIEW_LEVELS,
) -> ReviewCampaign:
    """Open an access review of every active grant on resources at ``levels``. InfoSec only.

    A resource's level: datasets their effective level, models their versions' highest
    data classification, environments their ``max_data_classification`` (so the default
    levels take the environments that may run models trained on confidential data or
    above). Reviewer: the resource's owner; environments, ownerless models and a grant
    to the owner themselves go to the campaign's creator.
    """
    _require_active(user)
    if not is_infosec(user):
        raise NotPermitted("only InfoSec may start an access review")
    name = _require_text(name, "name", max_length=200)
    deadline = _require_aware(deadline, "deadline")
    now = timezone.now()
    if deadline <= now:
        raise AccessError("the review deadline must be in the future", code="invalid_deadline")
    wanted = tuple(dict.fromkeys(levels))
    if isinstance(levels, str) or not wanted or any(level not in LEVELS for level in wanted):
        raise AccessError(f"levels must be a non-empty list of {', '.join(LEVELS)}", code="invalid_level")
    active = list(Grant.objects.filter(revoked_at__isnull=True, expires_at__gt=now).order_by("pk"))
    info = grant_levels(active)
    campaign = ReviewCampaign.objects.create(name=name, created_by=user, deadline=deadline)
    # An owner does not review a grant to themselves nor to a service account they own.
    persons = person_ids({g.user_id for g in active} | {owner for _, owner in info.values()})
    items = []
    for grant in active:
        level, owner_id = info.get((grant.resource_type, grant.resource_id), (None, None))
        if level not in wanted:
            continue
        holder = persons.get(grant.user_id) if grant.user_id is not None else None
        reviewer_id = owner_id if owner_id is not None and persons.get(owner_id) != holder else user.pk
        items.append(ReviewItem(campaign=campaign, grant=grant, reviewer_id=reviewer_id))
    ReviewItem.objects.bulk_create(items, batch_size=1000)
    record(
        event_type="access.review_started",
        actor=Actor.user(user),
        subject=_review_subject(campaign),
        payload={"campaign_id": campaign.pk, "name": name, "deadline": _ts(deadline), "items": len(items)},
    )
    return campaign


def _holds_through(user: User, grant: Grant) -> bool:
    """Whether the person behind ``user`` holds ``grant``: to one of their accounts, or to a group
    one of their accounts belongs to."""
    mine = account_ids(user)
    if grant.user_id is not None:
        return grant.user_id in mine
    assert grant.group_id is not None  # a grant is to a user or a group
    return User.groups.through.objects.filter(group_id=grant.group_id, user_id__in=mine).exists()


@transaction.atomic
def review_item_decide(*, user: User, item: ReviewItem, decision: str, comment: str = "") -> ReviewItem:
    """Certify or revoke one grant of an open campaign, before its deadline: the item's reviewer or InfoSec.
    Revoking revokes the grant at once (``grant_revoke``)."""
    _require_active(user)
    if decision not in (ReviewItem.Decision.CERTIFIED, ReviewItem.Decision.REVOKED):
        raise AccessError("the decision is 'certified' or 'revoked'", code="invalid_decision")
    comment = (comment or "").strip()
    if len(comment) > _TEXT_MAX:
        raise AccessError(f"the comment is longer than {_TEXT_MAX} characters", code="too_long")
    item = ReviewItem.objects.select_for_update().get(pk=item.pk)
    campaign = ReviewCampaign.objects.get(pk=item.campaign_id)  # read after the lock: a close may just have run
    now = timezone.now()
    if campaign.state != ReviewCampaign.State.OPEN:
        raise InvalidState(f"access review {campaign.name} is closed")
    if now >= campaign.deadline:
        raise InvalidState(f"the deadline of access review {campaign.name} has passed", code="deadline_passed")
    if item.decision != ReviewItem.Decision.PENDING:
        raise InvalidState(f"this grant was already {item.decision} in {campaign.name}", code="already_decided")
    if item.reviewer_id != user.pk and not is_infosec(user):
        raise NotPermitted("only the item's reviewer or InfoSec may decide it")
    grant = Grant.objects.get(pk=item.grant_id)
    if _holds_through(user, grant):
        raise NotPermitted("you cannot review your own access (nor that of a service account you own or a group "
                           "you or it belong to)", code="self_review")
    if decision == ReviewItem.Decision.REVOKED and grant.revoked_at is None and grant.expires_at > now:
        reason = f"revoked in access review {campaign.name}" + (f": {comment}" if comment else "")
        grant_revoke(actor_user=user, grant=grant, reason=reason[:300])
    item.decision = decision
    item.decided_by = user
    item.decided_at = now
    item.comment = comment
    item.save(update_fields=["decision", "decided_by", "decided_at", "comment"])
    record(
        event_type="access.review_decided",
        actor=Actor.user(user),
        subject=_review_subject(campaign),
        payload={"campaign_id": campaign.pk, "grant_id": grant.pk, "decision": decision,
                 **({"comment": comment} if comment else {})},
    )
    return item


@transaction.atomic
def review_campaign_close(*, campaign: ReviewCampaign, now: datetime | None = None) -> ReviewCampaign:
    """At or after the deadline: revoke every grant still pending review, close the campaign and keep a report.
    System (the ``close_due_reviews`` task)."""
    now = now or timezone.now()
    campaign = ReviewCampaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.state != ReviewCampaign.State.OPEN:
        raise InvalidState(f"access review {campaign.name} is already closed")
    if now < campaign.deadline:
        raise InvalidState(f"access review {campaign.name} is not due until {_ts(campaign.deadline)}",
                           code="not_due")
    items = list(
        campaign.items.select_for_update(of=("self",)).select_related("grant__user", "grant__group").order_by("pk")
    )
    pending = [i for i in items if i.decision == ReviewItem.Decision.PENDING]
    resources = _lock_resources((i.grant.resource_type, i.grant.resource_id) for i in pending)
    # Labels for the report, also of resources that are not locked (decided items).
    labels = {key: resource_label(r) for key, r in resources.items()}
    decided_keys = {(i.grant.resource_type, i.grant.resource_id) for i in items} - set(labels)
    for key in decided_keys:
        found = RESOURCE_MODELS[key[0]]._default_manager.filter(pk=key[1]).first()
        labels[key] = resource_label(found) if found is not None else f"{key[0]}:#{key[1]}"
    grants = {
        g.pk: g
        for g in Grant.objects.select_for_update(of=("self",)).select_related("user", "group")
        .filter(pk__in=[i.grant_id for i in pending]).order_by("pk")
    }
    outcomes: list[dict[str, Any]] = []
    counts = {"certified": 0, "revoked": 0, "auto_revoked": 0, "already_ended": 0}
    for item in items:
        grant = grants.get(item.grant_id, item.grant)
        key = (grant.resource_type, grant.resource_id)
        if item.decision == ReviewItem.Decision.PENDING:
            resource = resources.get(key)
            if resource is not None and grant.revoked_at is None and grant.expires_at > now:
                _revoke_locked(grant, resource, now=now, by=None, reason=REVIEW_DEADLINE_REASON,
                               actor=Actor.system("access-review"))
                outcome = "auto_revoked"
            else:
                outcome = "already_ended"
            item.decision = ReviewItem.Decision.REVOKED
            item.decided_at = now
            item.comment = REVIEW_DEADLINE_REASON if outcome == "auto_revoked" else "the grant had already ended"
            item.save(update_fields=["decision", "decided_at", "comment"])
        else:
            outcome = str(item.decision)
        counts[outcome] += 1
        outcomes.append({
            "item_id": item.pk, "grant_id": grant.pk, "principal": _grant_principal_label(item.grant),
            "resource": labels[key],
            "permission": grant.permission, "reviewer_id": item.reviewer_id, "decided_by_id": item.decided_by_id,
            "outcome": outcome, "comment": item.comment,
        })
    campaign.state = ReviewCampaign.State.CLOSED
    campaign.closed_at = now
    campaign.report = {
        "closed_at": _ts(now), "deadline": _ts(campaign.deadline), "items": len(items), **counts,
        "outcomes": outcomes,
    }
    campaign.save(update_fields=["state", "closed_at", "report"])
    record(
        event_type="access.review_closed",
        actor=Actor.system("access-review"),
        subject=_review_subject(campaign),
        payload={"campaign_id": campaign.pk, "certified": counts["certified"], "revoked": counts["revoked"],
                 "auto_revoked": counts["auto_revoked"]},
    )
    return campaign
