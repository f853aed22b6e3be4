"""The console's ledger explorer and entry page (with "Verify this entry" and PII reveal).

InfoSec and auditors only. Verification uses the offline verifier's own functions
(``audit.offline_verify``) on what the server stores, so the page shows exactly what an outsider
holding the checkpoint would check.
"""
from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from audit import offline_verify as ov
from audit import pii
from audit.console.reads import LedgerRead, ledger_read, not_a_ledger_read
from audit.errors import StepUpRequired
from audit.event_types import registry
from audit.export.errors import ExportError
from audit.export.scope import parse_time
from audit.merkle import ProofError
from audit.models import Checkpoint, Entry, LedgerHead
from audit.selectors import CheckpointPending, checkpoint_covering, checkpoint_pending, inclusion_proof
from audit.services.ledger_access import PAGES
from audit.verification import trusted_verifiers
from web.console.base import actor_refs, denied, display_names, is_oversight, refusal_message
from web.console.tables import CSV_CHUNK, CSV_MAX_ROWS, csv_stream, wants_csv

PAGE_SIZE = 50
MAX_FILTER = 300
NOT_PERMITTED = "The ledger explorer is for InfoSec and auditors: you are not permitted to see it."


# --- the explorer ------------------------------------------------------------------------------------------
#
# The ledger is the one table that grows without bound, so the explorer keeps keyset pagination on seq
# (``before``/``after``, never OFFSET), sorts by seq only (newest first by default, ``?sort=seq`` oldest
# first), "jumps" to a seq instead of a page number, and shows the ledger's size (the sequencer's head: one
# row) rather than a COUNT of the filtered entries.

# Where the search box's "request id" comes from: audit.context / audit.ledger.check_request_id.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_SEQ = re.compile(r"#?\s*(\d{1,18})")
ACTOR_KINDS = ("user", "service", "system")
SORTS = ("-seq", "seq")
CSV_COLUMNS = ("seq", "time_utc", "event_type", "actor", "subject", "request_id", "entry_hash")


@dataclass(frozen=True)
class Search:
    """What the search box understood: ``filters`` for ``Entry.objects.filter`` (None: nothing can match),
    ``seq`` for a seq search, and how the page describes it."""

    kind: str
    filters: dict[str, Any] | None
    description: str
    seq: int | None = None


def _actor_filter(text: str) -> dict[str, str] | None:
    """``user:42``, ``service:ci`` or a username; None when a username does not exist (nothing matches)."""
    kind, sep, ident = text.partition(":")
    if sep and kind in ACTOR_KINDS:
        return {"actor_type": kind, "actor_id": ident}
    pk = User.objects.filter(username=text).values_list("pk", flat=True).first()
    return {"actor_type": "user", "actor_id": str(pk)} if pk is not None else None


def _subject_filter(text: str) -> dict[str, str]:
    kind, sep, ident = text.partition(":")
    if sep and kind and ident:
        return {"subject_type": kind, "subject_id": ident}
    return {"subject_id": text}


def interpret_search(text: str) -> Search:
    """The search box, first match wins: a seq (``123``, ``#123``); an actor reference (``user:42``,
    ``service:ci``, ``system:x``); a request id that some entry carries; a subject (``type:id``); a
    username (as the actor filter resolves it). Anything else matches nothing (``filters`` None)."""
    seq = _SEQ.fullmatch(text)
    if seq:
        number = int(seq.group(1))
        return Search("seq", {"seq": number}, f"entry #{number}", number)
    kind, sep, ident = text.partition(":")
    if sep and kind in ACTOR_KINDS and ident:
        return Search("actor", {"actor_type": kind, "actor_id": ident}, f"entries by actor {text}")
    if _REQUEST_ID.fullmatch(text) and Entry.objects.filter(request_id=text).exists():
        return Search("request", {"request_id": text}, f"entries of request {text}")
    if sep and kind and ident:
        return Search("subject", {"subject_type": kind, "subject_id": ident}, f"entries about {text}")
    actor = _actor_filter(text)
    if actor is not None:
        return Search("actor", actor, f"entries by {text} ({actor['actor_type']}:{actor['actor_id']})")
    return Search("none", None, "")


