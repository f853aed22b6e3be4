"""Regulator exports of the ledger: verifiable bundles, CSV, and a model's audit report.

``export_create`` (a service) records who exports what as a ``ledger.exported``
entry, in the same transaction as the ``ExportJob`` it creates, and queues
``audit.tasks.run_export`` after commit. ``export_run`` (that task, or the
``export_audit`` command directly) writes the file. The bundle format and what
``verify.py`` (``audit/offline_verify.py``) proves are in docs/export-format.md.

The scope is fixed when the export is created: the ledger then had ``ledger_size``
entries and the export covers only those (``seq < ledger_size``), whenever the
file is written. For subject exports the scope also records each subject's last
``seq`` below that size (its head), which lets a bundle show that none of the
subject's entries was left out.

Exports never contain personal data in clear: entry bodies hold commitment
objects where a payload had personal values (see docs/pii.md), and the report
shows them as redacted. Nothing here logs a payload.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import heapq
import itertools
import json
import os
import queue
import re
import shlex
import threading
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from json.encoder import encode_basestring
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone

from access.roles import AUDITOR, INFOSEC, role_names
from audit import offline_verify, signing
from audit.canonical import ZERO_HASH, body_bytes, format_timestamp, leaf_hash, parse_timestamp
from audit.event_catalogue import catalogue_json
from audit.event_types import registry
from audit.ledger import Actor, Subject, fetch_nodes, integrate, record
from audit.merkle import fold, inclusion_ranges, range_nodes, verify_inclusion
from audit.models import Checkpoint, Entry, ExportJob, LedgerHead, SigningKey
from audit.note import NoteError, Verifier, open_note
from audit.witnessing import checkpoint_witness, configured_witnesses, published_note

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User

FORMATS = ("bundle", "csv", "report")
EXTENSIONS = {"bundle": "zip", "csv": "csv", "report": "html"}
EVENT_TYPES_FILE = "event-types.json"
BUNDLE_FORMAT = offline_verify.FORMAT
EXPORT_ROLES = (INFOSEC, AUDITOR)
MAX_SUBJECTS = 10_000
MAX_CHECKPOINTS = 1000  # earlier checkpoints in a bundle before thinning to one per day
CHUNK = 4096
PROGRESS_EVERY = 20_000
BLOCK_LEVEL = 10  # proofs are made per aligned block of 1,024 leaves
BLOCK = 1 << BLOCK_LEVEL
DENSE = 64  # from this many exported entries in a block its subtree is computed, not fetched node by node
FETCH_BATCH = 500

_FIELDS = (
    "seq", "timestamp", "event_type", "actor_type", "actor_id", "subject_type", "subject_id",
    "payload_json", "prev_hash", "subject_prev", "entry_hash", "request_id",
)
Row = tuple[Any, ...]
Progress = Callable[[int, "int | None"], None]


class ExportError(ValueError):
    """An export cannot be made as asked; the message says why. ``code`` is stable for the API."""

    def __init__(self, message: str, *, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


class ExportNotPermitted(ExportError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="not_permitted")


# --- who may export and download --------------------------------------------------------------------


def has_role(user: object, roles: tuple[str, ...]) -> bool:
    """Whether ``user`` is an active account holding one of ``roles``.

    By role only: ``is_superuser`` and ``is_staff`` grant nothing here (the operator who ran
    createsuperuser is no side door into the ledger, its exports or the key commands).
    """
    if not getattr(user, "is_active", False) or not getattr(user, "is_authenticated", False):
        return False
    return bool(role_names(user) & set(roles))  # type: ignore[arg-type]


def may_export(user: object) -> bool:
    """InfoSec and auditors may export the ledger."""
    return has_role(user, EXPORT_ROLES)


def may_download(user: AbstractBaseUser | AnonymousUser, job: ExportJob) -> bool:
    """InfoSec may download any export; an auditor only their own."""
    if has_role(user, (INFOSEC,)):
        return True
    return has_role(user, EXPORT_ROLES) and job.created_by_id is not None and job.created_by_id == user.pk


def exports_dir() -> Path:
    return Path(settings.VAR_DIR) / "exports"


def path_name(job: ExportJob) -> str:
    """The file name of an export as the download (and the task) names it."""
    return f"export-{job.pk}.{EXTENSIONS[job.format]}"


# --- the scope ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportScope:
    """What to export. Timestamps are the ledger's own format (UTC, microseconds, ``Z``), inclusive."""

    since: str | None = None
    until: str | None = None
    subjects: tuple[tuple[str, str], ...] = ()
    event_types: tuple[str, ...] = ()
    model: str | None = None
    dataset: str | None = None
    # A checkpoint the recipient already holds (its tree size): the bundle then proves consistency with it.
    since_checkpoint: int | None = None

    @property
    def completeness(self) -> str:
        """``ledger`` (a range of the whole ledger), ``subjects`` or ``none`` (filtered by event type)."""
        return offline_verify.completeness_kind(
            {"event_types": list(self.event_types), "subjects": list(self.subjects), "model": self.model,
             "dataset": self.dataset}
        )


