"""Read-only admin of the operational models: legal holds and verification runs.

Holds are created and released only through ``audit.retention.legal_hold_create/release``
(which write the ledger); the admin shows them. Imported by ``audit.admin``.
"""
from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models_ops import LegalHold, VerificationRun
from governance.admin_site import has_admin_role


class _ReadOnly(admin.ModelAdmin):  # type: ignore[type-arg]
    """Viewable by InfoSec and auditors (as the ledger's own admin pages); never editable."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_admin_role(request.user)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return has_admin_role(request.user)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        return {}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(LegalHold)
class LegalHoldAdmin(_ReadOnly):
    list_display = ("id", "data_subject", "reference", "created_at", "created_by", "released_at")
    list_filter = ("released_at",)
    search_fields = ("data_subject", "reference")
    list_select_related = ("created_by",)


@admin.register(VerificationRun)
class VerificationRunAdmin(_ReadOnly):
    list_display = ("id", "mode", "started_at", "from_size", "tree_size", "ok", "reason", "duration_ms")
    list_filter = ("mode", "ok")
    exclude = ("frontier",)
