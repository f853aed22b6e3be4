"""The console's ledger explorer and entry page (with "Verify this entry" and PII reveal).

InfoSec and auditors only. Verification uses the offline verifier's own functions
(``audit.offline_verify``) on what the server stores, so the page shows exactly what an outsider
holding the checkpoint would check.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from audit import offline_verify as ov
from audit import pii
from audit.event_types import registry
from audit.export.errors import ExportError
from audit.export.scope import parse_time
from audit.merkle import ProofError
from audit.models import Checkpoint, Entry
from audit.selectors import checkpoint_covering, checkpoint_pending, inclusion_proof
from audit.verification import trusted_verifiers
from web.console.base import denied, is_oversight

PAGE_SIZE = 50
MAX_FILTER = 300
NOT_PERMITTED = "The ledger explorer is for InfoSec and auditors: you are not permitted to see it."


# --- the explorer ------------------------------------------------------------------------------------------


def _actor_filter(text: str) -> dict[str, str] | None:
    """``user:42``, ``service:ci`` or a username; None when a username does not exist (nothing matches)."""
    kind, sep, ident = text.partition(":")
    if sep and kind in ("user", "service", "system"):
        return {"actor_type": kind, "actor_id": ident}
    pk = User.objects.filter(username=text).values_list("pk", flat=True).first()
    return {"actor_type": "user", "actor_id": str(pk)} if pk is not None else None


def _subject_filter(text: str) -> dict[str, str]:
    kind, sep, ident = text.partition(":")
    if sep and kind and ident:
        return {"subject_type": kind, "subject_id": ident}
    return {"subject_id": text}


def _usernames(entries: list[Entry]) -> dict[str, str]:
    ids = {e.actor_id for e in entries if e.actor_type == "user" and e.actor_id.isdigit()}
    if not ids:
        return {}
    return {str(pk): name for pk, name in User.objects.filter(pk__in=ids).values_list("pk", "username")}


def _int(value: str | None) -> int | None:
    try:
        number = int(value or "")
    except ValueError:
        return None
    return number if number >= 0 else None


@login_required
def ledger(request: HttpRequest) -> HttpResponse:
    if not is_oversight(request.user):
        return denied(request, NOT_PERMITTED)
    f = {k: (request.GET.get(k) or "").strip()[:MAX_FILTER] for k in ("since", "until", "type", "actor", "subject")}
    qs = Entry.objects.all()
    problems: list[str] = []
    try:
        if f["since"]:
            qs = qs.filter(timestamp__gte=_ts(f["since"], end=False))
        if f["until"]:
            qs = qs.filter(timestamp__lte=_ts(f["until"], end=True))
    except ExportError as exc:
        problems.append(str(exc))
    if f["type"]:
        if f["type"] in registry:
            qs = qs.filter(event_type=f["type"])
        else:
            problems.append(f"unknown event type {f['type']!r}")
    if f["actor"]:
        actor = _actor_filter(f["actor"])
        qs = qs.filter(**actor) if actor is not None else qs.none()
    if f["subject"]:
        qs = qs.filter(**_subject_filter(f["subject"]))
    for problem in problems:
        messages.error(request, f"Filter ignored: {problem}.")
    before, after = _int(request.GET.get("before")), _int(request.GET.get("after"))
    # Seq cursor, newest first: "before" pages to older entries, "after" back to newer ones.
    if after is not None:
        rows = list(qs.filter(seq__gt=after).order_by("seq")[: PAGE_SIZE + 1])
        more_newer = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE][::-1]
        more_older = True
    else:
        page_qs = qs.filter(seq__lt=before) if before is not None else qs
        rows = list(page_qs.order_by("-seq")[: PAGE_SIZE + 1])
        more_older = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        more_newer = before is not None
    names = _usernames(rows)
    query = "&".join(f"{k}={v}" for k, v in f.items() if v)
    return render(request, "console/ledger.html", {
        "nav": "ledger", "entries": [(e, names.get(e.actor_id)) for e in rows], "f": f, "qs": query,
        "types": registry.names(), "older": rows[-1].seq if rows and more_older else None,
        "newer": rows[0].seq if rows and more_newer else None,
    })


def _ts(text: str, *, end: bool) -> str:
    return parse_time(text, end_of_day=end, label="until" if end else "since")


# --- one entry -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One check and its outcome. ``pending``: not done yet (no checkpoint covers the entry so far), which is
    neither a pass nor a failure; ``warning``: pending for longer than it should (the signer is late)."""

    name: str
    ok: bool
    detail: str
    pending: bool = False
    warning: bool = False


def verdict(steps: list[Step]) -> str:
    """``failed`` when a check failed, else ``pending`` when one is still to come, else ``verified``."""
    if any(not s.ok and not s.pending for s in steps):
        return "failed"
    return "pending" if any(s.pending for s in steps) else "verified"


