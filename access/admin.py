"""The access domain in the admin.

Users: roles change only through the audited role services. Grants, access
requests, review campaigns and items, service accounts: read-only lists whose
changes are actions or add forms that call ``access.grants`` services (which
decide who may do what); a refusal is shown as a message and changes nothing.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from access import grants as access_services
from access import selectors as access_selectors
from access import tokens as token_services
from access.classification import LEVEL_CHOICES
from access.errors import AccessError
from access.models import AccessRequest, ApiToken, Dataset, Grant, ReviewCampaign, ReviewItem, ServiceAccount
from access.roles import INFOSEC, MODEL_OWNER, ROLES
from access.services import user_role_add, user_role_remove
from audit.ledger import Actor
from governance.admin import GovernanceModelAdmin, InfosecEditsAdmin, _pretty, form_action
from governance.admin_site import has_admin_role, has_console_role, has_role
from governance.errors import GovernanceError
from governance.models import Environment, RegisteredModel

T = TypeVar("T")


def _role_action(role: str, add: bool) -> Any:
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[User]) -> None:  # type: ignore[type-arg]
        service = user_role_add if add else user_role_remove
        changed = sum(
            service(actor=Actor.user(request.user), user=user, role=role, reason="admin action")
            for user in queryset
        )
        verb = "Gave" if add else "Removed"
        modeladmin.message_user(request, f"{verb} role {role}: {changed} user(s)", messages.SUCCESS)

    action.__name__ = f"{'add' if add else 'remove'}_role_{role.replace('-', '_')}"
    return admin.action(description=f"{'Give' if add else 'Remove'} role: {role}")(action)


admin.site.unregister(User)


@admin.register(User)
class AuditedUserAdmin(UserAdmin):  # type: ignore[type-arg]
    """Groups are read-only here: a role change must leave a ledger entry."""

    readonly_fields = ("groups", "user_permissions", "is_superuser", "last_login", "date_joined")
    actions = [_role_action(role, add) for role in ROLES for add in (True, False)]
    list_display = ("username", "email", "is_active", "roles")

    @admin.display(description="roles")
    def roles(self, obj: User) -> str:
        return ", ".join(g.name for g in obj.groups.all())

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return super().get_queryset(request).prefetch_related("groups")


# --- grants, access requests, reviews and service accounts (access.grants) ----------------------------------


def _as_governance_error(apply: Callable[..., Any]) -> Callable[..., Any]:
    """``form_action`` reports ``GovernanceError``s; access services raise ``AccessError``s of the same shape."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return apply(*args, **kwargs)
        except AccessError as exc:
            raise GovernanceError(str(exc), code=exc.code) from exc

    wrapped.__name__ = apply.__name__
    return wrapped


def _service_save(call: Callable[[], T]) -> T:
    """Run a service from an add form; ``InfosecEditsAdmin.save_model`` shows a ``GovernanceError`` as a message."""
    try:
        return call()
    except AccessError as exc:
        raise GovernanceError(str(exc), code=exc.code) from exc


class OptionalTextForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), max_length=5000, required=False)


class ConfirmForm(forms.Form):
    sure = forms.BooleanField(label="I understand that every grant still pending review will be revoked")


def _owned(user: Any) -> Q:
    """Rows (with ``resource_type``/``resource_id``) on resources ``user`` owns."""
    return Q(resource_type="dataset", resource_id__in=Dataset.objects.filter(owner=user).values("pk")) | Q(
        resource_type="registered_model", resource_id__in=RegisteredModel.objects.filter(owner=user).values("pk")
    )


def _owns_something(user: Any) -> bool:
    return Dataset.objects.filter(owner=user).exists() or RegisteredModel.objects.filter(owner=user).exists()


