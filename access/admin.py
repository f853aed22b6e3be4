"""The access domain in the admin: accounts, roles, datasets, grants, requests, reviews, service accounts, tokens.

Read-only, like the rest of the admin (see ``web.admin_site``), and
scoped by the same visibility selectors as the API. Grants, access requests,
access reviews, service accounts and API tokens are created and decided in the
console. Two things the console has no page for are done here, each through the
audited service that enforces its rules: role changes
(``access.services.roles.user_role_add/remove``) and closing an account
(``access.services.accounts.user_account_close``);
InfoSec only, never on oneself nor one's own service accounts, with a reason.
Account details (names, emails, passwords, flags) are not editable here.
"""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db.models import QuerySet
from django.http import HttpRequest

from access import selectors as access_selectors
from access.errors import NotPermitted, ServiceError
from access.models import (
    AccessRequest,
    ApiToken,
    Dataset,
    DatasetField,
    Grant,
    ReviewCampaign,
    ReviewItem,
    ServiceAccount,
)
from access.roles import ROLES
from access.services.accounts import user_account_close
from access.services.datasets import effective_pii_categories
from access.services.roles import user_role_add, user_role_remove
from access.services.sso import user_account_enable
from web.admin_site import RawViewAdmin, RawViewMixin, form_action, pretty_json


class RoleReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), max_length=2000,
                             help_text="Recorded in the ledger with the role change (a ticket, say).")


def role_change(*, actor: Any, target: User, role: str, add: bool, reason: str) -> bool:
    """Give or take ``role`` from ``target`` for an admin action, through the service that decides who may.

    ``access.services.roles.user_role_add/remove`` refuse anyone but InfoSec, a change on one's own
    person, and a missing reason; a refusal comes back as ``NotPermitted`` (nothing written)
    so the action shows it as a message. Returns False when there was nothing to change.
    """
    service = user_role_add if add else user_role_remove
    try:
        return service(actor=actor, target=target, role=role, reason=reason)
    except ServiceError as exc:
        raise NotPermitted(str(exc)) from exc


def _role_action(role: str, add: bool) -> Any:
    def apply(request: HttpRequest, obj: User, data: dict[str, Any]) -> None:
        role_change(actor=request.user, target=obj, role=role, add=add, reason=data["reason"])

    apply.__name__ = f"{'add' if add else 'remove'}_role_{role.replace('-', '_')}"
    verb = "Give" if add else "Remove"
    return form_action(
        description=f"{verb} role: {role}…",
        label=f"{verb} role {role}",
        help_text="InfoSec only, never on your own account; the reason is recorded in the ledger.",
        form_class=RoleReasonForm,
    )(apply)


ROLE_ACTIONS = [_role_action(role, add) for role in ROLES for add in (True, False)]


def _reason_form(name: str, help_text: str) -> type[forms.Form]:
    """A one-field form asking the reason an account action records in the ledger."""
    field = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), max_length=500, help_text=help_text)
    return type(name, (forms.Form,), {"reason": field})


CloseReasonForm = _reason_form("CloseReasonForm", "Recorded in the ledger with the closure (a ticket, say).")


@form_action(
    description="Close account…",
    label="Close account",
    help_text="InfoSec only, never your own account. The account can no longer sign in and the retention "
              "of its personal data starts now; the reason is recorded in the ledger.",
    form_class=CloseReasonForm,
)
def close_account(request: HttpRequest, obj: User, data: dict[str, Any]) -> None:
    # The service decides who may (InfoSec, not their own person) and raises GovernanceError otherwise.
    user_account_close(actor=request.user, account=obj, reason=data["reason"])  # type: ignore[arg-type]


EnableReasonForm = _reason_form("EnableReasonForm", "Recorded in the ledger with the enabling (a ticket, say).")


@form_action(
    description="Enable account…",
    label="Enable account",
    help_text="InfoSec only, never your own account. For an account disabled after a long absence "
              "(OIDC_INACTIVE_DAYS); a closed account stays closed. The reason is recorded in the ledger.",
    form_class=EnableReasonForm,
)
def enable_account(request: HttpRequest, obj: User, data: dict[str, Any]) -> None:
    try:
        user_account_enable(actor=request.user, target=obj, reason=data["reason"])  # type: ignore[arg-type]
    except ServiceError as exc:
        raise NotPermitted(str(exc)) from exc


