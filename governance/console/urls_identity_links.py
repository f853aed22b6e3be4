"""``/console/identity-links/``: MLflow identity links (``governance.console.views_identity_links``)."""
from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from governance.console import views_identity_links as views

urlpatterns: list[URLPattern | URLResolver] = [
    path("identity-links/", views.identity_links, name="console-identity-links"),
    path("identity-links/new/", views.identity_link_create, name="console-identity-link-create"),
    path("identity-links/<int:pk>/remove/", views.identity_link_remove, name="console-identity-link-remove"),
]
