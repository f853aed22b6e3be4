"""``/console/models/`` and ``/console/approvals/``: models, the approvals inbox, requests and break-glass reviews."""
from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from governance.console import views_promotions as views

urlpatterns: list[URLPattern | URLResolver] = [
    path("models/", views.models_list, name="console-models"),
    path("models/<int:pk>/", views.model_detail, name="console-model"),
    path("models/<int:pk>/request/", views.model_request_promotion, name="console-model-request"),
    path("models/<int:pk>/rollback/<slug:environment>/", views.model_rollback, name="console-model-rollback"),
    path("models/<int:pk>/owner/", views.model_owner_set, name="console-model-owner"),
    path("approvals/", views.approvals_inbox, name="console-approvals"),
    path("approvals/requests/<int:pk>/", views.request_detail, name="console-request"),
    path("approvals/requests/<int:pk>/<slug:action>/", views.request_action, name="console-request-action"),
    path("approvals/break-glass/", views.breakglass_list, name="console-breakglass"),
    path("approvals/break-glass/<int:pk>/approve/", views.breakglass_approve, name="console-breakglass-approve"),
]
