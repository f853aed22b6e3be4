"""The plan of an export (which entries, by subject or by range) and the rows it reads, in ``seq``
order, a chunk at a time, each checked against the chain as it is read."""
from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any

from django.db.models import Max, Min

from audit import offline_verify
from audit.canonical import ZERO_HASH, body_bytes, leaf_hash
from audit.export.errors import ExportError
from audit.models import Entry

CHUNK = 4096


PROGRESS_EVERY = 20_000


FIELDS = (
    "seq", "timestamp", "event_type", "actor_type", "actor_id", "subject_type", "subject_id",
    "payload_json", "prev_hash", "subject_prev", "entry_hash", "request_id",
)


Row = tuple[Any, ...]


Progress = Callable[[int, "int | None"], None]


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
        yield from list(qs.filter(seq__gte=start, seq__lt=end).order_by("seq").values_list(*FIELDS))
        start = end


def _keyset(qs: Any, start: int, stop: int, chunk: int) -> Iterator[Row]:
    """The rows of ``qs`` with ``start <= seq < stop`` in seq order, ``chunk`` at a time (sparse selections).

    Each page has exactly one lower and one upper bound on ``seq``: given several,
    SQLite's planner may range-scan the index from the wrong one and every page
    would cost more than the last.
    """
    while start < stop:
        rows = list(qs.filter(seq__gte=start, seq__lt=stop).order_by("seq").values_list(*FIELDS)[:chunk])
        yield from rows
        if len(rows) < chunk:
            return
        start = rows[-1][0] + 1


def rows(p: Plan, *, chunk: int = CHUNK) -> Iterator[Row]:
    """The selected entries' stored fields (``FIELDS``), in ``seq`` order, a chunk at a time."""
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


class Checked:
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
