"""The governance domain in the admin: read-only lists and details, with actions that call the services.

Nothing here changes a row directly. Each action asks for the comment, reason
or justification its service requires on an intermediate page, then calls the
service once per selected object and reports each refusal as a message.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html

from access import catalog
from access.classification import LEVEL_CHOICES
from access.errors import AccessError
from access.models import PII_CATEGORIES, Dataset, DatasetField, Lineage
from access.roles import DATA_STEWARD, INFOSEC
from governance import services
from governance.admin_site import has_admin_role, has_console_role, has_role
from governance.errors import GovernanceError
from governance.models import (
    BreakGlassReview,
    ComplianceViolation,
    Environment,
    FreezeWindow,
    LiveDeployment,
    ModelVersion,
    PromotionPolicy,
    PromotionRequest,
    RegisteredModel,
)
from governance.policy import PolicyError, parse_policy


class TextForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), max_length=5000)


class BreakGlassForm(forms.Form):
    environment = forms.ModelChoiceField(queryset=Environment.objects.all())
    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), max_length=5000)


class PromoteForm(forms.Form):
    environment = forms.ModelChoiceField(queryset=Environment.objects.all())
    strategy = forms.ChoiceField(choices=PromotionRequest.Strategy.choices)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), max_length=5000)


def form_action(
    *, description: str, label: str, help_text: str, form_class: type[forms.Form] = TextForm,
) -> Callable[[Callable[..., Any]], Any]:
    """Turn ``apply(request, obj, cleaned_data)`` into an admin action with an intermediate form page."""

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


class GovernanceModelAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Visible to every governance role; rows change only through actions (services)."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_console_role(request.user)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return has_console_role(request.user)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _pretty(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False, default=str))


@admin.register(RegisteredModel)
class RegisteredModelAdmin(GovernanceModelAdmin):
    list_display = ("name", "owner", "synced_at")
    search_fields = ("name",)
    list_select_related = ("owner",)


@admin.register(ModelVersion)
class ModelVersionAdmin(GovernanceModelAdmin):
    list_display = ("__str__", "run_id", "creator", "data_classification", "mlflow_status", "synced_at")
    list_filter = ("data_classification", "model")
    list_select_related = ("model",)
    search_fields = ("model__name", "run_id")
    readonly_fields = ("metrics_pretty", "params_pretty", "datasets_pretty")
    actions = ["request_promotion", "break_glass"]

    @admin.display(description="metrics")
    def metrics_pretty(self, obj: ModelVersion) -> str:
        return _pretty(obj.metrics)

    @admin.display(description="params")
    def params_pretty(self, obj: ModelVersion) -> str:
        return _pretty(obj.params)

    @admin.display(description="datasets")
    def datasets_pretty(self, obj: ModelVersion) -> str:
        return _pretty(obj.datasets)

    @form_action(
        description="Request promotion…",
        label="Request promotion",
        help_text="Ask to promote the selected versions. Gates are evaluated now and kept as evidence.",
        form_class=PromoteForm,
    )
    def request_promotion(request: HttpRequest, obj: ModelVersion, data: dict[str, Any]) -> None:
        services.promotion_request(
            user=request.user,  # type: ignore[arg-type]
            version=obj,
            environment=data["environment"],
            strategy=data["strategy"],
            reason=data["reason"],
        )


    @form_action(
        description="Break-glass promotion…",
        label="Promote now (break-glass)",
        help_text="Emergency promotion without approvals (break-glass members only). It is flagged in the "
        "ledger and opens a review that the environment's approvers must complete before its deadline.",
        form_class=BreakGlassForm,
    )
    def break_glass(request: HttpRequest, obj: ModelVersion, data: dict[str, Any]) -> None:
        services.promotion_break_glass(
            user=request.user,  # type: ignore[arg-type]
            version=obj,
            environment=data["environment"],
            justification=data["justification"],
        )


@admin.register(PromotionRequest)
class PromotionRequestAdmin(GovernanceModelAdmin):
    list_display = ("id", "version", "environment", "state", "strategy", "requested_by", "is_break_glass", "created_at")
    list_filter = ("state", "environment", "strategy", "is_break_glass")
    list_select_related = ("version__model", "environment", "requested_by")
    readonly_fields = ("evidence_pretty", "status_pretty")
    actions = ["approve", "reject", "withdraw", "rollback"]

    @admin.display(description="gate evidence")
    def evidence_pretty(self, obj: PromotionRequest) -> str:
        return _pretty(obj.evidence)

    @admin.display(description="approval status")
    def status_pretty(self, obj: PromotionRequest) -> str:
        return _pretty(services.approval_status(obj))

    @form_action(description="Approve…", label="Approve", help_text="Approve with a comment (required).")
    def approve(request: HttpRequest, obj: PromotionRequest, data: dict[str, Any]) -> None:
        services.promotion_approve(user=request.user, request=obj, comment=data["text"])  # type: ignore[arg-type]

    @form_action(description="Reject…", label="Reject", help_text="Reject with a comment (required).")
    def reject(request: HttpRequest, obj: PromotionRequest, data: dict[str, Any]) -> None:
        services.promotion_reject(user=request.user, request=obj, comment=data["text"])  # type: ignore[arg-type]

    @form_action(description="Withdraw…", label="Withdraw", help_text="Withdraw with a reason (required).")
    def withdraw(request: HttpRequest, obj: PromotionRequest, data: dict[str, Any]) -> None:
        services.promotion_withdraw(user=request.user, request=obj, reason=data["text"])  # type: ignore[arg-type]

    @form_action(
        description="Roll back to the previous version…",
        label="Roll back",
        help_text="Put the previously deployed version back in this environment (reason required).",
    )
    def rollback(request: HttpRequest, obj: PromotionRequest, data: dict[str, Any]) -> None:
        services.promotion_rollback(
            user=request.user,  # type: ignore[arg-type]
            model=obj.version.model,
            environment=obj.environment,
            reason=data["text"],
        )


@admin.register(BreakGlassReview)
class BreakGlassReviewAdmin(GovernanceModelAdmin):
    list_display = ("request", "state", "due_at", "reviewed_by", "reviewed_at")
    list_filter = ("state",)
    list_select_related = ("request__version__model", "request__environment", "reviewed_by")
    actions = ["approve_review"]

    @form_action(description="Approve break-glass review…", label="Approve review", help_text="Comment required.")
    def approve_review(request: HttpRequest, obj: BreakGlassReview, data: dict[str, Any]) -> None:
        services.break_glass_review_approve(user=request.user, review=obj, comment=data["text"])  # type: ignore[arg-type]


@admin.register(ComplianceViolation)
class ComplianceViolationAdmin(GovernanceModelAdmin):
    list_display = ("detected_at", "kind", "summary", "reverted", "acknowledged_by")
    list_filter = ("kind", "reverted")
    list_select_related = ("acknowledged_by",)
    actions = ["acknowledge"]

    @form_action(description="Acknowledge…", label="Acknowledge", help_text="InfoSec only; comment required.")
    def acknowledge(request: HttpRequest, obj: ComplianceViolation, data: dict[str, Any]) -> None:
        services.violation_acknowledge(user=request.user, violation=obj, comment=data["text"])  # type: ignore[arg-type]


@admin.register(LiveDeployment)
class LiveDeploymentAdmin(GovernanceModelAdmin):
    list_display = ("model", "environment", "version", "promotion", "since")
    list_select_related = ("model", "environment", "version__model", "promotion__version__model",
                           "promotion__environment")


class InfosecEditsAdmin(GovernanceModelAdmin):
    """InfoSec adds (and where allowed edits) rows here; saving goes through a service."""

    def _is_infosec(self, request: HttpRequest) -> bool:
        return has_role(request.user, ("infosec",))

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_infosec(request)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        try:
            saved = self.save_with_service(request, obj, form, change)
        except (GovernanceError, AccessError) as exc:
            # The form validated, so this is a rule (permission, clash); show it, change nothing.
            self.message_user(request, str(exc), messages.ERROR)
            raise _Refused from exc
        obj.pk = saved.pk

    def save_with_service(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> Any:
        raise NotImplementedError

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return super().changeform_view(request, *args, **kwargs)
        except _Refused:
            from django.shortcuts import redirect

            return redirect(request.path)


class _Refused(Exception):
    pass


@admin.register(Environment)
class EnvironmentAdmin(InfosecEditsAdmin):
    list_display = ("name", "order", "mlflow_alias", "max_data_classification", "description")
    fields = ("name", "order", "mlflow_alias", "max_data_classification", "description")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_infosec(request)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("name", "order") if obj is not None else ()

    def save_with_service(self, request: HttpRequest, obj: Environment, form: Any, change: bool) -> Environment:
        data = form.cleaned_data
        if change:
            return services.environment_update(
                user=request.user,  # type: ignore[arg-type]
                environment=Environment.objects.get(pk=obj.pk),
                max_data_classification=data["max_data_classification"],
                mlflow_alias=data["mlflow_alias"],
                description=data["description"],
            )
        return services.environment_create(
            user=request.user,  # type: ignore[arg-type]
            name=data["name"], order=data["order"], mlflow_alias=data["mlflow_alias"],
            max_data_classification=data["max_data_classification"], description=data["description"],
        )


@admin.register(FreezeWindow)
class FreezeWindowAdmin(InfosecEditsAdmin):
    list_display = ("environment", "starts_at", "ends_at", "reason", "created_by")
    list_select_related = ("environment", "created_by")
    fields = ("environment", "starts_at", "ends_at", "reason")

    def save_with_service(self, request: HttpRequest, obj: FreezeWindow, form: Any, change: bool) -> FreezeWindow:
        data = form.cleaned_data
        return services.freeze_window_create(
            user=request.user,  # type: ignore[arg-type]
            environment=data["environment"], starts_at=data["starts_at"], ends_at=data["ends_at"],
            reason=data["reason"],
        )


class PolicyForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = PromotionPolicy
        fields = ("environment", "model", "rules")

    def clean_rules(self) -> Any:
        rules = self.cleaned_data["rules"]
        try:
            parse_policy(rules)
        except PolicyError as exc:
            raise forms.ValidationError(str(exc)) from None
        return rules


@admin.register(PromotionPolicy)
class PromotionPolicyAdmin(GovernanceModelAdmin):
    """InfoSec edits policies here; saving goes through services.policy_set (validated, recorded)."""

    form = PolicyForm
    list_display = ("environment", "model", "updated_at")
    list_select_related = ("environment", "model")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_admin_role(request.user) and "infosec" in {g.name for g in request.user.groups.all()}

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_change_permission(request)

    def save_model(self, request: HttpRequest, obj: PromotionPolicy, form: Any, change: bool) -> None:
        try:
            saved = services.policy_set(
                user=request.user,  # type: ignore[arg-type]
                environment=obj.environment,
                model=obj.model,
                rules=obj.rules,
            )
        except (GovernanceError, AccessError) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        obj.pk = saved.pk



# --- access catalog: datasets, their fields and lineage (services in access.catalog) ----------------------


class ClassifyForm(forms.Form):
    level = forms.ChoiceField(choices=LEVEL_CHOICES)
    pii_categories = forms.MultipleChoiceField(
        choices=[(c, c) for c in PII_CATEGORIES], required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Personal data (card_pan included) needs confidential or higher.",
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), max_length=5000)


class ClassifyFieldForm(ClassifyForm):
    field_name = forms.CharField(max_length=200, help_text="Created when the dataset has no such field yet.")
    field_order = ["field_name", "level", "pii_categories", "reason"]


class DatasetFieldInline(admin.TabularInline):  # type: ignore[type-arg]
    model = DatasetField
    fields = ("name", "level", "pii_categories", "classified_by", "classified_at", "classification_reason")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Dataset)
class DatasetAdmin(InfosecEditsAdmin):
    """Data stewards and InfoSec register datasets (``dataset_create``) and classify them through actions."""

    list_display = ("name", "owner", "level", "effective_level", "pii", "classified_by", "classified_at")
    list_filter = ("effective_level", "level")
    search_fields = ("name", "source_uri")
    list_select_related = ("owner", "classified_by")
    inlines = [DatasetFieldInline]
    actions = ["classify", "classify_field"]

    def _is_infosec(self, request: HttpRequest) -> bool:
        return has_role(request.user, (DATA_STEWARD, INFOSEC))

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        base = ("name", "owner", "source_uri", "description")
        if obj is None:
            return base
        return (*base, "level", "pii_categories", "effective_level", "classified_by", "classified_at",
                "classification_reason", "created_at")

    @admin.display(description="PII (with fields)")
    def pii(self, obj: Dataset) -> str:
        return ", ".join(catalog.effective_pii_categories(obj)) or "-"

    def save_with_service(self, request: HttpRequest, obj: Dataset, form: Any, change: bool) -> Dataset:
        data = form.cleaned_data
        return catalog.dataset_create(
            user=request.user,  # type: ignore[arg-type]
            name=data["name"], owner=data["owner"], source_uri=data["source_uri"], description=data["description"],
        )

    @form_action(
        description="Classify…",
        label="Classify",
        help_text="Set the dataset's own classification and PII categories (data stewards and InfoSec). Model "
        "versions trained on it are re-classified; their pending promotions are re-evaluated and a version live "
        "where its new level is not allowed is flagged.",
        form_class=ClassifyForm,
    )
    def classify(request: HttpRequest, obj: Dataset, data: dict[str, Any]) -> None:
        catalog.dataset_classify(
            user=request.user,  # type: ignore[arg-type]
            dataset=obj, level=data["level"], pii_categories=data["pii_categories"], reason=data["reason"],
        )

    @form_action(
        description="Classify a field…",
        label="Classify field",
        help_text="Classify one field (column) of the selected datasets; the dataset's effective level is the "
        "highest of its own and its fields' levels.",
        form_class=ClassifyFieldForm,
    )
    def classify_field(request: HttpRequest, obj: Dataset, data: dict[str, Any]) -> None:
        catalog.dataset_field_classify(
            user=request.user,  # type: ignore[arg-type]
            dataset=obj, field_name=data["field_name"], level=data["level"], pii_categories=data["pii_categories"],
            reason=data["reason"],
        )


@admin.register(DatasetField)
class DatasetFieldAdmin(GovernanceModelAdmin):
    list_display = ("dataset", "name", "level", "pii_categories", "classified_by", "classified_at")
    list_filter = ("level",)
    search_fields = ("dataset__name", "name")
    list_select_related = ("dataset", "classified_by")
    actions = ["reclassify"]

    @form_action(description="Reclassify…", label="Reclassify", help_text="Data stewards and InfoSec.",
                 form_class=ClassifyForm)
    def reclassify(request: HttpRequest, obj: DatasetField, data: dict[str, Any]) -> None:
        catalog.dataset_field_classify(
            user=request.user,  # type: ignore[arg-type]
            dataset=obj.dataset, field_name=obj.name, level=data["level"], pii_categories=data["pii_categories"],
            reason=data["reason"],
        )


@admin.register(Lineage)
class LineageAdmin(GovernanceModelAdmin):
    """Read-only: links come from MLflow dataset inputs (``lineage_link_from_mlflow``) or are declared in code."""

    list_display = ("version", "dataset", "role", "source", "created_at")
    list_filter = ("role", "source")
    search_fields = ("version__model__name", "dataset__name")
    list_select_related = ("version__model", "dataset")
