"""The object-permission backend: guardian's API, answered from the grants.

``access.services.grants`` mirrors every grant into guardian's tables so ``user.has_perm(perm,
obj)`` and DRF's object permissions work, but the mirror row only goes away when the
expiry task (``grants_expire``) runs. Without a scheduler, guardian alone would keep a
lapsed grant alive. For the three governed resource types this backend therefore asks
``access.services.checks.check`` (the grant table, expiry to the microsecond, revocation, the
principal still active) instead of guardian's rows; for any other object it is plain
guardian. It is configured in place of ``guardian.backends.ObjectPermissionBackend``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.exceptions import AxesBackendPermissionDenied
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.db.models import Model
from guardian.backends import ObjectPermissionBackend

from access.models import RESOURCE_PERMISSIONS
from access.services.checks import check

_GOVERNED = {"access.dataset": "dataset", "governance.registeredmodel": "registered_model",
             "governance.environment": "environment"}


def _resource_type(obj: Any) -> str | None:
    if not isinstance(obj, Model) or obj.pk is None:
        return None
    return _GOVERNED.get(obj._meta.label_lower)


class GrantBackedObjectPermissionBackend(ObjectPermissionBackend):
    """``has_perm``/``get_all_permissions`` on a dataset, registered model or environment hold exactly
    when an active (unexpired, unrevoked) grant backs them; guardian's own answer otherwise."""

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        resource_type = _resource_type(obj)
        if resource_type is None:
            return bool(super().has_perm(user_obj, perm, obj))
        app_label, _, codename = perm.rpartition(".")
        if app_label and app_label != obj._meta.app_label:
            return False  # guardian's rule: a permission of another app never applies
        if codename not in RESOURCE_PERMISSIONS[resource_type]:
            return False
        if not getattr(user_obj, "is_authenticated", False) or not getattr(user_obj, "is_active", False):
            return False
        # Not recorded: has_perm is asked by frameworks (admin, DRF), not by someone trying to get in.
        return check(user_obj, codename, obj, record_denial=False).allowed

    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        resource_type = _resource_type(obj)
        if resource_type is None:
            return set(super().get_all_permissions(user_obj, obj))
        return {codename for codename in RESOURCE_PERMISSIONS[resource_type]
                if self.has_perm(user_obj, codename, obj)}


# --- password sign-in: LOCAL_LOGIN and the throttle (docs/identity.md "Local sign-in and lockout") ----------------


class LocalPasswordBackend(ModelBackend):
    """Django's password backend that answers nothing while ``LOCAL_LOGIN`` is off, whatever asks it (the
    console's or the admin's form, DRF's browsable-API login, a ``client.login``): with SSO only, a
    password is no way in. Permissions (``has_perm`` on groups) work as before either way."""

    def authenticate(self, request: Any, username: str | None = None, password: str | None = None,
                     **kwargs: Any) -> Any:
        if not settings.LOCAL_LOGIN:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


#: Set on the request when the throttle refused an attempt (``LoginThrottleBackend``): the receivers of
#: ``user_login_failed`` then record nothing for it (one ``auth.locked_out`` stands for the lockout).
REFUSED_ATTRIBUTE = "login_refused_by_lockout"


class LoginThrottleBackend(AxesStandaloneBackend):
    """django-axes' backend (first in AUTHENTICATION_BACKENDS): refuses a password attempt while its username
    or its address is locked out. Marks the request it refused, so that the refusal is told apart from a
    wrong password (the ``user_login_failed`` signal Django sends is the same for both).

    Without a request (``authenticate()`` from code on the host: a shell, the test client's ``login``) there is
    no client to throttle and axes' own backend would raise; it answers nothing instead, as every HTTP path
    passes its request."""

    def authenticate(self, request: Any, username: str | None = None, password: str | None = None,
                     **kwargs: Any) -> Any:
        if request is None:
            return None
        try:
            return super().authenticate(request, username=username, password=password, **kwargs)
        except AxesBackendPermissionDenied:
            setattr(request, REFUSED_ATTRIBUTE, True)
            raise


def not_a_password_attempt(request: Any, credentials: Any) -> bool:
    """axes' ``AXES_WHITELIST_CALLABLE``: an authentication without a password (an SSO callback) is neither
    counted nor refused by the throttle; the identity provider throttles its own."""
    return not isinstance(credentials, Mapping) or credentials.get("password") is None
