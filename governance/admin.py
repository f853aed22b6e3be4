"""The governance domain in the admin (and lineage, shown with the catalog): read-only, scoped like the API.

The admin is InfoSec's and the auditors' raw view (see ``web.admin_site``):
every page here lists and shows rows, through the same visibility selectors as
the API, and changes nothing. Promotions, approvals, break-glass, rollbacks,
violation acknowledgements and classification are done in the console, whose
services check who may do what and which path a version must take.
Environments, freeze windows and promotion policies are two-person changes
(a change request approved by a second InfoSec), so they are read-only here too.
"""
from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet

from access import selectors as access_selectors
from governance import selectors
from governance.models import (
    BreakGlassReview,
    ComplianceViolation,
    Environment,
    FreezeWindow,
    IdentityLink,
    Lineage,
    LiveDeployment,
    ModelVersion,
    PromotionPolicy,
    PromotionRequest,
    RegisteredModel,
)
from governance.services import promotions
from governance.services.lineage import lineage_versions_visible_to
from web.admin_site import RawViewAdmin, pretty_json


@admin.register(RegisteredModel)
class RegisteredModelAdmin(RawViewAdmin):
    list_display = ("name", "owner", "synced_at")
    search_fields = ("name",)
    list_select_related = ("owner",)

    def visible_to(self, user: Any) -> QuerySet[RegisteredModel]:
        return selectors.models_visible_to(user)


@admin.register(ModelVersion)
class ModelVersionAdmin(RawViewAdmin):
    list_display = ("__str__", "run_id", "creator", "data_classification", "mlflow_status", "synced_at")
    list_filter = ("data_classification", ("model", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("model",)
    search_fields = ("model__name", "run_id")
    readonly_fields = ("metrics_pretty", "params_pretty", "datasets_pretty")

    def visible_to(self, user: Any) -> QuerySet[ModelVersion]:
        return selectors.model_versions_visible_to(user)

    @admin.display(description="metrics")
    def metrics_pretty(self, obj: ModelVersion) -> str:
        return pretty_json(obj.metrics)

    @admin.display(description="params")
    def params_pretty(self, obj: ModelVersion) -> str:
        return pretty_json(obj.params)

    @admin.display(description="datasets")
    def datasets_pretty(self, obj: ModelVersion) -> str:
        return pretty_json(obj.datasets)


@admin.register(PromotionRequest)
class PromotionRequestAdmin(RawViewAdmin):
    list_display = ("id", "version", "environment", "state", "strategy", "requested_by", "is_break_glass", "created_at")
    list_filter = ("state", "environment", "strategy", "is_break_glass")
    list_select_related = ("version__model", "environment", "requested_by")
    readonly_fields = ("evidence_pretty", "status_pretty")

    def visible_to(self, user: Any) -> QuerySet[PromotionRequest]:
        return selectors.promotion_requests_visible_to(user)

    @admin.display(description="gate evidence")
    def evidence_pretty(self, obj: PromotionRequest) -> str:
        return pretty_json(obj.evidence)

    @admin.display(description="approval status")
    def status_pretty(self, obj: PromotionRequest) -> str:
        return pretty_json(promotions.approval_status(obj))


@admin.register(BreakGlassReview)
class BreakGlassReviewAdmin(RawViewAdmin):
    list_display = ("request", "state", "due_at", "reviewed_by", "reviewed_at")
    list_filter = ("state",)
    list_select_related = ("request__version__model", "request__environment", "reviewed_by")

    def visible_to(self, user: Any) -> QuerySet[BreakGlassReview]:
        return selectors.break_glass_reviews_visible_to(user)


@admin.register(ComplianceViolation)
class ComplianceViolationAdmin(RawViewAdmin):
    list_display = ("detected_at", "kind", "summary", "reverted", "acknowledged_by")
    list_filter = ("kind", "reverted")
    list_select_related = ("acknowledged_by",)

    def visible_to(self, user: Any) -> QuerySet[ComplianceViolation]:
        return selectors.violations_visible_to(user)


@admin.register(IdentityLink)
class IdentityLinkAdmin(RawViewAdmin):
    """Read-only: links are made and removed by InfoSec in the console or the API (with a reason, recorded)."""

    list_display = ("mlflow_identity", "account", "created_by", "created_at")
    list_select_related = ("account", "created_by")

    def visible_to(self, user: Any) -> QuerySet[IdentityLink]:
        return selectors.identity_links_visible_to(user)


@admin.register(LiveDeployment)
class LiveDeploymentAdmin(RawViewAdmin):
    list_display = ("model", "environment", "version", "promotion", "since")
    list_select_related = ("model", "environment", "version__model", "promotion__version__model",
                           "promotion__environment")

    def visible_to(self, user: Any) -> QuerySet[LiveDeployment]:
        return LiveDeployment.objects.filter(model__in=selectors.models_visible_to(user))


@admin.register(Environment)
class EnvironmentAdmin(RawViewAdmin):
    """Environments are configuration every signed-in caller may read (as in the API)."""

    list_display = ("name", "order", "mlflow_alias", "max_data_classification", "description")


@admin.register(FreezeWindow)
class FreezeWindowAdmin(RawViewAdmin):
    list_display = ("environment", "starts_at", "ends_at", "reason", "created_by")
    list_select_related = ("environment", "created_by")


@admin.register(PromotionPolicy)
class PromotionPolicyAdmin(RawViewAdmin):
    list_display = ("environment", "model", "updated_at")
    list_select_related = ("environment", "model")

    def visible_to(self, user: Any) -> QuerySet[PromotionPolicy]:
        return selectors.policies_visible_to(user)


# --- lineage: the datasets a model version was trained or evaluated on ----------------------------------------


@admin.register(Lineage)
class LineageAdmin(RawViewAdmin):
    """Links come from MLflow dataset inputs (``lineage_link_from_mlflow``) or are declared in the console."""

    list_display = ("version", "dataset", "role", "source", "created_at")
    list_filter = ("role", "source")
    search_fields = ("version__model__name", "dataset__name")
    list_select_related = ("version__model", "dataset")

    def visible_to(self, user: Any) -> QuerySet[Lineage]:
        return Lineage.objects.filter(
            version__in=lineage_versions_visible_to(user),
            dataset__in=access_selectors.datasets_visible_to(user),
        )
