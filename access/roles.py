"""Role names (Django groups). Created by migration access/0001_roles."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

INFOSEC = "infosec"
AUDITOR = "auditor"
MODEL_OWNER = "model-owner"
APPROVER = "approver"
DATA_STEWARD = "data-steward"
BREAK_GLASS = "break-glass"
# The approval group of the default production policy (model-risk validators).
MODEL_RISK = "model-risk"

ROLES = (INFOSEC, AUDITOR, MODEL_OWNER, APPROVER, DATA_STEWARD, BREAK_GLASS, MODEL_RISK)


def role_names(user: User | AnonymousUser) -> frozenset[str]:
    """The user's roles (group names), read once per user object.

    Selectors, services, the console's navigation and the API all ask, so a request costs one
    query however often it is asked. An inactive or anonymous user has no roles. Changing a
    user's groups mid-request is not seen by that user object; load a fresh one to see it.
    """
    cached: frozenset[str] | None = getattr(user, "_access_role_names", None)
    if cached is None:
        if not user.is_authenticated or not user.is_active:
            cached = frozenset()
        else:
            cached = frozenset(user.groups.values_list("name", flat=True))
        user._access_role_names = cached  # type: ignore[union-attr]
    return cached


def has_role(user: object, *roles: str) -> bool:
    """True when ``user`` holds any of ``roles`` (on top of the cached :func:`role_names`).

    False for ``None``, an anonymous or inactive user, or when no role is named.
    """
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    return not role_names(user).isdisjoint(roles)  # type: ignore[arg-type]