def _verifiers() -> list[ov.Verifier]:
    return [ov.Verifier(str(v)) for v in trusted_verifiers()]


def verify_entry(entry: Entry, checkpoint: Checkpoint | None) -> list[Step]:
    """Each check an offline verifier makes for one entry, with its outcome."""
    steps: list[Step] = []
    body = entry.canonical_body()
    recanonical = ov.canonicalize(json.loads(body))
    steps.append(Step("Body is canonical JSON (RFC 8785)", recanonical == body,
                      f"{len(body)} bytes" if recanonical == body else "re-canonicalising the body changes its bytes"))
    leaf = ov.leaf_hash(body)
    steps.append(Step("Leaf hash SHA-256(0x00 ‖ body) equals the entry hash", leaf.hex() == entry.entry_hash,
                      leaf.hex()))
    if checkpoint is None:
        # Every entry waits for the next checkpoint; only a broken hash, signature or proof is a failure.
        pending = checkpoint_pending(entry)
        steps.append(Step("Covered by a signed checkpoint", False, pending.detail, pending=True,
                          warning=pending.overdue))
        return steps
    try:
        text, signers, _unknown = ov.open_note(checkpoint.note, _verifiers())
        origin, size, root = ov.parse_checkpoint(text)
    except ov.NoteError as exc:
        steps.append(Step(f"Checkpoint #{checkpoint.pk} signature verifies with the configured key", False, str(exc)))
        return steps
    steps.append(Step(f"Checkpoint #{checkpoint.pk} signature verifies with the configured key", True,
                      f"{origin}, size {size}, signed by {', '.join(v.name + '+' + v.key_id.hex() for v in signers)}"))
    try:
        proof = inclusion_proof(seq=entry.seq, tree_size=size)
    except ProofError as exc:
        steps.append(Step(f"Inclusion proof at tree size {size}", False, str(exc)))
        return steps
    included = ov.verify_inclusion(entry.seq, size, leaf, proof.path, root)
    steps.append(Step(f"Inclusion proof ({len(proof.path)} hashes) leads to the checkpoint's signed root", included,
                      f"root {root.hex()}"))
    return steps


def _entry_context(request: HttpRequest, entry: Entry) -> dict[str, Any]:
    body = entry.body()
    body["payload"] = pii.redacted_payload(entry)
    checkpoint = checkpoint_covering(entry.seq)
    following = (
        Entry.objects.filter(subject_type=entry.subject_type, subject_id=entry.subject_id, seq__gt=entry.seq)
        .order_by("seq").values_list("seq", flat=True).first()
    )
    return {
        "nav": "ledger", "entry": entry, "body_json": json.dumps(body, indent=2, ensure_ascii=False, sort_keys=True),
        "body_b64": base64.b64encode(entry.canonical_body()).decode(),
        "next_seq": following, "checkpoint": checkpoint,
        "pending": checkpoint_pending(entry) if checkpoint is None else None,
        "has_pii": pii.has_personal_data(entry), "may_reveal": pii.can_reveal(request.user),
        "actor_name": _usernames([entry]).get(entry.actor_id),
    }


@login_required
def entry_detail(request: HttpRequest, seq: int) -> HttpResponse:
    if not is_oversight(request.user):
        return denied(request, NOT_PERMITTED)
    entry = Entry.objects.filter(seq=seq).first()
    if entry is None:
        return render(request, "console/entry_missing.html", {"nav": "ledger", "seq": seq}, status=404)
    context = _entry_context(request, entry)
    if request.GET.get("verify"):
        context["steps"] = verify_entry(entry, context["checkpoint"])
        context["verdict"] = verdict(context["steps"])
    return render(request, "console/entry.html", context)


@login_required
@require_POST
def entry_reveal(request: HttpRequest, seq: int) -> HttpResponse:
    if not is_oversight(request.user):
        return denied(request, NOT_PERMITTED)
    entry = Entry.objects.filter(seq=seq).first()
    if entry is None:
        return render(request, "console/entry_missing.html", {"nav": "ledger", "seq": seq}, status=404)
    try:
        revealed = pii.reveal(actor=request.user, seq=seq, reason=request.POST.get("reason", ""))  # type: ignore[arg-type]
    except pii.PiiAccessDenied as exc:
        return denied(request, str(exc))
    except pii.PiiError as exc:
        messages.error(request, f"Nothing was revealed: {exc}.")
        return redirect("console-entry", seq=seq)
    # Rendered in the POST's answer, never stored: the revealed values live only in this page.
    context = _entry_context(request, entry)
    context["revealed"] = json.dumps(revealed, indent=2, ensure_ascii=False, sort_keys=True)
    messages.info(request, "Personal data revealed; the reveal and your reason are recorded in the ledger.")
    response = render(request, "console/entry.html", context)
    response["Cache-Control"] = "no-store"
    return response


# --- exports ------------------------------------------------------------------------------------------------


