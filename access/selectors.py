"""Reads of access governance: grants, pending requests, and the grant/guardian consistency check.

Every list selector loads what it shows with ``select_related`` (and resources in
one query per type), so its cost does not grow with the number of rows shown.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q, QuerySet
from django.utils import timezone
from guardian.models import GroupObjectPermission, UserObjectPermission

from access import roles
from access.classification import CONFIDENTIAL, RESTRICTED, rank
from access.models import (
    AccessRequest,
    Dataset,
    DatasetGroupObjectPermission,
    DatasetUserObjectPermission,
    Grant,
    ReviewCampaign,
    ReviewItem,
    ServiceAccount,
)
from access.principals import account_ids, person_ids
from access.resources import KINDS, RESOURCE_MODELS, Resource, ResourceKind, pci_datasets, resource_kind, resource_label
from access.roles import has_role, role_names
from access.services.access_requests import approval_slot
from access.services.datasets import CLASSIFIER_ROLES

_GRANT_RELATED = ("user", "group", "granted_by", "revoked_by", "request")


class _OnResource(Protocol):
    resource_type: str
    resource_id: int


def active_grants(at: datetime | None = None) -> QuerySet[Grant]:
    return Grant.objects.filter(revoked_at__isnull=True, expires_at__gt=at or timezone.now())


def grant_status(grant: Grant, now: datetime | None = None) -> str:
    """``active``, ``lapsed`` (past its expiry, not yet closed by the expiry task), ``expired`` or ``revoked``."""
    now = now or timezone.now()
    if grant.revoked_at is None:
        return "active" if grant.expires_at > now else "lapsed"
    return "expired" if grant.revoked_at >= grant.expires_at else "revoked"


def grants_for(
    *,
    user: User | None = None,
    group: Group | None = None,
    resource: Resource | None = None,
    include_group_grants: bool = True,
    active: bool = True,
    at: datetime | None = None,
) -> list[Grant]:
    """Grants of a user (with their groups' grants unless ``include_group_grants`` is False), of a group, and/or
    on a resource; only the active ones unless ``active`` is False. Newest first."""
    grants = Grant.objects.select_related(*_GRANT_RELATED)
    if active:
        grants = grants.filter(revoked_at__isnull=True, expires_at__gt=at or timezone.now())
    if user is not None:
        who = Q(user=user)
        if include_group_grants:
            who |= Q(group__in=user.groups.all())
        grants = grants.filter(who)
    if group is not None:
        grants = grants.filter(group=group)
    if resource is not None:
        grants = grants.filter(resource_type=resource_kind(resource), resource_id=resource.pk)
    return list(grants.order_by("-created_at", "-id"))


def grants_expiring(*, within: timedelta = timedelta(days=7), now: datetime | None = None) -> list[Grant]:
    """Active grants that expire within ``within``, soonest first."""
    now = now or timezone.now()
    return list(
        Grant.objects.select_related(*_GRANT_RELATED)
        .filter(revoked_at__isnull=True, expires_at__gt=now, expires_at__lte=now + within)
        .order_by("expires_at", "id")
    )


def resources_for(rows: Iterable[_OnResource]) -> dict[tuple[str, int], Resource]:
    """The resources of grants or requests, one query per resource type."""
    by_type: dict[str, set[int]] = defaultdict(set)
    for row in rows:
        by_type[row.resource_type].add(row.resource_id)
    found: dict[tuple[str, int], Resource] = {}
    for resource_type, ids in by_type.items():
        model = RESOURCE_MODELS.get(resource_type)
        if model is None:
            continue
        for obj in model._default_manager.filter(pk__in=ids):
            found[(resource_type, obj.pk)] = obj
    return found


def resource_labels(rows: Iterable[_OnResource]) -> dict[tuple[str, int], str]:
    rows = list(rows)
    found = resources_for(rows)
    return {
        (r.resource_type, r.resource_id): (
            resource_label(found[(r.resource_type, r.resource_id)])
            if (r.resource_type, r.resource_id) in found else f"{r.resource_type}:#{r.resource_id}"
        )
        for r in rows
    }


def requests_awaiting(user: User) -> list[AccessRequest]:
    """Pending requests ``user`` may approve now (as owner, as InfoSec, or as InfoSec for an owner who cannot)."""
    if not user.is_active:
        return []
    mine = account_ids(user)  # a person's service accounts count as them (access.principals)
    pending = list(
        AccessRequest.objects.filter(state=AccessRequest.State.PENDING)
        .exclude(requester_id__in=mine)
        .exclude(principal_user_id__in=mine)
        .select_related("requester", "principal_user", "owner_approved_by", "infosec_approved_by")
        .order_by("created_at", "id")
    )
    if not pending:
        return []
    infosec = has_role(user, roles.INFOSEC)
    resources = resources_for(pending)
    datasets = [r for r in resources.values() if isinstance(r, Dataset)]
    pci = pci_datasets(d.pk for d in datasets)
    persons = person_ids({i for r in pending for i in (r.requester_id, r.principal_user_id)}
                         | {getattr(r, "owner_id", None) for r in resources.values()} - {None})
    awaiting = []
    for request in pending:
        resource = resources.get((request.resource_type, request.resource_id))
        if resource is None:
            continue
        owner_id = getattr(resource, "owner_id", None)
        if isinstance(resource, Dataset):
            needs = request.needs_infosec or resource.effective_level == RESTRICTED or resource.pk in pci
        else:
            needs = request.needs_infosec or owner_id is None
        if approval_slot(user=user, request=request, owner_id=owner_id, needs_infosec=needs, infosec=infosec,
                         accounts=mine, persons=persons):
            awaiting.append(request)
    return awaiting


# --- guardian consistency ----------------------------------------------------------------------------------

def _guardian_tables() -> list[tuple[str, str, Any]]:
    """(resource type, principal kind, guardian's direct table) of every registered resource kind."""
    return [
        (k.name, principal, table) for k in KINDS.values()
        for principal, table in (("user", k.user_permissions), ("group", k.group_permissions))
    ]

_Key = tuple[str, int, str, int, str]  # (principal kind, principal id, resource type, resource id, permission)


def _describe(key: _Key) -> str:
    kind, principal_id, resource_type, resource_id, permission = key
    return f"{kind}:{principal_id} {permission} on {resource_type}:#{resource_id}"


def guardian_drift(*, now: datetime | None = None, expiry_grace: timedelta = timedelta(minutes=2)) -> list[str]:
    """Differences between our open grants and guardian's object permissions, both ways; empty when in step.

    * an open grant (not revoked, not yet closed by the expiry task) with no guardian row;
    * a guardian row (direct foreign-key tables) that no open grant backs;
    * a guardian row in the generic tables for one of our resource types (the direct tables must be used);
    * a grant past its expiry by more than ``expiry_grace`` and still open (the expiry task is behind).

    A grant between its ``expires_at`` and the next expiry run still has its guardian row:
    that is expected and not reported (``check()`` already denies it).
    """
    now = now or timezone.now()
    expected: dict[_Key, int] = {}
    rows = Grant.objects.filter(revoked_at__isnull=True).values_list(
        "pk", "user_id", "group_id", "resource_type", "resource_id", "permission"
    )
    for pk, user_id, group_id, resource_type, resource_id, permission in rows.iterator(chunk_size=5000):
        key: _Key = (
            ("user", user_id) if user_id is not None else ("group", group_id)
        ) + (resource_type, resource_id, permission)
        expected.setdefault(key, pk)
    actual: set[_Key] = set()
    problems: list[str] = []
    for resource_type, kind, table in _guardian_tables():
        for principal_id, object_id, codename in table.objects.values_list(
            f"{kind}_id", "content_object_id", "permission__codename"
        ).iterator(chunk_size=5000):
            actual.add((kind, principal_id, resource_type, object_id, codename))
    for key in sorted(set(expected) - actual):
        problems.append(f"missing in guardian: {_describe(key)} (grant #{expected[key]})")
    for key in sorted(actual - set(expected)):
        problems.append(f"guardian has {_describe(key)} without an open grant")
    content_types = ContentType.objects.get_for_models(*RESOURCE_MODELS.values()).values()
    for generic, kind in ((UserObjectPermission, "user"), (GroupObjectPermission, "group")):
        for principal_id, ct_model, object_pk, codename in generic.objects.filter(
            content_type__in=content_types
        ).values_list(f"{kind}_id", "content_type__model", "object_pk", "permission__codename"):
            problems.append(
                f"generic guardian row {kind}:{principal_id} {codename} on {ct_model}:#{object_pk} "
                "(grants use the direct tables)"
            )
    overdue = Grant.objects.filter(revoked_at__isnull=True, expires_at__lte=now - expiry_grace).order_by("pk")
    for pk, expires_at in overdue.values_list("pk", "expires_at")[:1000]:
        problems.append(f"grant #{pk} expired at {expires_at.isoformat()} but is still open (expiry task behind)")
    return problems


# --- visibility (API and console list views) ----------------------------------------------------------------
#
# Each returns a lazy queryset answered in one SQL statement (the caller's roles are read once and cached on
# the user object), so a list view can filter, order and paginate it without per-row checks.

_SEE_ALL = frozenset({roles.INFOSEC, roles.AUDITOR})


def _beneficiary_q(user: User, prefix: str = "") -> Q:
    """Grants whose principal is ``user``, one of their groups, or a service account they own."""
    return (
        Q(**{f"{prefix}user": user})
        | Q(**{f"{prefix}group__in": user.groups.all()})
        | Q(**{f"{prefix}user__in": ServiceAccount.objects.filter(owner=user).values("user_id")})
    )


def _owned_resources_q(user: User) -> Q:
    """Rows (grants, requests) on a resource ``user`` owns (datasets, registered models; environments have no
    owner)."""
    owned = Q(pk__in=[])
    for kind in KINDS.values():
        if kind.owner_field is not None:
            mine = kind.model._default_manager.filter(**{kind.owner_field: user.pk}).values("pk")
            owned |= Q(resource_type=kind.name, resource_id__in=mine)
    return owned


def datasets_visible_to(user: User) -> QuerySet[Dataset]:
    """Datasets ``user`` may see: all for infosec, auditors and data stewards (they classify); otherwise the ones
    they own and the ones on which they, a group of theirs or a service account they own hold a live grant."""
    if not user.is_active:
        return Dataset.objects.none()
    if role_names(user) & (_SEE_ALL | {roles.DATA_STEWARD}):
        return Dataset.objects.all()
    granted = active_grants().filter(_beneficiary_q(user), resource_type="dataset").values("resource_id")
    return Dataset.objects.filter(Q(owner=user) | Q(pk__in=granted))


def grants_visible_to(user: User) -> QuerySet[Grant]:
    """Grants (any status) ``user`` may see: all for infosec, auditors and data stewards; otherwise grants on
    resources they own and grants they benefit from (themselves, their groups, their service accounts)."""
    if not user.is_active:
        return Grant.objects.none()
    if role_names(user) & (_SEE_ALL | {roles.DATA_STEWARD}):
        return Grant.objects.all()
    return Grant.objects.filter(_owned_resources_q(user) | _beneficiary_q(user))


def access_requests_visible_to(user: User) -> QuerySet[AccessRequest]:
    """Access requests ``user`` may see: all for infosec and auditors; otherwise the ones they made, the ones for
    them (as principal) and the ones on resources they own."""
    if not user.is_active:
        return AccessRequest.objects.none()
    if role_names(user) & _SEE_ALL:
        return AccessRequest.objects.all()
    return AccessRequest.objects.filter(Q(requester=user) | Q(principal_user=user) | _owned_resources_q(user))


def service_accounts_visible_to(user: User) -> QuerySet[ServiceAccount]:
    """Service accounts ``user`` may see: all for infosec and auditors, otherwise the ones they own."""
    if not user.is_active:
        return ServiceAccount.objects.none()
    if role_names(user) & _SEE_ALL:
        return ServiceAccount.objects.all()
    return ServiceAccount.objects.filter(owner=user)


def may_declare_lineage(user: User, version_model_owner_id: int | None) -> bool:
    """Who may declare that a version was trained on a dataset: a data steward or InfoSec (they keep the
    catalog) or the owner of the version's model (they know what it was trained on)."""
    if not user.is_active:
        return False
    return bool(role_names(user) & {roles.DATA_STEWARD, roles.INFOSEC}) or (
        version_model_owner_id is not None and version_model_owner_id == user.pk
    )


def review_campaigns_visible_to(user: User) -> QuerySet[ReviewCampaign]:
    """Access reviews ``user`` may see: all for infosec and auditors, otherwise those with an item for them."""
    if not user.is_active:
        return ReviewCampaign.objects.none()
    if role_names(user) & _SEE_ALL:
        return ReviewCampaign.objects.all()
    return ReviewCampaign.objects.filter(pk__in=ReviewItem.objects.filter(reviewer=user).values("campaign_id"))


def review_items_visible_to(user: User) -> QuerySet[ReviewItem]:
    """Review items ``user`` may see: all for infosec and auditors, otherwise the ones they are to review."""
    if not user.is_active:
        return ReviewItem.objects.none()
    if role_names(user) & _SEE_ALL:
        return ReviewItem.objects.all()
    return ReviewItem.objects.filter(reviewer=user)


def review_items_awaiting(user: User) -> QuerySet[ReviewItem]:
    """The undecided items of open access reviews that ``user`` is the reviewer of, soonest deadline first."""
    if not user.is_active:
        return ReviewItem.objects.none()
    return ReviewItem.objects.filter(
        reviewer=user, decision=ReviewItem.Decision.PENDING, campaign__state=ReviewCampaign.State.OPEN,
    ).order_by("campaign__deadline", "pk")


def datasets_awaiting_classification(user: User) -> QuerySet[Dataset]:
    """Datasets never classified (no ``classified_at``), oldest first, for those who classify (data stewards and
    InfoSec: ``CLASSIFIER_ROLES``); nothing for anyone else."""
    if not user.is_active or not role_names(user) & CLASSIFIER_ROLES:
        return Dataset.objects.none()
    return Dataset.objects.filter(classified_at__isnull=True).order_by("created_at", "pk")


def resource_queryset(kind: str, viewer: User | None) -> QuerySet[Any]:
    """Where a resource named by kind is looked up: what ``viewer`` may see, or everything when None
    (asking for access is how one comes to see a dataset, so requests look among all of them).
    Callers check ``kind`` first (``access.resources.RESOURCE_MODELS``); each kind says what a viewer may see."""
    return KINDS[kind].visible_to(viewer)


# --- datasets as a resource kind (registered by access.apps) ------------------------------------------------


def _dataset_level(dataset: Dataset) -> str:
    return dataset.effective_level


def _dataset_levels(ids: Collection[int]) -> dict[int, str]:
    return dict(Dataset.objects.filter(pk__in=ids).values_list("pk", "effective_level"))


def _dataset_sensitivity(dataset: Dataset) -> str | None:
    return dataset.effective_level if rank(dataset.effective_level) >= rank(CONFIDENTIAL) else None


def _datasets_visible_to(viewer: User | None) -> QuerySet[Dataset]:
    return datasets_visible_to(viewer) if viewer is not None else Dataset.objects.all()


DATASETS = ResourceKind(
    name="dataset", model=Dataset, permission_app="access",
    user_permissions=DatasetUserObjectPermission, group_permissions=DatasetGroupObjectPermission,
    level=_dataset_level, levels=_dataset_levels, sensitivity=_dataset_sensitivity, visible_to=_datasets_visible_to,
)