# Seq is a signed 64-bit column: a larger cursor would be an overflow error in the database (a 500).
MAX_SEQ = 2**63 - 2


def _int(value: str | None) -> int | None:
    """A seq cursor from the query string; None for anything that is not one (the cursor is then ignored)."""
    try:
        number = int((value or "").strip()[:20])
    except ValueError:
        return None
    return number if 0 <= number <= MAX_SEQ else None


def _filtered(request: HttpRequest) -> tuple[QuerySet[Entry], dict[str, str], Search | None, list[str]]:
    """The entries the filters and the search box select, the cleaned filters, the search and the problems
    (a filter that is not understood is ignored and said so, never a 500)."""
    f = {k: (request.GET.get(k) or "").strip()[:MAX_FILTER]
         for k in ("q", "since", "until", "type", "actor", "subject")}
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
    search = interpret_search(f["q"]) if f["q"] else None
    if search is not None:
        qs = qs.filter(**search.filters) if search.filters is not None else qs.none()
    return qs, f, search, problems


def _ledger_csv(qs: QuerySet[Entry], descending: bool) -> StreamingHttpResponse:
    """The filtered entries in the view's order, up to ``CSV_MAX_ROWS``: keyset chunks on seq (no OFFSET
    over the ledger). References only (``user:42``): the ledger body holds no personal data."""
    def rows() -> Iterator[list[Any]]:
        cursor: int | None = None
        sent = 0
        while sent < CSV_MAX_ROWS:
            page = qs
            if cursor is not None:
                page = page.filter(seq__lt=cursor) if descending else page.filter(seq__gt=cursor)
            chunk = list(page.order_by("-seq" if descending else "seq")[:min(CSV_CHUNK, CSV_MAX_ROWS - sent)])
            for e in chunk:
                yield [e.seq, e.timestamp, e.event_type, f"{e.actor_type}:{e.actor_id}",
                       f"{e.subject_type}:{e.subject_id}", e.request_id, e.entry_hash]
            sent += len(chunk)
            if len(chunk) < CSV_CHUNK:
                return
            cursor = chunk[-1].seq

    return csv_stream(CSV_COLUMNS, rows(), name="ledger")


@login_required
@ledger_read(LedgerRead("console-ledger", filter_keys=("q", "since", "until", "type", "actor", "subject", "sort",
                                                       "format"),
                        cursor_keys=("before", "after", "jump"), covers=PAGES))
def ledger(request: HttpRequest) -> HttpResponseBase:
    if not is_oversight(request.user):
        return denied(request, NOT_PERMITTED)
    qs, f, search, problems = _filtered(request)
    sort = request.GET.get("sort") if request.GET.get("sort") in SORTS else "-seq"
    descending = sort == "-seq"
    if wants_csv(request):
        return _ledger_csv(qs, descending)
    for problem in problems:
        messages.error(request, f"Filter ignored: {problem}.")
    head = LedgerHead.objects.filter(pk=1).values_list("tree_size", flat=True).first() or 0
    if search is not None:
        if search.kind == "seq" and search.seq is not None and qs.exists():
            return redirect("console-entry", seq=search.seq)
        if search.kind == "seq":
            filtered = any(v for k, v in f.items() if k != "q")
            messages.warning(request, f"Nothing matches {f['q']!r}: there is no entry #{search.seq} "
                                      f"{'among the filtered entries' if filtered else 'in the ledger'} "
                                      f"(the ledger holds {head} entries, #0 to #{max(head - 1, 0)}).")
        elif search.filters is None:
            messages.warning(request, f"Nothing matches {f['q']!r}: not a seq, a request id, a subject (type:id), "
                                      "an actor (user:42) or a username.")
        else:
            messages.info(request, f"Showing {search.description}.")
    before, after = _int(request.GET.get("before")), _int(request.GET.get("after"))
    jump_text = (request.GET.get("jump") or "").strip()
    jump = _int(jump_text.lstrip("#"))
    if jump_text and jump is None:
        messages.error(request, f"Cannot jump to {jump_text[:40]!r}: a seq is a number (0 or more).")
    elif jump is not None and before is None and after is None:
        # The page that starts at that seq, in the current order and filters.
        before, after = (jump + 1, None) if descending else (None, jump - 1 if jump else None)
        if jump >= head:
            messages.warning(request, f"There is no entry #{jump} yet: the ledger holds {head} entries.")
    rows, prev_cursor, next_cursor = _keyset_page(qs, descending=descending, before=before, after=after)
    names = display_names(actor_refs(rows))
    filters_only = urlencode([(k, v) for k, v in f.items() if v])
    query = "&".join(part for part in (filters_only, "sort=seq" if sort != "-seq" else "") if part)
    return render(request, "console/ledger.html", {
        "nav": "ledger", "entries": rows, "names": names, "f": f, "qs": query,
        "types": registry.names(), "prev": prev_cursor, "next": next_cursor, "sort": sort,
        "sort_link": f"?{filters_only + '&' if filters_only else ''}sort={'seq' if descending else '-seq'}",
        "head": head, "jump": jump_text[:40],
    })


