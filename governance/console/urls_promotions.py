from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from governance.console.placeholder import placeholder

# Placeholders until the pages land; the page owner replaces them.
urlpatterns: list[URLPattern | URLResolver] = [
    path("models/", placeholder, name="console-models"),
    path("approvals/", placeholder, name="console-approvals"),
]
