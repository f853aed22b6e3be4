"""``/api/v1/`` routes of the promotion-governance domain (included by ``web/api/urls.py``).

Models and versions (``registered_models``), promotions, break-glass reviews and admission (``promotions``),
environments, policies and violations (``environments``), two-person change requests
(``change_requests``), MLflow identity links (``identity_links``). The MLflow webhook endpoint
(``webhooks``) is routed outside the API, at ``/webhooks/mlflow`` (``config/urls.py``).
"""
from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from governance.api import (
    attestations,
    change_requests,
    environments,
    identity_links,
    promotions,
    receipts,
    registered_models,
)

P = "promotions/<int:promotion_id>"
C = "change-requests/<int:pk>"

urlpatterns: list[URLPattern | URLResolver] = [
    # models
    path("models", registered_models.ModelListApi.as_view(), name="api-models"),
    path("models/<str:name>", registered_models.ModelDetailApi.as_view(), name="api-model"),
    path("models/<str:name>/versions", registered_models.ModelVersionListApi.as_view(), name="api-model-versions"),
    path("models/<str:name>/versions/<int:version>", registered_models.ModelVersionDetailApi.as_view(),
         name="api-model-version"),
    path("models/<str:name>/versions/<int:version>/registered-by",
         registered_models.ModelVersionRegisteredByApi.as_view(), name="api-model-version-registered-by"),
    path("models/<str:name>/versions/<int:version>/attestations", attestations.AttestationListApi.as_view(),
         name="api-model-version-attestations"),
    # promotions
    path("promotions", promotions.PromotionListCreateApi.as_view(), name="api-promotions"),
    path("promotions/break-glass", promotions.BreakGlassApi.as_view(), name="api-promotion-break-glass"),
    path(P, promotions.PromotionDetailApi.as_view(), name="api-promotion"),
    path(f"{P}/approve", promotions.PromotionApproveApi.as_view(), name="api-promotion-approve"),
    path(f"{P}/reject", promotions.PromotionRejectApi.as_view(), name="api-promotion-reject"),
    path(f"{P}/withdraw", promotions.PromotionWithdrawApi.as_view(), name="api-promotion-withdraw"),
    path(f"{P}/progress", promotions.PromotionProgressApi.as_view(), name="api-promotion-progress"),
    path(f"{P}/rollback", promotions.PromotionRollbackApi.as_view(), name="api-promotion-rollback"),
    path(f"{P}/receipt", receipts.PromotionReceiptApi.as_view(), name="api-promotion-receipt"),
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
    # two-person control over the rules of protected environments
    path("change-requests", change_requests.ChangeRequestListApi.as_view(), name="api-change-requests"),
    path(C, change_requests.ChangeRequestDetailApi.as_view(), name="api-change-request"),
    path(f"{C}/approve", change_requests.ChangeRequestApproveApi.as_view(), name="api-change-request-approve"),
    path(f"{C}/reject", change_requests.ChangeRequestRejectApi.as_view(), name="api-change-request-reject"),
    path(f"{C}/withdraw", change_requests.ChangeRequestWithdrawApi.as_view(), name="api-change-request-withdraw"),
    # MLflow identity links
    path("identity-links", identity_links.IdentityLinkListApi.as_view(), name="api-identity-links"),
    path("identity-links/<int:pk>", identity_links.IdentityLinkDetailApi.as_view(), name="api-identity-link"),
]
