from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from audit import console

urlpatterns: list[URLPattern | URLResolver] = [
    path("ledger/", console.ledger, name="console-ledger"),
    path("ledger/<int:seq>/", console.entry_detail, name="console-entry"),
    path("ledger/<int:seq>/reveal/", console.entry_reveal, name="console-entry-reveal"),
    path("exports/", console.exports, name="console-exports"),
    path("exports/<int:export_id>/", console.export_detail, name="console-export"),
    path("legal-holds/", console.legal_holds, name="console-legal-holds"),
    path("legal-holds/new/", console.legal_hold_new, name="console-legal-hold-new"),
    path("legal-holds/<int:hold_id>/release/", console.legal_hold_release_view, name="console-legal-hold-release"),
]