USER_ACTIONS = [*ROLE_ACTIONS, close_account, enable_account]


admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class AuditedUserAdmin(RawViewMixin, UserAdmin):  # type: ignore[type-arg]
    """Accounts and their roles, read-only; InfoSec changes roles with the role actions."""

    actions = USER_ACTIONS
    infosec_actions = tuple(action.__name__ for action in USER_ACTIONS)
    list_display = ("username", "is_active", "roles", "is_superuser", "last_login")
    list_filter = ("is_active", "is_superuser", "is_staff", "groups")
    # Usernames only: the admin is not a way to look people up by name or email.
    search_fields = ("username",)
    fieldsets = (
        (None, {"fields": ("username", "is_active", "groups")}),
        ("Flags (grant nothing here: access is by role)", {"fields": ("is_staff", "is_superuser")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )

    @admin.display(description="roles")
    def roles(self, obj: User) -> str:
        return ", ".join(g.name for g in obj.groups.all())

    def visible_to(self, user: Any) -> QuerySet[User]:
        return User.objects.prefetch_related("groups")


@admin.register(Group)
class RoleGroupAdmin(RawViewMixin, GroupAdmin):
    """Roles are groups; who holds one changes only through the role actions on users."""

    fields = ("name",)


# --- grants, access requests, reviews and service accounts (changed in the console) ---------------------------


def _principal_text(grant: Grant) -> str:
    if grant.user is not None:
        return f"user {grant.user.username}"
    return f"group {grant.group.name}" if grant.group is not None else ""


def _label(row: Any) -> str:
    found = getattr(row, "_resource_label", None)
    if found is None:
        found = access_selectors.resource_labels([row])[(row.resource_type, row.resource_id)]
    return str(found)


class _LabelledRows(RawViewAdmin):
    """Labels every listed row's resource with one query per resource type (no query per row)."""

    def rows_on_resources(self, rows: list[Any]) -> list[Any]:
        return rows

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        changelist.result_list = list(changelist.result_list)
        on_resources = self.rows_on_resources(changelist.result_list)
        labels = access_selectors.resource_labels(on_resources)
        for row in on_resources:
            row._resource_label = labels[(row.resource_type, row.resource_id)]
        return changelist


@admin.register(Grant)
class GrantAdmin(_LabelledRows):
    list_display = ("id", "principal", "resource", "permission", "expires_at", "status", "granted_by", "created_at")
    list_filter = ("resource_type", "permission")
    list_select_related = ("user", "group", "granted_by", "revoked_by")
    search_fields = ("user__username", "group__name")

    def visible_to(self, user: Any) -> QuerySet[Grant]:
        return access_selectors.grants_visible_to(user)

    @admin.display(description="principal")
    def principal(self, obj: Grant) -> str:
        return _principal_text(obj)

    @admin.display(description="resource")
    def resource(self, obj: Grant) -> str:
        return _label(obj)

    @admin.display(description="status")
    def status(self, obj: Grant) -> str:
        return access_selectors.grant_status(obj)


@admin.register(AccessRequest)
class AccessRequestAdmin(_LabelledRows):
    list_display = ("id", "requester", "principal_user", "resource", "permission", "duration_days", "state",
                    "needs_infosec", "owner_approved_by", "infosec_approved_by", "created_at")
    list_filter = ("state", "resource_type", "needs_infosec")
    list_select_related = ("requester", "principal_user", "owner_approved_by", "infosec_approved_by")

    def visible_to(self, user: Any) -> QuerySet[AccessRequest]:
        return access_selectors.access_requests_visible_to(user)

    @admin.display(description="resource")
    def resource(self, obj: AccessRequest) -> str:
        return _label(obj)


@admin.register(ReviewCampaign)
class ReviewCampaignAdmin(RawViewAdmin):
    list_display = ("name", "state", "deadline", "created_by", "created_at", "closed_at")
    list_filter = ("state",)
    list_select_related = ("created_by",)
    fields = ("name", "state", "deadline", "created_by", "created_at", "closed_at", "report_pretty")
    readonly_fields = ("report_pretty",)

    def visible_to(self, user: Any) -> QuerySet[ReviewCampaign]:
        return access_selectors.review_campaigns_visible_to(user)

    @admin.display(description="report")
    def report_pretty(self, obj: ReviewCampaign) -> str:
        return pretty_json(obj.report)


@admin.register(ReviewItem)
class ReviewItemAdmin(_LabelledRows):
    list_display = ("campaign", "principal", "resource", "permission", "reviewer", "decision", "decided_by",
                    "decided_at")
    list_filter = ("decision", "campaign")
    list_select_related = ("campaign", "grant__user", "grant__group", "reviewer", "decided_by")

    def visible_to(self, user: Any) -> QuerySet[ReviewItem]:
        return access_selectors.review_items_visible_to(user)

    def rows_on_resources(self, rows: list[Any]) -> list[Any]:
        return [item.grant for item in rows]

    @admin.display(description="principal")
    def principal(self, obj: ReviewItem) -> str:
        return _principal_text(obj.grant)

    @admin.display(description="resource")
    def resource(self, obj: ReviewItem) -> str:
        return _label(obj.grant)

    @admin.display(description="permission")
    def permission(self, obj: ReviewItem) -> str:
        return obj.grant.permission


@admin.register(ServiceAccount)
class ServiceAccountAdmin(RawViewAdmin):
    list_display = ("name", "user", "owner", "description", "created_at", "disabled_at")
    list_select_related = ("user", "owner")
    fields = ("name", "user", "owner", "description", "created_at", "disabled_at")

    def visible_to(self, user: Any) -> QuerySet[ServiceAccount]:
        return access_selectors.service_accounts_visible_to(user)


@admin.register(ApiToken)
class ApiTokenAdmin(RawViewAdmin):
    """Tokens are issued and revoked in the console; the digest is never shown."""

    list_display = ("service_account", "name", "prefix", "scope_list", "created_by", "created_at", "expires_at",
                    "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    list_select_related = ("service_account", "created_by")
    search_fields = ("prefix", "name", "service_account__name")
    exclude = ("digest",)

    def visible_to(self, user: Any) -> QuerySet[ApiToken]:
        return ApiToken.objects.filter(service_account__in=access_selectors.service_accounts_visible_to(user))

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiToken) -> str:
        return ", ".join(obj.scopes)


# --- the data catalog: datasets and their fields ------------------------------------------------------


class DatasetFieldInline(RawViewMixin, admin.TabularInline):  # type: ignore[type-arg]
    model = DatasetField
    fields = ("name", "level", "pii_categories", "classified_by", "classified_at", "classification_reason")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Dataset)
class DatasetAdmin(RawViewAdmin):
    list_display = ("name", "owner", "level", "effective_level", "pii", "classified_by", "classified_at")
    list_filter = ("effective_level", "level")
    search_fields = ("name", "source_uri")
    list_select_related = ("owner", "classified_by")
    inlines = [DatasetFieldInline]
    fields = ("name", "owner", "source_uri", "description", "level", "pii_categories", "effective_level",
              "classified_by", "classified_at", "classification_reason", "created_at")

    def visible_to(self, user: Any) -> QuerySet[Dataset]:
        return access_selectors.datasets_visible_to(user)

    @admin.display(description="PII (with fields)")
    def pii(self, obj: Dataset) -> str:
        return ", ".join(effective_pii_categories(obj)) or "-"


@admin.register(DatasetField)
class DatasetFieldAdmin(RawViewAdmin):
    list_display = ("dataset", "name", "level", "pii_categories", "classified_by", "classified_at")
    list_filter = ("level",)
    search_fields = ("dataset__name", "name")
    list_select_related = ("dataset", "classified_by")

    def visible_to(self, user: Any) -> QuerySet[DatasetField]:
        return DatasetField.objects.filter(dataset__in=access_selectors.datasets_visible_to(user))
