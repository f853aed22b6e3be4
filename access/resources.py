"""What grants apply to: a registry of resource kinds, and the read-only helpers built on it.

The access domain owns datasets; other domains make their own objects grantable by registering a
``ResourceKind`` from their ``AppConfig.ready`` (access registers ``dataset``, ``access.selectors.DATASETS``;
governance ``registered_model`` and ``environment``, in ``governance.access_hooks``). A kind names its
model, the app label of its guardian permissions and guardian's direct foreign-key tables for it, how
its classification and owner are found, and what a viewer may see of it. Grants, access requests, reviews, the access
check and the selectors only ever go through this registry, so access imports nothing of the
domains above it.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import Group, User
from django.db.models import Model, QuerySet

from access.classification import CONFIDENTIAL, INTERNAL, PUBLIC, RESTRICTED
from access.errors import AccessError
from access.models import PCI_CATEGORIES, Dataset, DatasetField, Grant
from audit.ledger import Subject

#: A model instance of a registered kind (a ``Dataset``, a ``RegisteredModel``, an ``Environment``).
Resource = Any
Principal = User | Group


@dataclass(frozen=True)
class ResourceKind:
    """One kind of object grants apply to."""

    #: The resource type stored in grants and requests and shown in labels ("dataset", "environment").
    name: str
    model: type[Model]
    #: The app label of its guardian permissions ("access" for ``access.read_data``).
    permission_app: str
    #: django-guardian's direct foreign-key tables for it (``UserObjectPermissionBase`` and
    #: ``GroupObjectPermissionBase`` subclasses).
    user_permissions: type[Model]
    group_permissions: type[Model]
    #: The classification that governs access to one resource, and to each of several by primary key.
    level: Callable[[Any], str]
    levels: Callable[[Collection[int]], dict[int, str]]
    #: Whether a denied check on this resource is worth recording: the level that makes it so, or None.
    sensitivity: Callable[[Any], str | None]
    #: What ``viewer`` may see of this kind (None: every row; asking for access looks among all of them).
    visible_to: Callable[[Any], QuerySet[Any]]
    #: The owner's foreign key ("owner_id"); None when the kind has no owner (InfoSec decides).
    owner_field: str | None = "owner_id"
    #: A fixed longest grant for the kind, whatever its level (environments), and how a refusal names it.
    max_days: int | None = None
    noun: str = ""


#: The registered kinds in registration order (datasets first), and their models by name.
KINDS: dict[str, ResourceKind] = {}
RESOURCE_MODELS: dict[str, type[Model]] = {}

# The longest a grant (or an access request) may run, by the resource's classification.
MAX_DAYS = {PUBLIC: 365, INTERNAL: 180, CONFIDENTIAL: 90, RESTRICTED: 30}


def register(kind: ResourceKind) -> None:
    """Make ``kind`` grantable (once per name; from an ``AppConfig.ready``)."""
    if kind.name in KINDS and KINDS[kind.name] != kind:
        raise RuntimeError(f"resource kind {kind.name!r} is already registered")
    KINDS[kind.name] = kind
    RESOURCE_MODELS[kind.name] = kind.model


def kind_of(resource_type: str) -> ResourceKind:
    try:
        return KINDS[resource_type]
    except KeyError:
        raise AccessError(f"unknown resource type {resource_type!r}", code="invalid_resource") from None


def resource_type_of(resource: Model) -> str:
    for kind in KINDS.values():
        if type(resource) is kind.model:
            return kind.name
    raise AccessError(f"{resource._meta.label_lower} is not a resource that grants apply to") from None


def resource_label(resource: Model) -> str:
    return f"{resource_type_of(resource)}:{resource.name}"  # type: ignore[attr-defined]


def resource_kind(resource: Model) -> str:
    """The registered kind's name (``dataset``, ``registered_model``, ``environment``); anything else is refused."""
    try:
        return resource_type_of(resource)
    except AccessError as exc:
        raise AccessError(str(exc), code="invalid_resource") from None


def get_resource(resource_type: str, resource_id: int) -> Resource:
    model = kind_of(resource_type).model
    found = model._default_manager.filter(pk=resource_id).first()
    if found is None:
        raise AccessError(f"{resource_type} #{resource_id} does not exist", code="not_found")
    return found


def resource_level(resource: Resource) -> str:
    """The classification that governs access to ``resource`` (each kind says how: datasets their effective
    level, models their versions' data, environments the most sensitive data they may run)."""
    return KINDS[resource_type_of(resource)].level(resource)


def max_duration_days(resource: Resource, level: str | None = None) -> int:
    kind = KINDS[resource_type_of(resource)]
    if kind.max_days is not None:
        return kind.max_days
    return MAX_DAYS[level or resource_level(resource)]


def duration_what(resource: Resource, level: str) -> str:
    """How a refused duration names what it is about: "an environment", "confidential data"."""
    kind = KINDS[resource_type_of(resource)]
    return kind.noun if kind.max_days is not None else f"{level} data"


def resource_owner_id(resource: Resource) -> int | None:
    field = KINDS[resource_type_of(resource)].owner_field
    return None if field is None else getattr(resource, field)


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


def guardian_perm(resource_type: str, permission: str) -> str:
    """The guardian permission a grant of ``permission`` mirrors to, e.g. ``access.read_data``."""
    return f"{KINDS[resource_type].permission_app}.{permission}"


def resource_subject(resource: Resource) -> Subject:
    return Subject(resource_kind(resource), resource.name)


def grant_levels(grants: Sequence[Grant]) -> dict[tuple[str, int], tuple[str, int | None]]:
    """``(level, owner_id)`` of each grant's resource, in a few queries whatever the number of grants."""
    by_type: dict[str, set[int]] = defaultdict(set)
    for g in grants:
        by_type[g.resource_type].add(g.resource_id)
    found: dict[tuple[str, int], tuple[str, int | None]] = {}
    for resource_type, ids in by_type.items():
        kind = KINDS.get(resource_type)
        if kind is None:
            continue
        levels = kind.levels(ids)
        rows = kind.model._default_manager.filter(pk__in=ids)
        if kind.owner_field is None:
            owners: dict[int, int | None] = dict.fromkeys(rows.values_list("pk", flat=True))
        else:
            owners = dict(rows.values_list("pk", kind.owner_field))
        for pk, owner_id in owners.items():
            found[(resource_type, pk)] = (levels[pk], owner_id)
    return found
