"""``/console/`` pages of the promotion-governance domain (included by ``web/console/urls.py``).

The dashboard and compliance violations (``overview``), models, the approvals inbox, requests and
break-glass reviews (``promotions``), environments, their policies, freeze windows and change requests
(``environments``), MLflow identity links (``identity_links``).
"""
from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from governance.console import environments, identity_links, overview, promotions

urlpatterns: list[URLPattern | URLResolver] = [
    # the dashboard and compliance violations
    path("", overview.dashboard, name="console-dashboard"),
    path("violations/", overview.violations, name="console-violations"),
    path("violations/<int:violation_id>/acknowledge/", overview.violation_acknowledge,
         name="console-violation-acknowledge"),
    # models, the approvals inbox, requests and break-glass reviews
    path("models/", promotions.models_list, name="console-models"),
    path("models/<int:pk>/", promotions.model_detail, name="console-model"),
    path("models/<int:pk>/request/", promotions.model_request_promotion, name="console-model-request"),
    path("models/<int:pk>/rollback/<slug:environment>/", promotions.model_rollback, name="console-model-rollback"),
    path("models/<int:pk>/owner/", promotions.model_owner_set, name="console-model-owner"),
    path("approvals/", promotions.approvals_inbox, name="console-approvals"),
    path("approvals/requests/<int:pk>/", promotions.request_detail, name="console-request"),
    path("approvals/requests/<int:pk>/receipt.json", promotions.request_receipt, name="console-request-receipt"),
    path("approvals/requests/<int:pk>/<slug:action>/", promotions.request_action, name="console-request-action"),
    path("approvals/break-glass/", promotions.breakglass_list, name="console-breakglass"),
    path("approvals/break-glass/<int:pk>/approve/", promotions.breakglass_approve, name="console-breakglass-approve"),
    # environments, their policies, freeze windows and change requests
    path("environments/", environments.environments, name="console-environments"),
    path("environments/<slug:name>/policy/", environments.policy_edit, name="console-environment-policy"),
    path("environments/<slug:name>/freezes/", environments.freeze_create, name="console-environment-freeze"),
    path("environments/<slug:name>/protection/", environments.protection, name="console-environment-protection"),
    path("environments/changes/<int:pk>/approve/", environments.change_decide, {"decision": "approve"},
         name="console-change-approve"),
    path("environments/changes/<int:pk>/reject/", environments.change_decide, {"decision": "reject"},
         name="console-change-reject"),
    path("environments/changes/<int:pk>/withdraw/", environments.change_decide, {"decision": "withdraw"},
         name="console-change-withdraw"),
    # MLflow identity links
    path("identity-links/", identity_links.identity_links, name="console-identity-links"),
    path("identity-links/new/", identity_links.identity_link_create, name="console-identity-link-create"),
    path("identity-links/<int:pk>/remove/", identity_links.identity_link_remove, name="console-identity-link-remove"),
]
