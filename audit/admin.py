"""Read-only admin views of the ledger: nothing here can add, change or delete.

Personal data is shown "[redacted]" to everyone. InfoSec may reveal it for
selected entries with an action that asks for a reason and records the reveal
in the ledger (``audit.pii.reveal``); the page it shows is never cached.
"""
from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html

from audit import pii
from audit.models import Checkpoint, DataSubjectKey, Entry, PendingEntry, SigningKey
from governance.admin_site import has_admin_role

REVEAL_LIMIT = 20


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
        payload = pii.redacted_payload(obj)
        return format_html("<pre>{}</pre>", json.dumps(payload, indent=2, ensure_ascii=False))

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        if not pii.can_reveal(request.user):
            return {}
        return {
            "reveal_personal_data": (
                EntryAdmin.reveal_personal_data,
                "reveal_personal_data",
                "Reveal personal data (audited)…",
            )
        }

    @staticmethod
    def reveal_personal_data(
        modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Entry]  # type: ignore[type-arg]
    ) -> HttpResponse | None:
        entries = list(queryset.order_by("seq")[: REVEAL_LIMIT + 1])
        if len(entries) > REVEAL_LIMIT:
            modeladmin.message_user(request, f"Reveal at most {REVEAL_LIMIT} entries at a time.", messages.ERROR)
            return None
        form = RevealForm(request.POST if request.POST.get("confirm") else None)
        if not (form.is_bound and form.is_valid()):
            return TemplateResponse(
                request,
                "admin/governance/action_form.html",
                {
                    **modeladmin.admin_site.each_context(request),
                    "title": "Reveal personal data (audited)",
                    "help": "Each reveal is recorded in the ledger with your account and this reason.",
                    "objects": entries,
                    "form": form,
                    "action": "reveal_personal_data",
                    "submit": "Reveal",
                    "opts": modeladmin.model._meta,
                },
            )
        revealed = []
        for entry in entries:
            if not pii.has_personal_data(entry):
                modeladmin.message_user(request, f"{entry}: holds no personal data", messages.WARNING)
                continue
            try:
                payload = pii.reveal(user=request.user, seq=entry.seq, reason=form.cleaned_data["reason"])  # type: ignore[arg-type]
            except pii.PiiError as exc:
                modeladmin.message_user(request, f"{entry}: {exc}", messages.ERROR)
                continue
            revealed.append({"entry": entry, "payload": json.dumps(payload, indent=2, ensure_ascii=False)})
        if not revealed:
            return None
        response = TemplateResponse(
            request,
            "admin/audit/entry/revealed.html",
            {
                **modeladmin.admin_site.each_context(request),
                "title": "Personal data (this reveal is recorded in the ledger)",
                "revealed": revealed,
                "opts": modeladmin.model._meta,
            },
        )
        response["Cache-Control"] = "no-store"
        return response


class RevealForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), max_length=2000)


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


@admin.register(DataSubjectKey)
class DataSubjectKeyAdmin(ReadOnlyAdmin):
    """Whose personal data the ledger holds and who was erased. Never shows a key."""

    list_display = ("data_subject", "created_at", "erased_at", "kek_id")
    list_filter = (("erased_at", admin.EmptyFieldListFilter),)
    search_fields = ("=data_subject",)
    fields = ("data_subject", "created_at", "erased_at", "kek_id")


@admin.register(PendingEntry)
class PendingEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "timestamp", "event_type", "subject_type", "subject_id")

# Read-only admin of legal holds and verification runs.
from audit import admin_ops  # noqa: E402, F401
