"""``/console/environments/``: environments, their promotion policies and freeze windows."""
from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from governance.console import views_environments as views

urlpatterns: list[URLPattern | URLResolver] = [
    path("environments/", views.environments, name="console-environments"),
    path("environments/<slug:name>/policy/", views.policy_edit, name="console-environment-policy"),
    path("environments/<slug:name>/freezes/", views.freeze_create, name="console-environment-freeze"),
]
