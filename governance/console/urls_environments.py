"""``/console/environments/``: environments, their promotion policies and freeze windows."""
from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from governance.console import views_environments as views

urlpatterns: list[URLPattern | URLResolver] = [
    path("environments/", views.environments, name="console-environments"),
    path("environments/<slug:name>/policy/", views.policy_edit, name="console-environment-policy"),
    path("environments/<slug:name>/freezes/", views.freeze_create, name="console-environment-freeze"),
    path("environments/<slug:name>/protection/", views.protection, name="console-environment-protection"),
    path("environments/changes/<int:pk>/approve/", views.change_decide, {"decision": "approve"},
         name="console-change-approve"),
    path("environments/changes/<int:pk>/reject/", views.change_decide, {"decision": "reject"},
         name="console-change-reject"),
    path("environments/changes/<int:pk>/withdraw/", views.change_decide, {"decision": "withdraw"},
         name="console-change-withdraw"),
]
