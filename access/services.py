"""Services for roles (Django groups). Each writes its ledger entry in its own transaction."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction

from access.roles import ROLES
from audit.ledger import Actor, Subject, record


class ServiceError(ValueError):
    """A request that cannot be carried out as asked; the message says why."""


def _role(role: str) -> Group:
    if role not in ROLES:
        raise ServiceError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    return Group.objects.get(name=role)


def _lock_user(user: AbstractBaseUser) -> None:
    # Serialise role changes of one user, so two concurrent adds record one entry.
    type(user)._default_manager.select_for_update().filter(pk=user.pk).exists()


@transaction.atomic
def user_role_add(*, actor: Actor, user: AbstractBaseUser, role: str, reason: str = "") -> bool:
    """Give ``user`` the role. Returns False (and records nothing) if they already have it."""
    group = _role(role)
    _lock_user(user)
    if user.groups.filter(pk=group.pk).exists():  # type: ignore[attr-defined]
        return False
    user.groups.add(group)  # type: ignore[attr-defined]
    payload = {"role": role, **({"reason": reason} if reason else {})}
    record(event_type="auth.role_added", actor=actor, subject=Subject("user", str(user.pk)), payload=payload)
    return True


@transaction.atomic
def user_role_remove(*, actor: Actor, user: AbstractBaseUser, role: str, reason: str = "") -> bool:
    """Take the role from ``user``. Returns False (and records nothing) if they did not have it."""
    group = _role(role)
    _lock_user(user)
    if not user.groups.filter(pk=group.pk).exists():  # type: ignore[attr-defined]
        return False
    user.groups.remove(group)  # type: ignore[attr-defined]
    payload = {"role": role, **({"reason": reason} if reason else {})}
    record(event_type="auth.role_removed", actor=actor, subject=Subject("user", str(user.pk)), payload=payload)
    return True
