"""The ledger's console pages (included under ``/console/`` by ``web.console.urls``)."""
from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from audit.console import exports, ledger, legal_holds

urlpatterns: list[URLPattern | URLResolver] = [
    path("ledger/", ledger.ledger, name="console-ledger"),
    path("ledger/<int:seq>/", ledger.entry_detail, name="console-entry"),
    path("ledger/<int:seq>/reveal/", ledger.entry_reveal, name="console-entry-reveal"),
    path("exports/", exports.exports, name="console-exports"),
    path("exports/<int:export_id>/", exports.export_detail, name="console-export"),
    path("legal-holds/", legal_holds.legal_holds, name="console-legal-holds"),
    path("legal-holds/new/", legal_holds.legal_hold_new, name="console-legal-hold-new"),
    path("legal-holds/<int:hold_id>/release/", legal_holds.legal_hold_release_view, name="console-legal-hold-release"),
]
