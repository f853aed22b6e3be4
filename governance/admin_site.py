"""The Django admin, open by role (not the is_staff flag).

Anyone with a governance role may sign in; what each page shows and allows is
decided per model admin (the ledger: InfoSec and auditors) and, for every
action, by the services themselves.
"""
from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from access.roles import AUDITOR, INFOSEC, ROLES

LEDGER_READER_ROLES = (INFOSEC, AUDITOR)
CONSOLE_ROLES = ROLES


def has_role(user: object, roles: tuple[str, ...]) -> bool:
    if not getattr(user, "is_active", False):
        return False
    if getattr(user, "is_superuser", False):
        return True
    groups = getattr(user, "groups", None)
    return groups is not None and groups.filter(name__in=roles).exists()


def has_admin_role(user: object) -> bool:
    """May read the ledger and the raw data (InfoSec, auditors)."""
    return has_role(user, LEDGER_READER_ROLES)


def has_console_role(user: object) -> bool:
    """May sign in at all."""
    return has_role(user, CONSOLE_ROLES)


class RoleAdminLoginForm(AdminAuthenticationForm):
    """Admin login by role rather than the is_staff flag."""

    def confirm_login_allowed(self, user: AbstractBaseUser) -> None:
        if not has_console_role(user):
            raise ValidationError(
                "This account has no governance role, so it cannot sign in here.",
                code="invalid_login",
            )


class GovernanceAdminSite(admin.AdminSite):
    site_header = "ML governance ledger"
    site_title = "ML governance ledger"
    index_title = "Governance"

    login_form = RoleAdminLoginForm

    def has_permission(self, request: HttpRequest) -> bool:
        return has_console_role(request.user)
