from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from governance.console import views_overview as views

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.dashboard, name="console-dashboard"),
    path("violations/", views.violations, name="console-violations"),
    path("violations/<int:violation_id>/acknowledge/", views.violation_acknowledge,
         name="console-violation-acknowledge"),
]
