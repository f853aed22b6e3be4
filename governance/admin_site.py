"""The Django admin, open to InfoSec and auditors by role (the raw view of the data)."""
from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from access.roles import AUDITOR, INFOSEC

ADMIN_ROLES = (INFOSEC, AUDITOR)


def has_admin_role(user: object) -> bool:
    if not getattr(user, "is_active", False):
        return False
    if getattr(user, "is_superuser", False):
        return True
    groups = getattr(user, "groups", None)
    return groups is not None and groups.filter(name__in=ADMIN_ROLES).exists()


class RoleAdminLoginForm(AdminAuthenticationForm):
    """Admin login by role rather than the is_staff flag."""

    def confirm_login_allowed(self, user: AbstractBaseUser) -> None:
        if not has_admin_role(user):
            raise ValidationError(
                "This account has no InfoSec or auditor role, so it cannot open the admin.",
                code="invalid_login",
            )


class GovernanceAdminSite(admin.AdminSite):
    site_header = "ML governance ledger"
    site_title = "ML governance ledger"
    index_title = "Raw data (InfoSec and audit)"

    login_form = RoleAdminLoginForm

    def has_permission(self, request: HttpRequest) -> bool:
        return has_admin_role(request.user)
