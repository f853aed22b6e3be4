"""Routes of MLflow identity links (``governance.api.identity_links``)."""
from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from governance.api import identity_links

urlpatterns: list[URLPattern | URLResolver] = [
    path("identity-links", identity_links.IdentityLinkListApi.as_view(), name="api-identity-links"),
    path("identity-links/<int:pk>", identity_links.IdentityLinkDetailApi.as_view(), name="api-identity-link"),
]
