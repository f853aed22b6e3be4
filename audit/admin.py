"""Read-only admin views of the ledger: nothing here can add, change or delete.

Personal data is shown "[redacted]" to everyone, InfoSec included. Revealing
it is done in the console (``/console/ledger/<seq>/reveal/``, which records the
reveal through ``audit.pii.reveal``), not here.
"""
from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html

from audit import pii
from audit.models import Checkpoint, DataSubjectKey, Entry, LegalHold, PendingEntry, SigningKey, VerificationRun
from web.admin_site import RawViewAdmin


@admin.register(Entry)
class EntryAdmin(RawViewAdmin):
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
        payload = pii.redacted_payload(obj)
        return format_html("<pre>{}</pre>", json.dumps(payload, indent=2, ensure_ascii=False))


@admin.register(Checkpoint)
class CheckpointAdmin(RawViewAdmin):
    list_display = ("id", "tree_size", "root_hash", "created_at")
    fields = ("id", "tree_size", "root_hash", "created_at", "note_pretty")

    @admin.display(description="signed note")
    def note_pretty(self, obj: Checkpoint) -> str:
        return format_html("<pre>{}</pre>", obj.note)


@admin.register(SigningKey)
class SigningKeyAdmin(RawViewAdmin):
    list_display = ("verifier_key", "created_at")


@admin.register(DataSubjectKey)
class DataSubjectKeyAdmin(RawViewAdmin):
    """Whose personal data the ledger holds and who was erased. Never shows a key."""

    list_display = ("data_subject", "created_at", "erased_at", "kek_id")
    list_filter = (("erased_at", admin.EmptyFieldListFilter),)
    search_fields = ("=data_subject",)
    fields = ("data_subject", "created_at", "erased_at", "kek_id")


@admin.register(PendingEntry)
class PendingEntryAdmin(RawViewAdmin):
    list_display = ("id", "timestamp", "event_type", "subject_type", "subject_id")


# Legal holds are created and released only through the retention service (which writes the
# ledger), from the console; the admin shows them.
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