class _ResourceChoiceForm(forms.ModelForm):  # type: ignore[type-arg]
    """Exactly one of a dataset, a registered model or an environment."""

    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all(), required=False)
    registered_model = forms.ModelChoiceField(queryset=RegisteredModel.objects.all(), required=False)
    environment = forms.ModelChoiceField(queryset=Environment.objects.all(), required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        chosen = [data[k] for k in ("dataset", "registered_model", "environment") if data.get(k) is not None]
        if len(chosen) != 1:
            raise forms.ValidationError("choose exactly one dataset, registered model or environment")
        data["resource"] = chosen[0]
        return data


class GrantForm(_ResourceChoiceForm):
    class Meta:
        model = Grant
        fields = ("user", "group", "dataset", "registered_model", "environment", "permission", "expires_at",
                  "justification")


class AccessRequestForm(_ResourceChoiceForm):
    for_service_account = forms.ModelChoiceField(queryset=ServiceAccount.objects.all(), required=False)

    class Meta:
        model = AccessRequest
        fields = ("dataset", "registered_model", "environment", "permission", "duration_days", "justification",
                  "for_service_account")


def _label_rows(rows: list[Any]) -> None:
    """Attach each row's resource label, with one query per resource type (no query per row)."""
    labels = access_selectors.resource_labels(rows)
    for row in rows:
        row._resource_label = labels[(row.resource_type, row.resource_id)]


def _principal_text(grant: Grant) -> str:
    if grant.user is not None:
        return f"user {grant.user.username}"
    return f"group {grant.group.name}" if grant.group is not None else ""


def _label(row: Any) -> str:
    found = getattr(row, "_resource_label", None)
    if found is None:
        found = access_selectors.resource_labels([row])[(row.resource_type, row.resource_id)]
    return str(found)


class _AddThroughService(InfosecEditsAdmin):
    """Read-only rows; the add form (when allowed) calls a service. The change page is view-only."""

    add_form: type[forms.ModelForm]  # type: ignore[type-arg]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = self.add_form  # with the admin's widgets (date/time pickers, related lookups)
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return self.add_form._meta.fields
        return super().get_fields(request, obj)


@admin.register(Grant)
class GrantAdmin(_AddThroughService):
    add_form = GrantForm
    list_display = ("id", "principal", "resource", "permission", "expires_at", "status", "granted_by", "created_at")
    list_filter = ("resource_type", "permission")
    list_select_related = ("user", "group", "granted_by", "revoked_by")
    search_fields = ("user__username", "group__name")
    actions = ["revoke"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Grant]:
        grants = super().get_queryset(request).select_related(*self.list_select_related)
        user = request.user
        if has_admin_role(user):  # InfoSec and auditors see every grant
            return grants
        mine = Q(user=user) | Q(group__in=user.groups.all()) | Q(granted_by=user)
        return grants.filter(mine | _owned(user))

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        changelist.result_list = list(changelist.result_list)
        _label_rows(changelist.result_list)
        return changelist

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_infosec(request) or (has_console_role(request.user) and _owns_something(request.user))

    def save_with_service(self, request: HttpRequest, obj: Grant, form: Any, change: bool) -> Grant:
        data = form.cleaned_data
        return _service_save(lambda: access_services.grant_create(
            granted_by=request.user,  # type: ignore[arg-type]
            principal=data["user"] or data["group"],
            resource=data["resource"],
            permission=data["permission"],
            expires_at=data["expires_at"],
            justification=data["justification"],
        ))

    @admin.display(description="principal")
    def principal(self, obj: Grant) -> str:
        return _principal_text(obj)

    @admin.display(description="resource")
    def resource(self, obj: Grant) -> str:
        return _label(obj)

    @admin.display(description="status")
    def status(self, obj: Grant) -> str:
        return access_selectors.grant_status(obj)

    @form_action(description="Revoke…", label="Revoke",
                 help_text="End the selected grants now: InfoSec, the resource's owner or the granter (reason "
                 "required).")
    @_as_governance_error
    def revoke(request: HttpRequest, obj: Grant, data: dict[str, Any]) -> None:
        access_services.grant_revoke(actor_user=request.user, grant=obj, reason=data["text"])  # type: ignore[arg-type]


@admin.register(AccessRequest)
class AccessRequestAdmin(_AddThroughService):
    add_form = AccessRequestForm
    list_display = ("id", "requester", "principal_user", "resource", "permission", "duration_days", "state",
                    "needs_infosec", "owner_approved_by", "infosec_approved_by", "created_at")
    list_filter = ("state", "resource_type", "needs_infosec")
    list_select_related = ("requester", "principal_user", "owner_approved_by", "infosec_approved_by")
    actions = ["approve", "reject", "withdraw"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[AccessRequest]:
        requests = super().get_queryset(request).select_related(*self.list_select_related)
        user = request.user
        if has_admin_role(user):
            return requests
        return requests.filter(Q(requester=user) | Q(principal_user=user) | _owned(user))

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        changelist.result_list = list(changelist.result_list)
        _label_rows(changelist.result_list)
        return changelist

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_console_role(request.user)  # anyone with a role may ask

    def save_with_service(self, request: HttpRequest, obj: AccessRequest, form: Any, change: bool) -> AccessRequest:
        data = form.cleaned_data
        return _service_save(lambda: access_services.access_request_create(
            user=request.user,  # type: ignore[arg-type]
            resource=data["resource"],
            permission=data["permission"],
            duration_days=data["duration_days"],
            justification=data["justification"],
            for_service_account=data.get("for_service_account"),
        ))

    @admin.display(description="resource")
    def resource(self, obj: AccessRequest) -> str:
        return _label(obj)

    @form_action(description="Approve…", label="Approve",
                 help_text="Approve as the resource's owner or as InfoSec (comment required). The grant is created "
                 "once every needed approval is in.")
    @_as_governance_error
    def approve(request: HttpRequest, obj: AccessRequest, data: dict[str, Any]) -> None:
        access_services.access_request_approve(user=request.user, request=obj, comment=data["text"])  # type: ignore[arg-type]

    @form_action(description="Reject…", label="Reject", help_text="Reject with a comment (required).")
    @_as_governance_error
    def reject(request: HttpRequest, obj: AccessRequest, data: dict[str, Any]) -> None:
        access_services.access_request_reject(user=request.user, request=obj, comment=data["text"])  # type: ignore[arg-type]

    @form_action(description="Withdraw…", label="Withdraw", help_text="Withdraw your own request (reason optional).",
                 form_class=OptionalTextForm)
    @_as_governance_error
    def withdraw(request: HttpRequest, obj: AccessRequest, data: dict[str, Any]) -> None:
        access_services.access_request_withdraw(user=request.user, request=obj, reason=data["text"])  # type: ignore[arg-type]


class ReviewCampaignForm(forms.ModelForm):  # type: ignore[type-arg]
    levels = forms.MultipleChoiceField(choices=LEVEL_CHOICES, initial=list(access_services.DEFAULT_REVIEW_LEVELS),
                                       widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ReviewCampaign
        fields = ("name", "deadline", "levels")


@admin.register(ReviewCampaign)
class ReviewCampaignAdmin(_AddThroughService):
    add_form = ReviewCampaignForm
    list_display = ("name", "state", "deadline", "created_by", "created_at", "closed_at")
    list_filter = ("state",)
    list_select_related = ("created_by",)
    fields = ("name", "state", "deadline", "created_by", "created_at", "closed_at", "report_pretty")
    readonly_fields = fields
    actions = ["close"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else ()

    def save_with_service(self, request: HttpRequest, obj: ReviewCampaign, form: Any, change: bool) -> ReviewCampaign:
        data = form.cleaned_data
        return _service_save(lambda: access_services.review_campaign_start(
            user=request.user,  # type: ignore[arg-type]
            name=data["name"], deadline=data["deadline"], levels=tuple(data["levels"]),
        ))

    @admin.display(description="report")
    def report_pretty(self, obj: ReviewCampaign) -> str:
        return _pretty(obj.report)

    @form_action(description="Close (deadline passed)…", label="Close",
                 help_text="InfoSec only. Closes campaigns whose deadline has passed: grants nobody certified are "
                 "revoked.", form_class=ConfirmForm)
    @_as_governance_error
    def close(request: HttpRequest, obj: ReviewCampaign, data: dict[str, Any]) -> None:
        if not access_services.is_infosec(request.user):  # type: ignore[arg-type]
            raise AccessError("only InfoSec may close an access review from the console", code="not_permitted")
        access_services.review_campaign_close(campaign=obj)


@admin.register(ReviewItem)
class ReviewItemAdmin(GovernanceModelAdmin):
    list_display = ("campaign", "principal", "resource", "permission", "reviewer", "decision", "decided_by",
                    "decided_at")
    list_filter = ("decision", "campaign")
    list_select_related = ("campaign", "grant__user", "grant__group", "reviewer", "decided_by")
    actions = ["certify", "revoke"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReviewItem]:
        items = super().get_queryset(request).select_related(*self.list_select_related)
        if has_admin_role(request.user):
            return items
        return items.filter(reviewer=request.user)

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        changelist.result_list = list(changelist.result_list)
        _label_rows([item.grant for item in changelist.result_list])
        return changelist

    @admin.display(description="principal")
    def principal(self, obj: ReviewItem) -> str:
        return _principal_text(obj.grant)

    @admin.display(description="resource")
    def resource(self, obj: ReviewItem) -> str:
        return _label(obj.grant)

    @admin.display(description="permission")
    def permission(self, obj: ReviewItem) -> str:
        return obj.grant.permission

    @form_action(description="Certify…", label="Certify", help_text="Keep the selected grants (comment optional).",
                 form_class=OptionalTextForm)
    @_as_governance_error
    def certify(request: HttpRequest, obj: ReviewItem, data: dict[str, Any]) -> None:
        access_services.review_item_decide(
            user=request.user, item=obj, decision="certified", comment=data["text"]  # type: ignore[arg-type]
        )

    @form_action(description="Revoke…", label="Revoke", help_text="Revoke the selected grants now (comment required).")
    @_as_governance_error
    def revoke(request: HttpRequest, obj: ReviewItem, data: dict[str, Any]) -> None:
        access_services.review_item_decide(
            user=request.user, item=obj, decision="revoked", comment=data["text"]  # type: ignore[arg-type]
        )


class ServiceAccountForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = ServiceAccount
        fields = ("name", "description")


@admin.register(ServiceAccount)
class ServiceAccountAdmin(_AddThroughService):
    add_form = ServiceAccountForm
    list_display = ("name", "user", "owner", "description", "created_at", "disabled_at")
    list_select_related = ("user", "owner")
    fields = ("name", "user", "owner", "description", "created_at", "disabled_at")
    readonly_fields = fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else ()

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_role(request.user, (INFOSEC, MODEL_OWNER))

    def save_with_service(self, request: HttpRequest, obj: ServiceAccount, form: Any, change: bool) -> ServiceAccount:
        data = form.cleaned_data
        return _service_save(lambda: access_services.service_account_create(
            user=request.user, name=data["name"], description=data["description"]  # type: ignore[arg-type]
        ))

    actions = ["issue_token"]

    @admin.action(description="Issue an API token…")
    def issue_token(self, request: HttpRequest, queryset: QuerySet[ServiceAccount]) -> HttpResponse | None:
        """Ask for name, scopes and expiry; show the token once on the page itself (never stored, never a message)."""
        accounts = list(queryset[:2])
        if len(accounts) != 1:
            self.message_user(request, "Select exactly one service account to issue a token to.", messages.ERROR)
            return None
        account = accounts[0]
        form = IssueTokenForm(request.POST if request.POST.get("confirm") else None)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request), "title": f"Issue an API token to {account.name}",
            "help": "The token is shown once, on the next page. Store it in your secret manager.",
            "objects": [account], "form": form, "action": "issue_token", "submit": "Issue token",
            "opts": self.model._meta,
        }
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            try:
                issued = token_services.api_token_create(
                    user=request.user, service_account=account, name=data["name"],  # type: ignore[arg-type]
                    scopes=list(data["scopes"]), expires_in_days=data["expires_in_days"],
                )
            except AccessError as exc:
                self.message_user(request, f"{account}: {exc}", messages.ERROR)
                return None
            response = TemplateResponse(request, "admin/access/token_issued.html", {**context, "issued": issued})
            response["Cache-Control"] = "no-store"
            return response
        return TemplateResponse(request, "admin/governance/action_form.html", context)


class IssueTokenForm(forms.Form):
    name = forms.CharField(max_length=100)
    scopes = forms.MultipleChoiceField(choices=sorted(token_services.SCOPES.items()),
                                       widget=forms.CheckboxSelectMultiple)
    expires_in_days = forms.IntegerField(min_value=1, max_value=token_services.MAX_DAYS,
                                         initial=token_services.DEFAULT_DAYS)


class RevokeTokenForm(forms.Form):
    text = forms.CharField(label="Reason", max_length=500, widget=forms.Textarea)


@admin.register(ApiToken)
class ApiTokenAdmin(GovernanceModelAdmin):
    """Read-only: tokens are issued from the service account page and revoked by the action below."""

    list_display = ("service_account", "name", "prefix", "scope_list", "created_by", "created_at", "expires_at",
                    "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    list_select_related = ("service_account", "created_by")
    search_fields = ("prefix", "name", "service_account__name")
    exclude = ("digest",)
    actions = ["revoke"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        tokens = super().get_queryset(request).select_related(*self.list_select_related)
        if has_role(request.user, (INFOSEC,)) or has_admin_role(request.user):
            return tokens
        return tokens.filter(service_account__owner=request.user)

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiToken) -> str:
        return ", ".join(obj.scopes)

    @form_action(description="Revoke…", label="Revoke", help_text="Revoke the selected tokens now (reason required).",
                 form_class=RevokeTokenForm)
    @_as_governance_error
    def revoke(request: HttpRequest, obj: ApiToken, data: dict[str, Any]) -> None:
        token_services.api_token_revoke(user=request.user, token=obj, reason=data["text"])  # type: ignore[arg-type]
