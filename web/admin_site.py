"""The Django admin: a raw, read-only view of the data for InfoSec and auditors.

Who gets in is decided here, once, by role: an active account with the InfoSec
or the auditor role. ``is_staff`` and ``is_superuser`` count for nothing, so an
operator who runs ``createsuperuser`` gets an account that cannot open the
admin (or, having a role, gets exactly what that role gives).

Every model admin derives from ``RawViewMixin``: no add, change or delete for
anybody, rows read through the same visibility selectors as the API, and no
actions except the few declared as ``infosec_actions`` (offered to InfoSec
only; each calls a service). Work the console does (promotions, approvals,
grants, classification, tokens, reveals...) is done in the console, not here.

``form_action`` turns a service call into an admin action with a form page, for the few
InfoSec actions the console has no page for (role changes, ``access.admin``);
``pretty_json`` shows a JSON field.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from access.errors import AccessError
from access.roles import AUDITOR, INFOSEC, has_role, role_names
from governance.errors import GovernanceError

ADMIN_ROLES = frozenset({INFOSEC, AUDITOR})


def may_open_admin(user: object) -> bool:
    """An active account with the InfoSec or the auditor role; superuser and staff flags are ignored."""
    if not getattr(user, "is_authenticated", False):
        return False
    return bool(role_names(user) & ADMIN_ROLES)  # type: ignore[arg-type]


class RoleAdminLoginForm(AdminAuthenticationForm):
    """Admin login by role rather than the is_staff flag."""

    def confirm_login_allowed(self, user: AbstractBaseUser) -> None:
        if not may_open_admin(user):
            raise ValidationError(
                "Only InfoSec and auditors may sign in to the admin; use the console.",
                code="invalid_login",
            )


class GovernanceAdminSite(admin.AdminSite):
    site_header = "ML governance ledger"
    site_title = "ML governance ledger"
    index_title = "Raw view (read-only)"

    login_form = RoleAdminLoginForm

    def has_permission(self, request: HttpRequest) -> bool:
        return may_open_admin(request.user)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """The admin's password form, only while ``LOCAL_LOGIN`` is on. Off: a password POST is refused (403)
        and the page sends people to the console's sign-in (SSO), whose session the admin shares."""
        if not settings.LOCAL_LOGIN:
            if request.method == "POST":
                return HttpResponseForbidden("Password sign-in is turned off here: sign in with single sign-on "
                                             "in the console.", content_type="text/plain; charset=utf-8")
            target = request.GET.get(REDIRECT_FIELD_NAME) or reverse("admin:index")
            return HttpResponseRedirect(f"{reverse('console-login')}?{urlencode({REDIRECT_FIELD_NAME: target})}")
        return super().login(request, extra_context)

    def password_change(  # type: ignore[override]  # a redirect, not the admin's own page
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """One place to change a password, the console's (validated, throttled, recorded in the ledger)."""
        return HttpResponseRedirect(reverse("console-password-change"))


class RawViewMixin:
    """Read-only for everybody, visible to InfoSec and auditors, rows scoped by ``visible_to``.

    Subclasses name a selector in ``visible_to`` (``(user) -> QuerySet``) so that the admin
    shows what the API would show that user, and list the names of actions that InfoSec may
    run in ``infosec_actions``; everybody else gets no action at all (not even Django's
    ``delete_selected``), whatever their superuser flag.
    """

    infosec_actions: tuple[str, ...] = ()

    def visible_to(self, user: Any) -> QuerySet[Any]:
        return self.model._default_manager.all()  # type: ignore[attr-defined, no-any-return]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        if not may_open_admin(request.user):
            return self.model._default_manager.none()  # type: ignore[attr-defined, no-any-return]
        rows = self.visible_to(request.user)
        ordering = self.get_ordering(request)  # type: ignore[attr-defined]
        return rows.order_by(*ordering) if ordering else rows

    def has_module_permission(self, request: HttpRequest) -> bool:
        return may_open_admin(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_open_admin(request.user)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        if not self.infosec_actions or not has_role(request.user, INFOSEC):
            return {}
        actions = super().get_actions(request)  # type: ignore[misc]
        return {name: actions[name] for name in self.infosec_actions if name in actions}


class RawViewAdmin(RawViewMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """The base of every model admin of the product (see the module docstring)."""


# --- what several domains' admins share ------------------------------------------------------------


class TextForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), max_length=5000)


def form_action(
    *, description: str, label: str, help_text: str, form_class: type[forms.Form] = TextForm,
) -> Callable[[Callable[..., Any]], Any]:
    """Turn ``apply(request, obj, cleaned_data)`` into an admin action with an intermediate form page.

    ``apply`` calls a service; a ``GovernanceError`` or ``AccessError`` it raises is shown as a
    message for that object and the other selected objects are still tried (each service call is
    its own transaction, so a refusal leaves nothing half-written).
    """

    def decorate(apply: Callable[..., Any]) -> Any:
        def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:  # type: ignore[type-arg]
            form = form_class(request.POST if request.POST.get("confirm") else None)
            if form.is_bound and form.is_valid():
                done = 0
                for obj in queryset:
                    try:
                        apply(request, obj, form.cleaned_data)
                        done += 1
                    except (GovernanceError, AccessError) as exc:
                        modeladmin.message_user(request, f"{obj}: {exc}", messages.ERROR)
                if done:
                    modeladmin.message_user(request, f"{label}: {done} done", messages.SUCCESS)
                return None
            return TemplateResponse(
                request,
                "admin/governance/action_form.html",
                {
                    **modeladmin.admin_site.each_context(request),
                    "title": description,
                    "help": help_text,
                    "objects": list(queryset),
                    "form": form,
                    "action": apply.__name__,
                    "submit": label,
                    "opts": modeladmin.model._meta,
                },
            )

        action.__name__ = apply.__name__
        return admin.action(description=description)(action)

    return decorate


def pretty_json(value: Any) -> str:
    """A JSON value, indented, as a read-only ``<pre>`` block of an admin page."""
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False, default=str))
