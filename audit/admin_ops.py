"""Read-only admin of the operational models: legal holds and verification runs.

Holds are created and released only through ``audit.retention.legal_hold_create/release``
(which write the ledger), from the console; the admin shows them. Imported by ``audit.admin``.
"""
from __future__ import annotations

from django.contrib import admin

from audit.models_ops import LegalHold, VerificationRun
from web.admin_site import RawViewAdmin


@admin.register(LegalHold)
class LegalHoldAdmin(RawViewAdmin):
    list_display = ("id", "data_subject", "reference", "created_at", "created_by", "released_at")
    list_filter = ("released_at",)
    search_fields = ("data_subject", "reference")
    list_select_related = ("created_by",)


@admin.register(VerificationRun)
class VerificationRunAdmin(RawViewAdmin):
    list_display = ("id", "mode", "started_at", "from_size", "tree_size", "ok", "reason", "duration_ms")
    list_filter = ("mode", "ok")
    exclude = ("frontier",)