def parse_time(value: str | datetime, *, end_of_day: bool = False, label: str = "time") -> str:
    """An ISO 8601 date or date-time as a ledger timestamp. Naive times are UTC.

    A bare date means the start of that day, or its last microsecond with ``end_of_day``
    (so ``--until 2026-11-30`` includes the whole 30th).
    """
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return format_timestamp(moment)
    text = str(value).strip()
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
            if end_of_day:
                day = datetime.combine(day.date(), time.max, tzinfo=UTC)
            return format_timestamp(day)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ExportError(
            f"{label} {text!r} is not an ISO 8601 date or time (e.g. 2026-11-01 or 2026-11-01T09:30:00Z)",
            code="invalid_time",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if not 1 <= moment.astimezone(UTC).year <= 9999:
        raise ExportError(f"{label} {text!r} is out of range", code="invalid_time")
    return format_timestamp(moment)


def _subject(text: str) -> tuple[str, str]:
    kind, sep, ident = str(text).partition(":")
    if not sep or not kind or not ident:
        raise ExportError(f"subject {text!r} must look like TYPE:ID, e.g. model_version:fraud-detector/7",
                          code="invalid_subject")
    if len(kind) > 100 or len(ident) > 300 or any(ord(c) < 0x20 for c in text):
        raise ExportError(f"subject {text[:80]!r} is too long or has control characters", code="invalid_subject")
    return kind, ident


def parse_scope(
    *,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    subjects: Iterable[str] = (),
    event_types: Iterable[str] = (),
    model: str | None = None,
    dataset: str | None = None,
    since_checkpoint: int | str | None = None,
) -> ExportScope:
    """Validate and normalise an export scope; raises ExportError naming what is wrong."""
    known: int | None = None
    if since_checkpoint not in (None, ""):
        text = str(since_checkpoint).strip()
        if not (text.isascii() and text.isdigit()) or int(text) < 1 or len(text) > 18:
            raise ExportError(f"--since-checkpoint {text[:40]!r} must be a tree size (a positive integer)",
                              code="invalid_checkpoint")
        known = int(text)
    since_ts = parse_time(since, label="--since") if since not in (None, "") else None
    until_ts = parse_time(until, end_of_day=True, label="--until") if until not in (None, "") else None
    if since_ts and until_ts and since_ts > until_ts:
        raise ExportError(f"--since {since_ts} is after --until {until_ts}", code="invalid_time")
    types = sorted(set(event_types))
    for name in types:
        if name not in registry:
            raise ExportError(f"unknown event type {name!r} (see audit/event_types.py)", code="unknown_event_type")
    parsed = sorted({_subject(s) for s in subjects})
    for label, value in (("--model", model), ("--dataset", dataset)):
        if value is not None and (not str(value).strip() or len(str(value)) > 300):
            raise ExportError(f"{label} must be a non-empty name", code="invalid_scope")
    return ExportScope(
        since=since_ts, until=until_ts, subjects=tuple(parsed), event_types=tuple(types),
        model=model.strip() if model else None, dataset=dataset.strip() if dataset else None,
        since_checkpoint=known,
    )


# Runtime events (audit/runtime_events.py) that name a model without a version are recorded about these shared
# subjects, which also hold other models' events: a model's export cannot include them and says so.
SHARED_RUNTIME_SUBJECTS = ("environment", "runtime_source")


def _names_model(payload_json: str, name: str) -> bool:
    try:
        payload = json.loads(payload_json)
    except ValueError:
        return False
    return isinstance(payload, dict) and payload.get("model") == name


def _payload_mentions(name: str) -> str:
    """A substring every canonical payload with top-level ``"model": name`` contains (a prefilter only)."""
    return '"model":' + json.dumps(name, ensure_ascii=False)


def model_subjects(name: str, *, size: int | None = None) -> list[tuple[str, str]]:
    """Every ledger subject about a registered model, among entries with ``seq < size`` (all when None).

    The model, each version that the registry mirror knows *or* that the ledger has entries about
    (``model_version:NAME/<n>``: runtime telemetry may name a version the mirror never saw), their
    promotion requests, and the ``incident:<id>`` subjects whose entries name the model in their payload.
    """
    from governance.models import PromotionRequest, RegisteredModel

    model = RegisteredModel.objects.filter(name=name).first()
    if model is None:
        raise ExportError(f"no registered model named {name!r}", code="unknown_model")
    entries = Entry.objects.all() if size is None else Entry.objects.filter(seq__lt=size)
    subjects = {("registered_model", model.name)}
    subjects |= {("model_version", f"{model.name}/{v}") for v in model.versions.values_list("version", flat=True)}
    version_id = re.compile(re.escape(model.name) + r"/(0|[1-9][0-9]*)")
    subjects |= {
        ("model_version", ident)
        for ident in entries.filter(subject_type="model_version", subject_id__startswith=f"{model.name}/")
        .values_list("subject_id", flat=True).distinct()
        if version_id.fullmatch(ident)
    }
    requests = PromotionRequest.objects.filter(version__model=model).values_list("pk", flat=True)
    subjects |= {("promotion_request", str(pk)) for pk in requests}
    incidents = entries.filter(subject_type="incident", payload_json__contains=_payload_mentions(model.name))
    subjects |= {("incident", ident) for ident, pj in incidents.values_list("subject_id", "payload_json")
                 if _names_model(pj, model.name)}
    return sorted(subjects)


def model_exclusions(name: str, size: int) -> list[dict[str, Any]]:
    """What a ``--model`` export leaves out although it is about the model, with how many entries (seq < size).

    Runtime events naming the model without a version are about ``environment:`` or ``runtime_source:``
    subjects shared with other models; exporting those subjects would export the other models' events too.
    """
    candidates = Entry.objects.filter(
        seq__lt=size, subject_type__in=SHARED_RUNTIME_SUBJECTS, event_type__in=registry.runtime_names(),
        payload_json__contains=_payload_mentions(name),
    ).values_list("subject_type", "subject_id", "payload_json")
    counts: dict[tuple[str, str], int] = {}
    for st, sid, pj in candidates.iterator(chunk_size=2000):
        if _names_model(pj, name):
            counts[(st, sid)] = counts.get((st, sid), 0) + 1
    if not counts:
        return []
    return [{
        "what": f"runtime events naming model {name} without a version",
        "why": "they are recorded about environment or reporting-system subjects that also hold other models' "
               "events; completeness is not claimed for them",
        "subjects": [{"type": t, "id": i, "entries": n} for (t, i), n in sorted(counts.items())],
        "entries": sum(counts.values()),
        "how_to_export": "export_audit --subject TYPE:ID for each subject listed",
    }]


def dataset_subjects(name: str) -> list[tuple[str, str]]:
    try:
        from access.models import Dataset
    except ImportError:  # pragma: no cover - the access app is part of the project
        return [("dataset", name)]
    if not Dataset.objects.filter(name=name).exists():
        raise ExportError(f"no dataset named {name!r}", code="unknown_dataset")
    return [("dataset", name)]


def _resolve_subjects(scope: ExportScope, size: int | None = None) -> list[tuple[str, str]]:
    subjects = set(scope.subjects)
    if scope.model:
        subjects.update(model_subjects(scope.model, size=size))
    if scope.dataset:
        subjects.update(dataset_subjects(scope.dataset))
    if len(subjects) > MAX_SUBJECTS:
        raise ExportError(f"the scope has {len(subjects):,} subjects (at most {MAX_SUBJECTS:,}); narrow it",
                          code="too_many_subjects")
    return sorted(subjects)


def _head(subject_type: str, subject_id: str, size: int) -> int | None:
    last: int | None = (
        Entry.objects.filter(subject_type=subject_type, subject_id=subject_id, seq__lt=size)
        .order_by("-seq").values_list("seq", flat=True).first()
    )
    return last


# --- the service -----------------------------------------------------------------------------------


@transaction.atomic
def export_create(
    *, user: User | None, scope: ExportScope, fmt: str = "bundle", enqueue: bool = True
) -> ExportJob:
    """Record an export of the ledger (``ledger.exported``) and create its job.

    ``user`` is the person accountable for the export (InfoSec or auditor); None
    only for the operator's own command line (recorded as ``system:export_audit``).
    With ``enqueue`` the file is written by ``audit.tasks.run_export`` after commit.
    """
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}", code="invalid_format")
    if fmt == "report" and not scope.model:
        raise ExportError("the report format is about one model: give --model", code="report_needs_model")
    if user is not None and not may_export(user):
        raise ExportNotPermitted("only InfoSec and auditors may export the ledger")
    # Under the sequencer's lock, so the size, the subjects and their heads describe one state of the ledger.
    # (A refusal below rolls back: nothing is recorded.)
    LedgerHead.objects.select_for_update().get(pk=1)
    integrate()
    size = LedgerHead.objects.values_list("tree_size", flat=True).get(pk=1)
    subjects = _resolve_subjects(scope, size)
    if scope.since_checkpoint is not None:
        if fmt != "bundle":
            raise ExportError("--since-checkpoint is for bundles (it adds a consistency proof)", code="invalid_scope")
        if scope.since_checkpoint > size or not Checkpoint.objects.filter(tree_size=scope.since_checkpoint).exists():
            raise ExportError(f"the ledger signed no checkpoint of tree size {scope.since_checkpoint}",
                              code="unknown_checkpoint")
    now = timezone.now()
    job = ExportJob.objects.create(created_by=user, format=fmt, created_at=now)
    payload_scope: dict[str, Any] = {
        "since": scope.since,
        "until": scope.until,
        "event_types": list(scope.event_types),
        "model": scope.model,
        "dataset": scope.dataset,
        "subjects": [[t, i, _head(t, i, size)] for t, i in subjects],
        "ledger_size": size,
    }
    if scope.since_checkpoint is not None:  # only then: other scopes are recorded exactly as before
        payload_scope["since_checkpoint"] = scope.since_checkpoint
    actor = Actor.user(user) if user is not None else Actor.system("export_audit")
    recorded = record(
        event_type="ledger.exported",
        actor=actor,
        subject=Subject("export", str(job.pk)),
        payload={"export_id": job.pk, "format": fmt, "scope": payload_scope},
        timestamp=now,
    )
    job.scope = payload_scope
    job.ledger_pending_id = recorded.pending_id
    job.save(update_fields=["scope", "ledger_pending_id"])
    if enqueue:
        from audit.tasks import run_export

        job_id = job.pk
        transaction.on_commit(lambda: run_export.delay(job_id))
    return job


# --- what a scope selects ----------------------------------------------------------------------------


@dataclass
class SubjectRun:
    subject: tuple[str, str]
    head: int | None
    first: int | None = None  # the exported run of the subject's chain, inclusive
    last: int | None = None
    count: int = 0


