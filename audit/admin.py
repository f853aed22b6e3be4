"""Read-only admin views of the ledger: nothing here can add, change or delete.

Personal data is shown "[redacted]" to everyone, InfoSec included. Revealing
it is done in the console (``/console/ledger/<seq>/reveal/``, which records the
reveal through ``audit.pii.reveal``), not here.

Reading entries here is reading the audit log like anywhere else: the entries' and the intake queue's
list and detail pages are recorded as ``ledger.accessed`` (channel ``admin``; ``LedgerReadAdmin``). Every
model admin of this app carries ``ledger_read`` or says why not (``ledger_read_exempt``), checked by
``tests/audit/test_ledger_reads_marked.py``.
"""
from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.html import format_html

from audit import pii
from audit.console.reads import LedgerRead, announce_refusal, refused, succeeded
from audit.ledger import Actor
from audit.models import Checkpoint, DataSubjectKey, Entry, LegalHold, PendingEntry, SigningKey, VerificationRun
from audit.services.ledger_access import PAGES
from web.admin_site import RawViewAdmin

_ADMIN_FILTERS = ("q", "event_type__exact", "actor_type__exact", "subject_type__exact", "o")


class LedgerReadAdmin(RawViewAdmin):
    """A model admin whose list and detail pages read the ledger: each successful page is ``ledger.accessed``
    (the list's pages of one search and filter coalesce, like the explorer's; a detail page is one each)."""

    ledger_read: LedgerRead
    ledger_read_detail: LedgerRead

    def _recorded(self, spec: LedgerRead, request: HttpRequest, response: HttpResponseBase,
                  kwargs: dict[str, Any]) -> HttpResponseBase:
        user = request.user
        if succeeded(response) and user.is_authenticated:
            spec.record(actor=Actor.user(user), reader=f"user:{user.pk}", channel="admin", query=request.GET,
                        kwargs=kwargs)
        elif refused(response) and user.is_authenticated:
            announce_refusal(spec, user, None)
        return response

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        return self._recorded(self.ledger_read, request, super().changelist_view(request, extra_context), {})

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> Any:
        response = super().change_view(request, object_id, form_url, extra_context)
        return self._recorded(self.ledger_read_detail, request, response, {"id": str(object_id)[:40]})


_PUBLISHED = "signed tree heads and verifier keys, published to every signed-in person"


@admin.register(Entry)
class EntryAdmin(LedgerReadAdmin):
    ledger_read = LedgerRead("admin:audit_entry_changelist", filter_keys=_ADMIN_FILTERS, cursor_keys=("p",),
                             covers=PAGES)
    ledger_read_detail = LedgerRead("admin:audit_entry_change", path_keys=("id",))

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
    ledger_read_exempt = _PUBLISHED
    list_display = ("id", "tree_size", "root_hash", "created_at")
    fields = ("id", "tree_size", "root_hash", "created_at", "note_pretty")

    @admin.display(description="signed note")
    def note_pretty(self, obj: Checkpoint) -> str:
        return format_html("<pre>{}</pre>", obj.note)


@admin.register(SigningKey)
class SigningKeyAdmin(RawViewAdmin):
    ledger_read_exempt = _PUBLISHED
    list_display = ("verifier_key", "created_at")


@admin.register(DataSubjectKey)
class DataSubjectKeyAdmin(RawViewAdmin):
    """Whose personal data the ledger holds and who was erased. Never shows a key."""

    ledger_read_exempt = "which data subjects have a key and when it was erased: no entry's content"

    list_display = ("data_subject", "created_at", "erased_at", "kek_id")
    list_filter = (("erased_at", admin.EmptyFieldListFilter),)
    search_fields = ("=data_subject",)
    fields = ("data_subject", "created_at", "erased_at", "kek_id")


@admin.register(PendingEntry)
class PendingEntryAdmin(LedgerReadAdmin):
    # The intake queue holds entries not yet integrated: their content is the ledger's.
    ledger_read = LedgerRead("admin:audit_pendingentry_changelist", subject=("ledger", "pending"),
                             filter_keys=_ADMIN_FILTERS, cursor_keys=("p",), covers=PAGES)
    ledger_read_detail = LedgerRead("admin:audit_pendingentry_change", subject=("ledger", "pending"),
                                    path_keys=("id",))
    list_display = ("id", "timestamp", "event_type", "subject_type", "subject_id")


# Legal holds are created and released only through the retention service (which writes the
# ledger), from the console; the admin shows them.
@admin.register(LegalHold)
class LegalHoldAdmin(RawViewAdmin):
    ledger_read_exempt = "legal holds (whose personal data may not be erased), not the ledger's content"
    list_display = ("id", "data_subject", "reference", "created_at", "created_by", "released_at")
    list_filter = ("released_at",)
    search_fields = ("data_subject", "reference")
    list_select_related = ("created_by",)


@admin.register(VerificationRun)
class VerificationRunAdmin(RawViewAdmin):
    ledger_read_exempt = "the outcomes of integrity checks (sizes, times, ok), not the ledger's content"
    list_display = ("id", "mode", "started_at", "from_size", "tree_size", "ok", "reason", "duration_ms")
    list_filter = ("mode", "ok")
    exclude = ("frontier",)
