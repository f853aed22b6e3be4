from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from audit import console

urlpatterns: list[URLPattern | URLResolver] = [
    path("ledger/", console.ledger, name="console-ledger"),
    path("ledger/<int:seq>/", console.entry_detail, name="console-entry"),
    path("ledger/<int:seq>/reveal/", console.entry_reveal, name="console-entry-reveal"),
    path("exports/", console.exports, name="console-exports"),
    path("exports/<int:export_id>/", console.export_detail, name="console-export"),
]