@dataclass
class Plan:
    """Which entries an export holds, and the boundary entries that show nothing else belongs."""

    kind: str
    size: int  # entries with seq < size are in scope
    since: str | None
    until: str | None
    types: tuple[str, ...]
    runs: list[SubjectRun] = field(default_factory=list)
    first: int | None = None  # the run of the ledger kind
    last: int | None = None
    boundaries: list[tuple[str, int]] = field(default_factory=list)  # (role, seq)
    total: int | None = None


def _first_seq(qs: Any) -> int | None:
    value: int | None = qs.order_by("seq").values_list("seq", flat=True).first()
    return value


def _last_seq(qs: Any) -> int | None:
    value: int | None = qs.order_by("-seq").values_list("seq", flat=True).first()
    return value


def plan(scope: dict[str, Any]) -> Plan:
    """The selection of a recorded scope (``ExportJob.scope``), deterministic for a given ledger."""
    size = int(scope["ledger_size"])
    since, until = scope.get("since"), scope.get("until")
    kind = offline_verify.completeness_kind(scope)
    p = Plan(kind=kind, size=size, since=since, until=until, types=tuple(scope.get("event_types") or ()))
    in_scope = Entry.objects.filter(seq__lt=size)
    if kind == "ledger":
        if size == 0:
            p.total = 0
            return p
        if since:
            first = in_scope.filter(timestamp__gte=since).aggregate(v=Min("seq"))["v"]
        else:
            first = 0
        last = in_scope.filter(timestamp__lte=until).aggregate(v=Max("seq"))["v"] if until else size - 1
        if first is None:
            p.boundaries.append(("before", size - 1))
        else:
            if first > 0:
                p.boundaries.append(("before", first - 1))
            if last is None:
                p.boundaries.append(("after", 0))
            elif last + 1 < size:
                p.boundaries.append(("after", last + 1))
            if last is not None and first <= last:
                p.first, p.last = first, last
        p.total = 0 if p.first is None or p.last is None else p.last - p.first + 1
        return p
    for item in scope.get("subjects") or []:
        run = SubjectRun(subject=(item[0], item[1]), head=item[2])
        p.runs.append(run)
        if kind != "subjects" or run.head is None:
            continue
        qs = in_scope.filter(subject_type=run.subject[0], subject_id=run.subject[1])
        first = _first_seq(qs.filter(timestamp__gte=since)) if since else _first_seq(qs)
        last = _last_seq(qs.filter(timestamp__lte=until)) if until else run.head
        if first is None:
            p.boundaries.append(("before", run.head))
            continue
        before = qs.filter(seq=first).values_list("subject_prev", flat=True).first()
        if before is not None:
            p.boundaries.append(("before", before))
        after = _first_seq(qs.filter(seq__gt=last)) if last is not None else first
        if after is not None:
            p.boundaries.append(("after", after))
        if last is not None and first <= last:
            run.first, run.last = first, last
            run.count = qs.filter(seq__gte=first, seq__lte=last).count()
    if kind == "subjects":
        p.total = sum(r.count for r in p.runs)
    p.boundaries.sort(key=lambda b: b[1])
    return p


def _windows(qs: Any, start: int, stop: int, width: int) -> Iterator[Row]:
    """The rows of ``qs`` with ``start <= seq < stop`` in seq order, one window of ``width`` seqs at a time.

    Every query reads at most ``width`` entries whatever plan the database picks (with
    ``ORDER BY ... LIMIT`` over a long range, a planner with stale statistics sorts
    the whole rest of the range for every page). For the contiguous ranges of the
    ledger a window is exactly a page.
    """
    while start < stop:
        end = min(start + width, stop)
        yield from list(qs.filter(seq__gte=start, seq__lt=end).order_by("seq").values_list(*_FIELDS))
        start = end


def _keyset(qs: Any, start: int, stop: int, chunk: int) -> Iterator[Row]:
    """The rows of ``qs`` with ``start <= seq < stop`` in seq order, ``chunk`` at a time (sparse selections).

    Each page has exactly one lower and one upper bound on ``seq``: given several,
    SQLite's planner may range-scan the index from the wrong one and every page
    would cost more than the last.
    """
    while start < stop:
        rows = list(qs.filter(seq__gte=start, seq__lt=stop).order_by("seq").values_list(*_FIELDS)[:chunk])
        yield from rows
        if len(rows) < chunk:
            return
        start = rows[-1][0] + 1


