"""Routes of the promotion-governance API: models, promotions, admission, environments, policies, violations."""
from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from governance.api import environments, models_api, promotions

P = "promotions/<int:promotion_id>"

urlpatterns: list[URLPattern | URLResolver] = [
    # models
    path("models", models_api.ModelListApi.as_view(), name="api-models"),
    path("models/<str:name>", models_api.ModelDetailApi.as_view(), name="api-model"),
    path("models/<str:name>/versions", models_api.ModelVersionListApi.as_view(), name="api-model-versions"),
    path("models/<str:name>/versions/<int:version>", models_api.ModelVersionDetailApi.as_view(),
         name="api-model-version"),
    path("models/<str:name>/versions/<int:version>/registered-by", models_api.ModelVersionRegisteredByApi.as_view(),
         name="api-model-version-registered-by"),
    # promotions
    path("promotions", promotions.PromotionListCreateApi.as_view(), name="api-promotions"),
    path("promotions/break-glass", promotions.BreakGlassApi.as_view(), name="api-promotion-break-glass"),
    path(P, promotions.PromotionDetailApi.as_view(), name="api-promotion"),
    path(f"{P}/approve", promotions.PromotionApproveApi.as_view(), name="api-promotion-approve"),
    path(f"{P}/reject", promotions.PromotionRejectApi.as_view(), name="api-promotion-reject"),
    path(f"{P}/withdraw", promotions.PromotionWithdrawApi.as_view(), name="api-promotion-withdraw"),
    path(f"{P}/progress", promotions.PromotionProgressApi.as_view(), name="api-promotion-progress"),
    path(f"{P}/rollback", promotions.PromotionRollbackApi.as_view(), name="api-promotion-rollback"),
    path("break-glass-reviews", promotions.BreakGlassReviewListApi.as_view(), name="api-break-glass-reviews"),
    path("break-glass-reviews/<int:pk>/approve", promotions.BreakGlassReviewApproveApi.as_view(),
         name="api-break-glass-review-approve"),
    path("break-glass-reviews/<int:pk>/conclude", promotions.BreakGlassReviewConcludeApi.as_view(),
         name="api-break-glass-review-conclude"),
    path("admission", promotions.AdmissionApi.as_view(), name="api-admission"),
    # environments, policies, violations
    path("environments", environments.EnvironmentListCreateApi.as_view(), name="api-environments"),
    path("environments/<slug:name>", environments.EnvironmentDetailApi.as_view(), name="api-environment"),
    path("environments/<slug:name>/freeze-windows", environments.FreezeWindowCreateApi.as_view(),
         name="api-environment-freeze-windows"),
    path("policies", environments.PolicyListApi.as_view(), name="api-policies"),
    path("policies/<slug:environment>", environments.PolicySetApi.as_view(), name="api-policy"),
    path("violations", environments.ViolationListApi.as_view(), name="api-violations"),
    path("violations/<int:pk>/acknowledge", environments.ViolationAcknowledgeApi.as_view(),
         name="api-violation-acknowledge"),
]
