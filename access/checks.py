"""The access check: may this principal do this on that resource, and which grant says so?

``check`` is on the hot path of serving platforms and pipelines. It is one
indexed query for the principal's own grants and, only when that finds none,
one for its groups' grants (``grant_check_user`` / ``grant_check_group``
partial indexes over active grants). An expired grant stops counting at its
``expires_at`` to the microsecond, before the expiry task removes it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from access.classification import CONFIDENTIAL, rank
from access.models import RESOURCE_PERMISSIONS, Dataset, Grant
from audit.ledger import Actor, Subject, record


class AccessError(ValueError):
    """A malformed check (unknown permission or resource type)."""


def resource_type_of(resource: Model) -> str:
    label = resource._meta.label_lower
    kinds = {"access.dataset": "dataset", "governance.registeredmodel": "registered_model",
             "governance.environment": "environment"}
    try:
        return kinds[label]
    except KeyError:
        raise AccessError(f"{label} is not a resource that grants apply to") from None


def resource_label(resource: Model) -> str:
    return f"{resource_type_of(resource)}:{resource.name}"  # type: ignore[attr-defined]


def principal_label(principal: User | Group) -> str:
    if isinstance(principal, Group):
        return f"group:{principal.name}"
    return f"user:{principal.pk}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    grant_id: int | None
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def _active(resource_type: str, resource_id: int, permission: str, now: datetime) -> Any:
    return Grant.objects.filter(
        resource_type=resource_type, resource_id=resource_id, permission=permission,
        revoked_at__isnull=True, expires_at__gt=now,
    )


def sensitivity(resource: Model) -> str | None:
    """The classification that makes a denied check worth recording, or None when it is not sensitive."""
    if isinstance(resource, Dataset):
        return resource.effective_level if rank(resource.effective_level) >= rank(CONFIDENTIAL) else None
    if resource_type_of(resource) == "environment":
        return str(getattr(resource, "max_data_classification", "")) or None
    level = max(
        (v for v in resource.versions.values_list("data_classification", flat=True) if v),  # type: ignore[attr-defined]
        key=rank, default=None,
    )
    return level if level is not None and rank(level) >= rank(CONFIDENTIAL) else None


def check(
    principal: User | Group, permission: str, resource: Model, *, at: datetime | None = None,
    record_denial: bool = True,
) -> Decision:
    """Allow or deny ``permission`` on ``resource`` for ``principal`` (a user, service account user or group).

    Denials on sensitive resources (confidential or restricted data, environments)
    are recorded in the ledger, in their own transaction.
    """
    resource_type = resource_type_of(resource)
    if permission not in RESOURCE_PERMISSIONS[resource_type]:
        raise AccessError(
            f"{permission!r} does not apply to a {resource_type}; use one of "
            + ", ".join(RESOURCE_PERMISSIONS[resource_type])
        )
    now = at or timezone.now()
    grants = _active(resource_type, resource.pk, permission, now)
    if isinstance(principal, Group):
        grant_id = grants.filter(group=principal).values_list("pk", flat=True).first()
    else:
        if not principal.is_active:
            grant_id = None
        else:
            grant_id = grants.filter(user=principal).values_list("pk", flat=True).first()
            if grant_id is None:
                grant_id = (
                    grants.filter(group__in=principal.groups.all()).values_list("pk", flat=True).first()
                )
    if grant_id is not None:
        return Decision(True, grant_id, f"allowed by grant #{grant_id}")
    decision = Decision(False, None, f"no active grant of {permission} on {resource_label(resource)}")
    if record_denial:
        level = sensitivity(resource)
        if level is not None:
            _record_denial(principal, permission, resource, level)
    return decision


def _record_denial(principal: User | Group, permission: str, resource: Model, level: str) -> None:
    with transaction.atomic():
        record(
            event_type="access.check_denied",
            actor=Actor.user(principal) if isinstance(principal, User) else Actor.system("access-check"),
            subject=Subject(resource_type_of(resource), resource.name),  # type: ignore[attr-defined]
            payload={"principal": principal_label(principal), "resource": resource_label(resource),
                     "permission": permission, "level": level},
        )