def rows(p: Plan, *, chunk: int = CHUNK) -> Iterator[Row]:
    """The selected entries' stored fields (``_FIELDS``), in ``seq`` order, a chunk at a time."""
    entries = Entry.objects.all()
    if p.kind == "ledger":
        if p.first is None or p.last is None:
            return iter(())
        return _windows(entries, p.first, min(p.last + 1, p.size), chunk)
    if p.kind == "subjects":
        runs = [r for r in p.runs if r.first is not None and r.last is not None]
        per = max(64, min(chunk, 50_000 // max(1, len(runs))))
        return heapq.merge(*(
            _keyset(entries.filter(subject_type=r.subject[0], subject_id=r.subject[1]), r.first,
                    min(r.last + 1, p.size), per)
            for r in runs
            if r.first is not None and r.last is not None
        ))
    qs = entries
    if p.since:
        qs = qs.filter(timestamp__gte=p.since)
    if p.until:
        qs = qs.filter(timestamp__lte=p.until)
    if p.types:
        qs = qs.filter(event_type__in=p.types)
    if p.runs:
        per = max(64, min(chunk, 50_000 // len(p.runs)))
        return heapq.merge(*(
            _keyset(qs.filter(subject_type=r.subject[0], subject_id=r.subject[1]), 0, p.size, per) for r in p.runs
        ))
    return _windows(qs, 0, p.size, chunk * 16)


def _row_body(row: Row) -> bytes:
    """The canonical body of a stored entry, exactly as hashed (what ``Entry.canonical_body()`` returns)."""
    seq, ts, et, at, aid, st, sid, pj, ph, sp, _, rid = row
    return body_bytes(
        seq=seq, timestamp=ts, event_type=et, actor_type=at, actor_id=aid, subject_type=st, subject_id=sid,
        payload_json=pj, prev_hash=ph, subject_prev=sp, request_id=rid,
    )


def _fast_body(row: Row, q: Callable[[str], str] = encode_basestring) -> bytes:
    """``_row_body`` without the overhead of ``JSONEncoder.encode`` (the same bytes; callers check the hash)."""
    seq, ts, et, at, aid, st, sid, pj, ph, sp, _, rid = row
    request = "" if rid is None else f'"request_id":{q(rid)},'
    return (
        f'{{"actor":{{"id":{q(aid)},"type":{q(at)}}},"event_type":{q(et)},"payload":{pj},"prev_hash":{q(ph)},'
        f'{request}"seq":{int(seq)},"subject":{{"id":{q(sid)},"type":{q(st)}}},'
        f'"subject_prev":{"null" if sp is None else int(sp)},"timestamp":{q(ts)}}}'
    ).encode()


class _Checked:
    """Recomputes each exported entry's hash and the chain between consecutive ones: a tampered ledger is refused."""

    def __init__(self) -> None:
        self.prev: tuple[int, str] | None = None

    def __call__(self, row: Row) -> tuple[bytes, bytes]:
        body = _fast_body(row)
        leaf = hashlib.sha256(b"\x00" + body).digest()
        seq, eh, ph = row[0], row[10], row[8]
        if leaf.hex() != eh:
            body = _row_body(row)  # the reference assembly, in case the fast one ever differs
            leaf = leaf_hash(body)
        if leaf.hex() != eh:
            raise ExportError(
                f"entry {seq} does not match its stored hash: the ledger was changed; run verify_ledger",
                code="ledger_not_intact",
            )
        prev = self.prev
        if (prev is not None and prev[0] == seq - 1 and ph != prev[1]) or (seq == 0 and ph != ZERO_HASH):
            raise ExportError(f"entry {seq} is not linked to entry {seq - 1}: the ledger was changed; "
                              "run verify_ledger", code="ledger_not_intact")
        self.prev = (seq, eh)
        return body, leaf


# --- inclusion proofs in bulk ----------------------------------------------------------------------


def _fetch(nodes: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    wanted = list(nodes)
    out: dict[tuple[int, int], bytes] = {}
    for i in range(0, len(wanted), FETCH_BATCH):
        out.update(fetch_nodes(wanted[i : i + FETCH_BATCH]))
    return out


class Proofs:
    """RFC 9162 inclusion proofs of many leaves against one checkpoint, leaf to root, as hex.

    Leaves come in ``seq`` order, grouped per aligned block of 1,024. A block that is
    complete in the tree and mostly exported has its subtree computed here (its other
    leaves read from the entries), plus one shared path from the block to the root; a
    sparse or the last, partial block is proved leaf by leaf from the stored nodes.
    Every block's first proof (and every leaf-by-leaf one) is verified against the
    root before it is written: an export never contains a proof that does not verify.
    """

    def __init__(self, size: int, root: bytes) -> None:
        self.size = size
        self.root = root
        self._upper: dict[int, list[str]] = {}

    def upper(self, block: int) -> list[str]:
        """The path from complete block ``block`` to the root (hex); fetched for 64 blocks at a time."""
        if block not in self._upper:
            self._upper.clear()
            complete = self.size >> BLOCK_LEVEL
            wanted = range(block, min(block + 64, complete))
            plans = {b: [range_nodes(s, e) for s, e in inclusion_ranges(b << BLOCK_LEVEL, self.size)[BLOCK_LEVEL:]]
                     for b in wanted}
            stored = _fetch({node for ranges in plans.values() for nodes in ranges for node in nodes})
            try:
                for b, ranges in plans.items():
                    self._upper[b] = [fold([stored[n] for n in nodes]).hex() for nodes in ranges]
            except KeyError:
                raise ExportError("tree nodes are missing: run verify_ledger", code="ledger_not_intact") from None
        return self._upper[block]

    def lines(self, leaves: list[tuple[int, bytes]]) -> bytes:
        """The proofs.jsonl lines of ``leaves`` (one aligned block, in seq order)."""
        size = self.size
        base = leaves[0][0] >> BLOCK_LEVEL << BLOCK_LEVEL
        if base + BLOCK > size or len(leaves) < DENSE:
            self._generic(leaves)
            return b"".join(_proof_line(seq, size, self.single(seq, leaf)) for seq, leaf in leaves)
        if len(leaves) == BLOCK:
            level = [leaf for _, leaf in leaves]
        else:
            level = self._block_leaves(base, leaves)
        levels = [[h.hex() for h in level]]
        for _ in range(BLOCK_LEVEL):
            level = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)]
            levels.append([h.hex() for h in level])
        upper = self.upper(base >> BLOCK_LEVEL)
        first_seq, first_leaf = leaves[0]
        first = [levels[lv][((first_seq - base) >> lv) ^ 1] for lv in range(BLOCK_LEVEL)] + upper
        if not verify_inclusion(first_seq, size, first_leaf, [bytes.fromhex(h) for h in first], self.root):
            raise ExportError(f"the inclusion proof of entry {first_seq} does not verify against the checkpoint: "
                              "the stored tree is not intact; run verify_ledger", code="ledger_not_intact")
        # The path text from level l up, per node of level l: shared by all the leaves below that node.
        suffix = [('","' + '","'.join(upper) if upper else "") + '"]}\n']
        for lv in range(BLOCK_LEVEL - 1, -1, -1):
            siblings, above = levels[lv], suffix
            suffix = [siblings[i ^ 1] + ('","' + above[i >> 1] if lv < BLOCK_LEVEL - 1 else above[0])
                      for i in range(len(siblings))]
        head = f',"tree_size":{size},"inclusion":["'
        return "".join([f'{{"seq":{seq}{head}{suffix[seq - base]}' for seq, _ in leaves]).encode()

    def _block_leaves(self, base: int, leaves: list[tuple[int, bytes]]) -> list[bytes]:
        known = dict(leaves)
        stored = Entry.objects.filter(seq__gte=base, seq__lt=base + BLOCK).order_by("seq")
        hashes = list(stored.values_list("seq", "entry_hash"))
        if len(hashes) != BLOCK or hashes[0][0] != base or hashes[-1][0] != base + BLOCK - 1:
            raise ExportError(f"entries {base}..{base + BLOCK - 1} are not all stored: run verify_ledger",
                              code="ledger_not_intact")
        return [known.get(s) or bytes.fromhex(h) for s, h in hashes]

    def _generic(self, leaves: list[tuple[int, bytes]]) -> None:
        plans = {seq: [range_nodes(s, e) for s, e in inclusion_ranges(seq, self.size)] for seq, _ in leaves}
        needed = {node for ranges in plans.values() for nodes in ranges for node in nodes}
        self._nodes = _fetch(needed)
        missing = needed - self._nodes.keys()
        if missing:
            raise ExportError(f"{len(missing)} tree node(s) are not stored: run verify_ledger",
                              code="ledger_not_intact")
        self._plans = plans

    def single(self, seq: int, leaf: bytes) -> list[str]:
        path = [fold([self._nodes[n] for n in nodes]) for nodes in self._plans[seq]]
        if not verify_inclusion(seq, self.size, leaf, path, self.root):
            raise ExportError(f"the inclusion proof of entry {seq} does not verify against the checkpoint: "
                              "the stored tree is not intact; run verify_ledger", code="ledger_not_intact")
        return [h.hex() for h in path]

    def one(self, seq: int, leaf: bytes) -> list[str]:
        """The proof of a single leaf (boundary entries, the export's own entry)."""
        self._generic([(seq, leaf)])
        return self.single(seq, leaf)


def _proof_line(seq: int, size: int, path: list[str]) -> bytes:
    inner = '","'.join(path)
    return (f'{{"seq":{seq},"tree_size":{size},"inclusion":[' + (f'"{inner}"' if path else "") + "]}\n").encode()


# --- running an export ---------------------------------------------------------------------------------


def _export_entry(job: ExportJob) -> Entry:
    if job.ledger_pending_id is None:
        raise ExportError(f"export #{job.pk} was not recorded in the ledger", code="not_recorded")
    entry = Entry.objects.filter(pending_id=job.ledger_pending_id).first()
    if entry is None:
        integrate()
        entry = Entry.objects.filter(pending_id=job.ledger_pending_id).first()
    if entry is None:
        raise ExportError(f"export #{job.pk}: its ledger entry is not in the ledger (was it committed?)",
                          code="not_recorded")
    return entry


def _verified(checkpoint: Checkpoint, verifiers: list[Verifier]) -> list[Verifier]:
    try:
        return open_note(checkpoint.note, verifiers).verified_by
    except NoteError as exc:
        raise ExportError(f"checkpoint #{checkpoint.pk} does not verify with the configured keys ({exc}): "
                          "run verify_ledger", code="ledger_not_intact") from None


def anchor(seq: int) -> Checkpoint:
    """The latest checkpoint, signing one now when it does not cover entry ``seq`` yet."""
    from audit.checkpoints import checkpoint_create

    checkpoint = Checkpoint.objects.order_by("-id").first()
    if checkpoint is None or checkpoint.tree_size <= seq:
        checkpoint = checkpoint_create()
    assert checkpoint is not None  # only_if_grown is off: one is always made
    return checkpoint


def export_run(*, export_id: int, out: Path | None = None, progress: Progress | None = None) -> ExportJob:
    """Write export ``export_id``'s file; idempotent (a finished export is left as it is).

    ``out`` writes to that path instead of ``VAR_DIR/exports`` (the command line).
    The file is written next to its destination and renamed into place, so a crash
    never leaves half a file under the final name. Raises ExportError when the
    export cannot be made (the job is marked failed with the reason).
    """
    job = ExportJob.objects.filter(pk=export_id).first()
    if job is None:
        raise ExportError(f"no export #{export_id}", code="not_found")
    if out is None and job.state == ExportJob.State.DONE and job.file_path and Path(job.file_path).exists():
        return job
    path = Path(out) if out is not None else exports_dir() / path_name(job)
    ExportJob.objects.filter(pk=job.pk).update(
        state=ExportJob.State.RUNNING, started_at=timezone.now(), error="", entries_done=0
    )
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = _export_entry(job)
        checkpoint = anchor(entry.seq)
        if configured_witnesses():
            # A recipient checks checkpoint.txt's cosignatures offline (--witness-key/--quorum): ask the
            # witnesses now, each bounded by LEDGER_WITNESS_TIMEOUT, rather than ship a head none has seen.
            # A witness that does not answer is recorded by checkpoint_witness; the bundle then carries fewer.
            checkpoint_witness(checkpoint_id=checkpoint.pk)
        p = plan(job.scope)
        ExportJob.objects.filter(pk=job.pk).update(
            entries_total=p.total, ledger_seq=entry.seq, checkpoint_size=checkpoint.tree_size
        )

        def report(done: int) -> None:
            ExportJob.objects.filter(pk=job.pk).update(entries_done=done)
            if progress is not None:
                progress(done, p.total)

        writer = {"bundle": write_bundle, "csv": write_csv, "report": write_report}[job.format]
        count = writer(job=job, plan=p, entry=entry, checkpoint=checkpoint, path=tmp, progress=report)
        digest, size = _file_digest(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        message = str(exc) if isinstance(exc, ExportError) else f"{exc.__class__.__name__}: {exc}"
        ExportJob.objects.filter(pk=job.pk).update(
            state=ExportJob.State.FAILED, error=message[:2000], finished_at=timezone.now()
        )
        raise
    ExportJob.objects.filter(pk=job.pk).update(
        state=ExportJob.State.DONE, file_path=str(path), file_size=size, file_sha256=digest,
        entries_done=count, finished_at=timezone.now(),
    )
    if progress is not None:
        progress(count, p.total)
    job.refresh_from_db()
    return job


def _file_digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


# --- the bundle --------------------------------------------------------------------------------------


class _Background:
    """One thread running submitted writes in order; a failure is raised in the submitting thread."""

    def __init__(self, depth: int = 16) -> None:
        self._queue: queue.Queue[tuple[Callable[[bytes], None], bytes] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="export-writer", daemon=True)

    def __enter__(self) -> _Background:
        self._thread.start()
        return self

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    item[0](item[1])
                except BaseException as exc:  # handed to the submitting thread
                    self._error = exc

    def submit(self, fn: Callable[[bytes], None], data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((fn, data))

    def __exit__(self, *exc: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and exc[0] is None:
            raise self._error


class _Zip:
    """A deterministic zip (fixed timestamps) recording the SHA-256 and size of every member."""

    def __init__(self, path: Path, moment: datetime) -> None:
        self.zip = zipfile.ZipFile(path, "w", allowZip64=True)
        utc = moment.astimezone(UTC)
        self.date_time = (max(utc.year, 1980), utc.month, utc.day, utc.hour, utc.minute, utc.second)
        self.files: dict[str, dict[str, Any]] = {}

    def info(self, name: str, compress: int, level: int | None) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=self.date_time)
        info.compress_type = compress
        info._compresslevel = level  # type: ignore[attr-defined]  # (public in 3.13 as compress_level)
        info.external_attr = 0o644 << 16
        return info

    def put(self, name: str, data: bytes, *, compress: int = zipfile.ZIP_DEFLATED, level: int | None = 6) -> None:
        self.zip.writestr(self.info(name, compress, level), data)
        self.files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    @contextlib.contextmanager
    def stream(
        self, name: str, *, compress: int = zipfile.ZIP_DEFLATED, level: int | None = 1, sha256: str | None = None
    ) -> Iterator[Callable[[bytes], None]]:
        """A writer into a new member; ``sha256`` when the caller already hashed the bytes it will write."""
        digest = hashlib.sha256()
        size = 0
        with self.zip.open(self.info(name, compress, level), "w", force_zip64=True) as fh:

            def write(data: bytes) -> None:
                nonlocal size
                fh.write(data)
                if sha256 is None:
                    digest.update(data)
                size += len(data)

            yield write
        self.files[name] = {"sha256": sha256 or digest.hexdigest(), "bytes": size}

    def close(self) -> None:
        self.zip.close()


def _earlier_checkpoints(head: Checkpoint, low: int, known: int | None = None) -> list[Checkpoint]:
    """The earlier checkpoints a bundle includes (docs/export-format.md, "Which checkpoints"), in file order.

    Every checkpoint signed before ``head`` (smaller id) whose tree holds entry ``low`` (the lowest seq in the
    bundle), i.e. ``low < tree_size <= head.tree_size``; a note identical to one already kept (the same tree
    re-signed by the same keys) is left out. Beyond MAX_CHECKPOINTS: the first, the last of each UTC day and
    every one signed by more than one key (a rotation's handover). ``known`` (the scope's ``since_checkpoint``):
    the first checkpoint of that tree size is included too, whatever ``low``, unless the anchor is of that size.
    Raises ExportError when id order and tree-size order disagree (the files are verified in name, i.e. id, order).
    """
    qs = Checkpoint.objects.filter(id__lt=head.pk, tree_size__gt=low, tree_size__lte=head.tree_size).order_by("id")
    seen = {head.note}
    unique: list[Checkpoint] = []
    for cp in qs.iterator(chunk_size=2000):
        if cp.note not in seen:
            seen.add(cp.note)
            unique.append(cp)
    wanted = None
    if known is not None and known != head.tree_size:
        wanted = Checkpoint.objects.filter(id__lt=head.pk, tree_size=known).order_by("id").first()
        if wanted is not None and wanted.note not in seen:
            unique = sorted([*unique, wanted], key=lambda c: c.pk)
    if len(unique) > MAX_CHECKPOINTS:
        kept: dict[Any, Checkpoint] = {}
        for cp in unique:
            kept[cp.created_at.astimezone(UTC).date()] = cp
        chosen = {cp.pk for cp in [unique[0], *kept.values()]}
        chosen |= {cp.pk for cp in unique if len(offline_verify.signers_of(cp.note)) > 1}
        chosen |= {cp.pk for cp in unique if wanted is not None and cp.note == wanted.note}
        unique = [cp for cp in unique if cp.pk in chosen]
    for a, b in itertools.pairwise([*unique, head]):
        if a.tree_size > b.tree_size:
            raise ExportError(f"checkpoint #{a.pk} (size {a.tree_size}) is larger than the later #{b.pk} "
                              f"(size {b.tree_size}): run verify_ledger", code="ledger_not_intact")
    return unique


def _published(checkpoint: Checkpoint) -> str:
    """The checkpoint as published: its signed note with the witnesses' cosignature lines."""
    return published_note(checkpoint)


# --- trust anchors: what a recipient passes to verify.py ------------------------------------------------------


def trusted_key_lines() -> list[str]:
    """The ledger's verifier keys as trusted-key lines (with their validity), from configuration."""
    return [lt.line() for lt in signing.key_lifetimes()]


def witness_anchors() -> tuple[list[str], int | None]:
    """The configured witnesses' cosigner verifier keys and the quorum a recipient should require."""
    vkeys = [w.verifier_key for w in configured_witnesses()]
    if not vkeys:
        return [], None
    return vkeys, int(settings.LEDGER_WITNESS_QUORUM)


def _quoted(value: str) -> str:
    """``value`` in single quotes for a POSIX shell (always: keys are easier to spot and copy that way)."""
    return "'" + value.replace("'", "'\\''") + "'"


def verify_command(bundle: str = "BUNDLE.zip") -> str:
    """The full verify.py command for a bundle with this ledger's trust anchors filled in."""
    parts = ["python", "verify.py", shlex.quote(bundle)]
    for line in trusted_key_lines():
        parts += ["--trusted-key", _quoted(line)]
    vkeys, quorum = witness_anchors()
    for vkey in vkeys:
        parts += ["--witness-key", _quoted(vkey)]
    if quorum:
        parts += ["--quorum", str(quorum)]
    return " ".join(parts)


def _keys_text(signers: dict[str, list[Checkpoint]], origin: str) -> bytes:
    """keys.txt: the verifier keys that signed the bundle's checkpoints, with when each was in use."""
    from audit.signing import current_verifier_key

    retired: dict[str, str] = {}
    for payload_json, ts in Entry.objects.filter(event_type="ledger.signing_key_rotated").values_list(
        "payload_json", "timestamp"
    ):
        old = json.loads(payload_json).get("old_verifier_key")
        if isinstance(old, str):
            retired.setdefault(old, ts)
    current = current_verifier_key()
    lifetimes = _lifetime_lines()
    lines = [
        "# Verifier keys (C2SP signed-note format) of the keys that signed the checkpoints in this bundle.",
        f"# Key name = the ledger's origin, {origin}. INFORMATION ONLY: verify.py does not trust these keys.",
        "# Obtain the ledger's keys from a channel other than this bundle (the operator's publication,",
        "# python manage.py ledger_keys, an earlier export you kept, a regulator's copy) and pass them to",
        "# verify.py with --trusted-key (see README.txt).",
        "#",
    ]
    for vkey, cps in signers.items():
        name, kid = vkey.split("+")[:2]
        row = SigningKey.objects.filter(name=name, key_id=kid).first()
        start = format_timestamp(row.created_at) if row else "unknown"
        if vkey in retired:
            end = f"{retired[vkey]} (rotated out)"
        elif vkey == current:
            end = "the export (the current key)"
        else:
            end = "unknown"
        times = sorted(format_timestamp(cp.created_at) for cp in cps)
        lines.append(f"# {name}+{kid}: valid from {start} to {end}; signed {len(cps)} checkpoint(s) here, "
                     f"from {times[0]} to {times[-1]}")
        lines.append(lifetimes.get(vkey, vkey))
    return ("\n".join(lines) + "\n").encode()


def _lifetime_lines() -> dict[str, str]:
    """vkey -> its trusted-key line with from=/until=."""
    return {line.split()[0]: line for line in trusted_key_lines() if line.split()}


def _boundary_rows(p: Plan) -> list[tuple[str, Row]]:
    seqs = sorted({seq for _, seq in p.boundaries})
    found = {r[0]: r for r in Entry.objects.filter(seq__in=seqs).values_list(*_FIELDS)} if seqs else {}
    out = []
    for role, seq in p.boundaries:
        if seq not in found:
            raise ExportError(f"entry {seq} is missing from the ledger: run verify_ledger", code="ledger_not_intact")
        out.append((role, found[seq]))
    return out


def _entry_json(body: bytes, entry_hash: str, extra: bytes = b"") -> bytes:
    return b'{"body":' + body + b',"entry_hash":"' + entry_hash.encode() + b'"' + extra + b"}"


def write_bundle(
    *, job: ExportJob, plan: Plan, entry: Entry, checkpoint: Checkpoint, path: Path, progress: Callable[[int], None]
) -> int:
    from audit.selectors import consistency_proof
    from audit.signing import key_name
    from audit.verification import trusted_verifiers

    size, root = checkpoint.tree_size, bytes.fromhex(checkpoint.root_hash)
    size_in_scope = int(job.scope["ledger_size"])
    verifiers = trusted_verifiers()
    signers: dict[str, list[Checkpoint]] = {}
    for v in _verified(checkpoint, verifiers):
        signers.setdefault(str(v), []).append(checkpoint)
    proofs = Proofs(size, root)
    out = _Zip(path, job.created_at)
    count = 0
    next_progress = PROGRESS_EVERY
    first_seq: int | None = None
    last_seq: int | None = None
    proofs_tmp = path.with_name(path.name + ".proofs")
    try:
        proofs_digest = hashlib.sha256()
        proofs_size = 0
        check = _Checked()
        # Entries are compressed into the zip and proofs spooled to a file by a second thread
        # (zlib and hashlib release the GIL), while this one reads the ledger and makes proofs.
        with proofs_tmp.open("wb") as proofs_fh, out.stream("entries.jsonl", level=1) as write_entries, \
                _Background() as background:
            block: list[tuple[int, bytes]] = []
            lines: list[bytes] = []

            def spool(data: bytes) -> None:
                nonlocal proofs_size
                proofs_fh.write(data)
                proofs_digest.update(data)
                proofs_size += len(data)

            def flush() -> None:
                if block:
                    background.submit(spool, proofs.lines(block))
                    block.clear()
                if lines:
                    background.submit(write_entries, b"".join(lines))
                    lines.clear()

            current_block = -1
            add_line, add_leaf = lines.append, block.append
            for row in rows(plan):
                seq = row[0]
                if seq >> BLOCK_LEVEL != current_block:
                    flush()
                    current_block = seq >> BLOCK_LEVEL
                    if count >= next_progress:
                        progress(count)
                        next_progress = count + PROGRESS_EVERY
                body, leaf = check(row)
                add_line(b'{"body":' + body + b',"entry_hash":"' + row[10].encode() + b'"}\n')
                add_leaf((seq, leaf))
                count += 1
                if first_seq is None:
                    first_seq = seq
                last_seq = seq
            flush()
        with out.stream("proofs.jsonl", compress=zipfile.ZIP_STORED, level=None,
                        sha256=proofs_digest.hexdigest()) as write_proofs, proofs_tmp.open("rb") as fh:
            while chunk := fh.read(1 << 22):
                write_proofs(chunk)
        proofs_tmp.unlink()
        if out.files["proofs.jsonl"]["bytes"] != proofs_size:
            raise ExportError("proofs.jsonl changed on disk while it was copied into the bundle", code="io_error")

        # boundaries and the export's own entry, each with its proof
        lines_b = []
        for role, row in _boundary_rows(plan):
            body, leaf = _Checked()(row)
            extra = f',"tree_size":{size},"inclusion":{json.dumps(proofs.one(row[0], leaf))}'.encode()
            lines_b.append(b'{"role":"' + role.encode() + b'",' + _entry_json(body, row[10], extra)[1:] + b"\n")
        out.put("boundaries.jsonl", b"".join(lines_b))
        export_body = entry.canonical_body()
        export_leaf = leaf_hash(export_body)
        if export_leaf.hex() != entry.entry_hash:
            raise ExportError(f"the export's own entry {entry.seq} does not match its hash: run verify_ledger",
                              code="ledger_not_intact")
        extra = f',"tree_size":{size},"inclusion":{json.dumps(proofs.one(entry.seq, export_leaf))}'.encode()
        out.put("export-entry.json", _entry_json(export_body, entry.entry_hash, extra) + b"\n")

        # checkpoints: the anchor, earlier ones whose trees hold the bundle's lowest entry, consistency between them
        out.put("checkpoint.txt", _published(checkpoint).encode())
        low = min([entry.seq, *(s for _, s in plan.boundaries), *([first_seq] if first_seq is not None else [])])
        earlier = _earlier_checkpoints(checkpoint, low, job.scope.get("since_checkpoint"))
        names = [f"checkpoints/{cp.pk:012d}.txt" for cp in earlier]
        chain = [*zip(names, earlier, strict=True), ("checkpoint.txt", checkpoint)]
        consistency = []
        for (old_name, old), (new_name, new) in itertools.pairwise(chain):
            proof = consistency_proof(old_size=old.tree_size, new_size=new.tree_size)
            if proof.old_root.hex() != old.root_hash or proof.new_root.hex() != new.root_hash:
                raise ExportError(f"checkpoint #{old.pk} or #{new.pk} does not match the stored tree: "
                                  "run verify_ledger", code="ledger_not_intact")
            consistency.append(json.dumps(
                {"from": old_name, "to": new_name, "old_size": old.tree_size, "new_size": new.tree_size,
                 "consistency": [h.hex() for h in proof.path]}, separators=(",", ":")) + "\n")
        for name, cp in zip(names, earlier, strict=True):
            for v in _verified(cp, verifiers):
                signers.setdefault(str(v), []).append(cp)
            out.put(name, _published(cp).encode())
        if earlier:
            out.put("checkpoints/consistency.jsonl", "".join(consistency).encode())
        out.put("keys.txt", _keys_text(signers, key_name()))
        out.put("verify.py", Path(offline_verify.__file__).read_bytes())
        out.put(EVENT_TYPES_FILE, catalogue_json())
        manifest = {
            "format": BUNDLE_FORMAT,
            "origin": key_name(),
            "export_id": job.pk,
            "created_at": format_timestamp(job.created_at),
            "exporter": {"type": entry.actor_type, "id": entry.actor_id},
            "scope": job.scope,
            "completeness": plan.kind,
            "export_entry_seq": entry.seq,
            "checkpoint": {"file": "checkpoint.txt", "tree_size": size, "root_hash": checkpoint.root_hash},
            "checkpoints": names,
            "entries": {"count": count, "first_seq": first_seq, "last_seq": last_seq},
            "subjects": [
                {"type": r.subject[0], "id": r.subject[1], "head_seq": r.head, "first_seq": r.first,
                 "last_seq": r.last, "count": r.count}
                for r in plan.runs
            ] if plan.kind == "subjects" else [],
            "event_types": EVENT_TYPES_FILE,
            "excluded": model_exclusions(job.scope["model"], size_in_scope) if job.scope.get("model") else [],
        }
        out.put("README.txt", _readme(manifest, plan, verify_command("THIS_BUNDLE.zip")).encode())
        manifest["files"] = dict(sorted(out.files.items()))
        out.put("manifest.json", (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    finally:
        out.close()
        with contextlib.suppress(OSError):
            proofs_tmp.unlink()
    return count


def _readme(manifest: dict[str, Any], p: Plan, command: str) -> str:
    scope = offline_verify.scope_text(manifest["scope"])
    entries = manifest["entries"]
    span = "" if entries["first_seq"] is None else f" (seq {entries['first_seq']} to {entries['last_seq']})"
    completeness = {
        "ledger": "COMPLETE for the range: every entry of the ledger in it is here, and verify.py shows it.",
        "subjects": "COMPLETE for each subject: every entry of each subject in the scope is here, and verify.py "
        "shows it.",
        "none": "NOT claimed: the export was filtered by event type; verify.py shows each entry is authentic.",
    }[p.kind]
    excluded = ""
    for item in manifest.get("excluded") or []:
        listed = ", ".join(f"{s['type']}:{s['id']} ({s['entries']:,})" for s in item["subjects"])
        excluded += (f"\nNOT INCLUDED: {item['entries']:,} {item['what']}: {item['why']}.\n"
                     f"  Subjects (entries about the model): {listed}.\n"
                     f"  To have them: {item['how_to_export']}.\n")
    return f"""Audit ledger export #{manifest['export_id']}
=============================

Ledger:     {manifest['origin']}
Exported:   {manifest['created_at']} by {manifest['exporter']['type']}:{manifest['exporter']['id']}
Scope:      {scope}
Entries:    {entries['count']:,}{span}
Anchored:   checkpoint of tree size {manifest['checkpoint']['tree_size']:,}, root {manifest['checkpoint']['root_hash']}
Complete:   {completeness}
{excluded}
This bundle lets you check, without access to our systems, that the entries in
it are exactly those recorded in the ledger, that none was altered, and that
they are covered by checkpoints signed with the ledger's keys.

How to verify
-------------
You need Python 3.9 or later and the `cryptography` package
(`python -m pip install cryptography`). Then, in the directory of this zip:

    unzip THIS_BUNDLE.zip verify.py        # or extract verify.py any other way
    {command}

The --trusted-key, --witness-key and --quorum values above are the trust
anchors as the ledger's operator configured them when this bundle was made.
DO NOT take them from this file or from keys.txt: anyone who forged a bundle
would write their own keys here. Obtain the ledger's verifier keys (with their
validity, "from=" and "until=" tree sizes) and the witnesses' keys from a
channel other than this bundle (the operator's publication, an earlier export
you kept, a regulator's copy, the witnesses themselves), compare them with the
command above and run it with the keys you obtained.

verify.py trusts nothing in the bundle. Without any trust anchor it checks
that the bundle is consistent with itself, says what it checked and that
nothing anchors it, exits with status 3 and does NOT say VERIFIED. It exits
with status 0 only if everything verifies against the anchors you gave;
otherwise it names what failed (status 1; 2 when the file is not a readable
bundle). `--json` prints the result as JSON.

What is in it
-------------
manifest.json        what was exported, by whom, when, and the SHA-256 of every other file
export-entry.json    the ledger's own record of this export (who, scope), with its inclusion proof
entries.jsonl        one entry per line: {{"body": <entry exactly as hashed>, "entry_hash": <hex>}}
proofs.jsonl         one line per entry: its RFC 9162 inclusion proof against checkpoint.txt
boundaries.jsonl     the entries just outside the range, which show nothing is missing at its ends
checkpoint.txt       the signed checkpoint (C2SP signed note, with witness cosignatures) all proofs lead to
checkpoints/         earlier signed checkpoints and the consistency proofs between them
keys.txt             the verifier keys that signed the checkpoints, with their validity (information only)
event-types.json     the catalogue of event types: payload fields, which are personal, subjects, meaning
verify.py            the verifier (one file; same as audit/offline_verify.py in the ledger's code)

Personal data is not in this bundle: where an entry had personal values, its
body holds a commitment (an HMAC) to the value instead, exactly as hashed;
event-types.json says which payload fields are personal.

The format is documented in docs/export-format.md of the ledger's code.
"""


# --- CSV -------------------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "seq", "timestamp", "event_type", "actor_type", "actor_id", "subject_type", "subject_id", "payload",
    "prev_hash", "entry_hash", "request_id", "subject_prev",
)


# A spreadsheet runs a cell starting with one of these as a formula (CSV injection, OWASP). A value that
# starts with "'" gets one more, so that removing one leading "'" always gives the stored value back.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def spreadsheet_safe(value: str) -> str:
    """``value``, with a leading ``'`` when a spreadsheet would run it as a formula (or it starts with ``'``).

    Only for the free-text columns (actor and subject ids, request id) that a user can choose,
    say by naming a model ``=HYPERLINK(...)``; the bundle keeps every value exactly. The stored
    value is the cell without its first character when that is ``'`` (docs/export-format.md)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def write_csv(
    *, job: ExportJob, plan: Plan, entry: Entry, checkpoint: Checkpoint, path: Path, progress: Callable[[int], None]
) -> int:
    """One row per entry; ``payload`` is its canonical JSON as hashed (personal values as commitments).

    Every column of the entry body is there (``subject_prev`` empty for a subject's first entry), so each
    row's ``entry_hash`` can be recomputed (docs/export-format.md, "The CSV")."""
    count = 0
    check = _Checked()
    safe = spreadsheet_safe
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for row in rows(plan):
            check(row)
            seq, ts, et, at, aid, st, sid, pj, ph, sp, eh, rid = row
            # payload is canonical JSON (starts with "{"); seq, timestamp, types and hashes are ours.
            writer.writerow((seq, ts, et, at, safe(aid), st, safe(sid), pj, ph, eh, safe(rid or ""),
                             "" if sp is None else sp))
            count += 1
            if count % PROGRESS_EVERY == 0:
                progress(count)
    return count


# --- the audit report of a model ----------------------------------------------------------------------


def redact(value: Any) -> Any:
    """A payload with every personal-data reference object shown as redacted."""
    if isinstance(value, dict):
        if set(value) == {"pii", "commitment"}:
            return "[personal data redacted]"
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _fmt(moment: datetime | None) -> str:
    return format_timestamp(moment) if moment else ""


def _in_period(start: datetime | None, end: datetime | None, since: str | None, until: str | None) -> bool:
    if until and start and start > parse_timestamp(until):
        return False
    return not (since and end and end < parse_timestamp(since))


def report_context(job: ExportJob, p: Plan, entry: Entry, checkpoint: Checkpoint) -> dict[str, Any]:
    from governance.models import ComplianceViolation, PromotionRequest, RegisteredModel

    scope = job.scope
    model = RegisteredModel.objects.get(name=scope["model"])
    since, until = scope.get("since"), scope.get("until")
    entries: list[dict[str, Any]] = []
    by_subject: dict[tuple[str, str], list[dict[str, Any]]] = {}
    check = _Checked()
    for row in rows(p):
        check(row)
        seq, ts, et, at, aid, st, sid, pj, _ph, _sp, eh, rid = row
        item = {"seq": seq, "timestamp": ts, "event_type": et, "actor": f"{at}:{aid}", "subject": f"{st}:{sid}",
                "payload": json.dumps(redact(json.loads(pj)), ensure_ascii=False, sort_keys=True, indent=1),
                "entry_hash": eh, "request_id": rid}
        entries.append(item)
        by_subject.setdefault((st, sid), []).append(item)

    lineage_by_version: dict[int, list[dict[str, Any]]] = {}
    try:
        from governance.models import Lineage

        for link in Lineage.objects.filter(version__model=model).select_related("dataset").order_by("pk"):
            lineage_by_version.setdefault(link.version_id, []).append({
                "dataset": link.dataset.name, "role": link.role, "source": link.source,
                "level": link.dataset.effective_level, "pii_categories": ", ".join(link.dataset.pii_categories),
                "linked_at": _fmt(link.created_at),
            })
    except ImportError:  # pragma: no cover - the access app is part of the project
        pass
    # MLflow's creator is a user name: shown as the account it belongs to, or redacted.
    from django.contrib.auth import get_user_model

    creators = dict(get_user_model().objects.filter(
        username__in={v.creator for v in model.versions.all() if v.creator}).values_list("username", "pk"))

    def creator(name: str) -> str:
        if not name:
            return ""
        return f"user:{creators[name]}" if name in creators else "[redacted MLflow user]"

    versions = [
        {"version": v.version, "creator": creator(v.creator), "run_id": v.run_id, "artifact_digest": v.artifact_digest,
         "data_classification": v.data_classification or "(not declared)",
         "datasets": v.datasets, "lineage": lineage_by_version.get(v.pk, []),
         "created": _fmt(v.mlflow_created_at), "entries": by_subject.get(("model_version", v.ref), [])}
        for v in model.versions.order_by("version")
    ]
    promotions = []
    requests = (PromotionRequest.objects.filter(version__model=model)
                .select_related("version", "environment").order_by("created_at", "pk"))
    for r in requests:
        if not _in_period(r.created_at, r.finished_at or timezone.now(), since, until):
            continue
        review = getattr(r, "break_glass_review", None) if r.is_break_glass else None
        promotions.append({
            "id": r.pk, "version": r.version.version, "environment": r.environment.name, "state": r.state,
            "strategy": r.strategy, "break_glass": r.is_break_glass, "reason": r.reason,
            "requested_by": f"user:{r.requested_by_id}", "created": _fmt(r.created_at),
            "decided": _fmt(r.decided_at), "deployed": _fmt(r.deployed_at), "finished": _fmt(r.finished_at),
            "evidence_digest": r.evidence_digest, "gates": (r.evidence or {}).get("gates", []),
            "approvals": [
                {"approver": f"user:{a.approver_id}", "decision": a.decision, "group": a.group,
                 "comment": a.comment, "at": _fmt(a.created_at),
                 "current": a.evidence_digest == r.evidence_digest}
                for a in r.approvals.order_by("created_at", "pk")
            ],
            "review": None if review is None else {
                "state": review.state, "due": _fmt(review.due_at), "comment": review.comment,
                "reviewed_by": f"user:{review.reviewed_by_id}" if review.reviewed_by_id else "",
                "reviewed_at": _fmt(review.reviewed_at),
            },
            "entries": by_subject.get(("promotion_request", str(r.pk)), []),
        })
    subject_keys = {f"{t}:{i}" for t, i, _ in scope.get("subjects", [])}
    violations = [
        {"id": v.pk, "kind": v.kind, "subject": f"{v.subject_type}:{v.subject_id}", "summary": v.summary,
         "detected": _fmt(v.detected_at), "reverted": v.reverted,
         "acknowledged_by": f"user:{v.acknowledged_by_id}" if v.acknowledged_by_id else "",
         "acknowledged_at": _fmt(v.acknowledged_at), "acknowledgement": v.acknowledgement}
        for v in ComplianceViolation.objects.order_by("detected_at", "pk")
        if f"{v.subject_type}:{v.subject_id}" in subject_keys
        and _in_period(v.detected_at, v.detected_at, since, until)
    ]
    grants: list[dict[str, Any]] = []
    try:
        from access.models import Grant

        for g in Grant.objects.filter(resource_type="registered_model", resource_id=model.pk).select_related(
            "group"
        ).order_by("created_at", "pk"):
            if not _in_period(g.created_at, g.revoked_at or g.expires_at, since, until):
                continue
            grants.append({
                "id": g.pk, "principal": f"user:{g.user_id}" if g.user_id else f"group:{g.group.name}",  # type: ignore[union-attr]
                "permission": g.permission, "granted_by": f"user:{g.granted_by_id}", "created": _fmt(g.created_at),
                "expires": _fmt(g.expires_at), "revoked": _fmt(g.revoked_at), "justification": g.justification,
            })
    except ImportError:  # pragma: no cover - the access app is part of the project
        pass
    return {
        "job": job, "model": model, "scope": scope, "since": since or "the beginning",
        "until": until or "the export", "generated": format_timestamp(job.created_at),
        "exporter": f"{entry.actor_type}:{entry.actor_id}", "versions": versions, "promotions": promotions,
        "violations": violations, "grants": grants, "entries": entries,
        "model_entries": by_subject.get(("registered_model", model.name), []),
        "checkpoint": checkpoint, "checkpoint_note": _published(checkpoint), "export_entry": entry,
        "completeness": p.kind, "excluded": model_exclusions(model.name, int(scope["ledger_size"])),
        "inclusion": Proofs(checkpoint.tree_size, bytes.fromhex(checkpoint.root_hash)).one(
            entry.seq, bytes.fromhex(entry.entry_hash)),
    }


def write_report(
    *, job: ExportJob, plan: Plan, entry: Entry, checkpoint: Checkpoint, path: Path, progress: Callable[[int], None]
) -> int:
    from django.template.loader import render_to_string

    context = report_context(job, plan, entry, checkpoint)
    path.write_text(render_to_string("audit/report.html", context), encoding="utf-8")
    progress(len(context["entries"]))
    return len(context["entries"])


# --- helpers for callers ---------------------------------------------------------------------------


def summary(job: ExportJob) -> str:
    parts = [f"export #{job.pk} ({job.format}) {job.state}: {job.entries_done:,} entries"]
    if job.file_path:
        parts.append(f"written to {job.file_path} ({job.file_size or 0:,} bytes, sha256 {job.file_sha256})")
    if job.checkpoint_size is not None:
        parts.append(f"anchored to the checkpoint of tree size {job.checkpoint_size:,}")
    return "; ".join(parts)

