"""Read-only admin views of the ledger: nothing here can add, change or delete."""
from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from audit.models import Checkpoint, Entry, PendingEntry, SigningKey
from governance.admin_site import has_admin_role


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Viewable by InfoSec and auditors; never editable, whoever asks."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_admin_role(request.user)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return has_admin_role(request.user)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        return {}


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdmin):
    list_display = ("seq", "timestamp", "event_type", "actor_display", "subject_display", "short_hash")
    list_filter = ("event_type", "actor_type", "subject_type")
    search_fields = ("=subject_id", "=actor_id", "=entry_hash", "event_type")
    show_full_result_count = False
    list_per_page = 50
    fields = (
        "seq", "timestamp", "event_type", "actor_type", "actor_id", "subject_type", "subject_id",
        "payload_pretty", "prev_hash", "subject_prev", "entry_hash",
    )

    @admin.display(description="actor")
    def actor_display(self, obj: Entry) -> str:
        return f"{obj.actor_type}:{obj.actor_id}"

    @admin.display(description="subject")
    def subject_display(self, obj: Entry) -> str:
        return f"{obj.subject_type}:{obj.subject_id}"

    @admin.display(description="hash")
    def short_hash(self, obj: Entry) -> str:
        return obj.entry_hash[:16] + "…"

    @admin.display(description="payload")
    def payload_pretty(self, obj: Entry) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, ensure_ascii=False))


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    list_display = ("id", "tree_size", "root_hash", "created_at")
    fields = ("id", "tree_size", "root_hash", "created_at", "note_pretty")

    @admin.display(description="signed note")
    def note_pretty(self, obj: Checkpoint) -> str:
        return format_html("<pre>{}</pre>", obj.note)


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyAdmin):
    list_display = ("verifier_key", "created_at")


@admin.register(PendingEntry)
class PendingEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "timestamp", "event_type", "subject_type", "subject_id")