def _keyset_page(
    qs: QuerySet[Entry], *, descending: bool, before: int | None, after: int | None
) -> tuple[list[Entry], str | None, str | None]:
    """One page in display order, and the cursor parameters (``before=N``/``after=N``) of the previous and
    next pages (None at either end). ``before`` pages towards lower seqs, ``after`` towards higher ones."""
    if after is not None:
        rows = list(qs.filter(seq__gt=after).order_by("seq")[: PAGE_SIZE + 1])
        more_higher, rows, more_lower = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE], True
    else:
        page_qs = qs.filter(seq__lt=before) if before is not None else qs
        if descending or before is not None:
            rows = list(page_qs.order_by("-seq")[: PAGE_SIZE + 1])
            more_lower, rows, more_higher = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE][::-1], before is not None
        else:  # oldest first, from the start
            rows = list(page_qs.order_by("seq")[: PAGE_SIZE + 1])
            more_higher, rows, more_lower = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE], False
    # ``rows`` is ascending here; "previous" is the side the page came from in display order.
    if not rows:
        return [], None, None
    lower = f"before={rows[0].seq}" if more_lower else None
    higher = f"after={rows[-1].seq}" if more_higher else None
    if descending:
        return rows[::-1], higher, lower
    return rows, lower, higher


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


def verify_entry(entry: Entry, checkpoint: Checkpoint | None, pending: CheckpointPending | None) -> list[Step]:
    """Each check an offline verifier makes for one entry, with its outcome. ``pending``: when the next
    checkpoint should cover the entry, given exactly when ``checkpoint`` is None (the entry page has it)."""
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
        assert pending is not None
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
        "names": display_names([*actor_refs([entry]), f"{entry.subject_type}:{entry.subject_id}"]),
    }


@login_required
@ledger_read(LedgerRead("console-entry", path_keys=("seq",), filter_keys=("verify",)))
def entry_detail(request: HttpRequest, seq: int) -> HttpResponse:
    if not is_oversight(request.user):
        return denied(request, NOT_PERMITTED)
    entry = Entry.objects.filter(seq=seq).first()
    if entry is None:
        return render(request, "console/entry_missing.html", {"nav": "ledger", "seq": seq}, status=404)
    context = _entry_context(request, entry)
    if request.GET.get("verify"):
        context["steps"] = verify_entry(entry, context["checkpoint"], context["pending"])
        context["verdict"] = verdict(context["steps"])
    return render(request, "console/entry.html", context)


@not_a_ledger_read("recorded by audit.pii.reveal as privacy.pii_revealed (who, which entry, why): "
                   "a second entry would say the same")
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
    except StepUpRequired as exc:  # nothing was read or written: confirm it's you, then reveal again
        refusal_message(request, exc)
        return redirect("console-entry", seq=seq)
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


