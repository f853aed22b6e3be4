"""Scheduled verification of the ledger: incremental every few minutes, full every night.

A full run is ``audit.verification.verify_ledger``. An incremental run resumes
from the last successful run: it restores the Merkle compact range and the chain
head that run saved (``VerificationRun.frontier`` / ``last_hash``), re-checks that
the last verified entry still carries that hash, then checks every newer entry
(hash, chain link, per-subject link) and every newer checkpoint (signature and
root) exactly as the full verifier does. What an incremental run cannot see (an
edit of an entry older than its starting point that keeps the tail hash intact
is impossible without breaking the tail, but a rewritten *stored* frontier is
not) the nightly full run catches, since it trusts nothing stored.

Every run is a ``VerificationRun`` row and a ``ledger.verified`` entry; a failed
run is also a ``compliance.violation`` (kind ``integrity``).

With witnesses configured, every run first asks them for the latest checkpoint they
cosigned for us (``audit.services.witnessing.witness_anchors``): a witness that cosigned more
entries than the ledger holds fails the run ``truncated``, and one whose checkpoint the
verified tree does not extend (checked with a consistency proof against the root the
run recomputed) fails it ``forked``. So deleting checkpoints and the tail of the ledger,
or rewriting and re-signing history, is caught within one verification interval.
"""
from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from audit import verification
from audit.canonical import ZERO_HASH, leaf_hash
from audit.ledger import Actor, Subject, fetch_nodes, record
from audit.merkle import CompactRange, ProofError, consistency_ranges, resolve, root_nodes, verify_consistency
from audit.models import Checkpoint, Entry, VerificationRun
from audit.note import NoteError, Verifier
from audit.services.witnessing import witness_anchors
from audit.signals import integrity_failed

logger = logging.getLogger(__name__)

CHUNK = 5000
# Reason of a stored Merkle node that disagrees with the root recomputed from the entries
# (inclusion and consistency proofs served from it would be wrong).
NODE_MISMATCH = "stored_node_mismatch"
# Reason of a run that could not complete (a database error, a malformed trusted key).
ERROR = "error"
# Reason of a run whose tree does not extend a checkpoint a witness cosigned (audit.verification.FORKED once
# the verifier has it; the same stable string).
FORKED = getattr(verification, "FORKED", "forked")

# Called with the entries done so far (and, by the full verifier, the expected total).
Progress = Callable[..., None]


@dataclass
class _Outcome:
    ok: bool
    tree_size: int
    root_hash: str
    reason: str = ""
    detail: str = ""
    first_bad_seq: int | None = None
    last_hash: str = ""
    frontier: list[list[Any]] | None = None


class _Bad(Exception):
    def __init__(self, seq: int | None, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.seq, self.reason, self.detail = seq, reason, detail


def last_verification() -> VerificationRun | None:
    """The latest finished verification run (for the dashboard), or None if none has finished."""
    return VerificationRun.objects.filter(finished_at__isnull=False).order_by("-finished_at", "-id").first()


def _subject() -> Subject:
    return Subject("ledger", str(settings.LEDGER_ORIGIN)[:300])


def _frontier_of(tree: CompactRange) -> list[list[Any]]:
    return [[level, h.hex()] for level, h in tree.stack]


def _stored_frontier(size: int, root_hex: str) -> list[list[Any]]:
    """The compact range of ``size`` from stored nodes, checked against the verified root."""
    nodes = root_nodes(size)
    stored = fetch_nodes(nodes)
    missing = [n for n in nodes if n not in stored]
    if missing:
        raise _Bad(None, NODE_MISMATCH, f"{len(missing)} Merkle node(s) of tree size {size} are not stored")
    tree = CompactRange.from_nodes(size, stored)
    if tree.root().hex() != root_hex:
        raise _Bad(None, NODE_MISMATCH, f"the stored Merkle nodes of size {size} do not fold to the verified root")
    return _frontier_of(tree)


def _witness_anchors() -> tuple[list[Any], list[str]]:
    """The witnesses' latest cosigned checkpoints for us (none without witnesses)."""
    if not settings.LEDGER_WITNESSES:
        return [], []
    return witness_anchors()


def _stored_size() -> int:
    """Entries stored, from the entries themselves (the head row is as editable as they are)."""
    last = Entry.objects.aggregate(m=Max("seq"))["m"]
    return 0 if last is None else int(last) + 1


def _anchors_truncated(anchors: list[Any]) -> _Outcome | None:
    size = _stored_size()
    over = [a for a in anchors if a.size > size]
    if not over:
        return None
    worst = max(over, key=lambda a: a.size)
    return _Outcome(False, size, "", verification.TRUNCATED,
                    f"{worst.source} cosigned a checkpoint of {worst.size} entries but the ledger has only {size}: "
                    "entries were removed from the tail", size)


def _anchors_extended(anchors: list[Any], size: int, root_hex: str) -> _Outcome | None:
    """Fail ``forked`` unless the verified tree (``size``, ``root_hex``) extends every anchor.

    The proof comes from stored nodes, but a consistency proof cannot be forged: it either
    links the anchor's root to the root recomputed from the entries, or the run fails.
    """
    root = bytes.fromhex(root_hex)
    for anchor in anchors:
        if anchor.size == 0 or anchor.size > size:
            continue
        try:
            proof = resolve(consistency_ranges(anchor.size, size), fetch_nodes) if anchor.size < size else []
        except ProofError:
            proof = []
        if not verify_consistency(anchor.size, size, anchor.root, root, proof):
            return _Outcome(False, size, root_hex, FORKED,
                            f"the ledger does not extend the checkpoint of size {anchor.size} that {anchor.source} "
                            "cosigned: its history was rewritten", None)
    return None


def _full(progress: Progress | None, anchors: list[Any] | None = None) -> _Outcome:
    kwargs: dict[str, Any] = {}
    params = inspect.signature(verification.verify_ledger).parameters
    # verify_ledger grew a progress callback; an older or rewritten one may not have it.
    if progress is not None and "progress" in params:
        kwargs["progress"] = progress
    if anchors and "anchors" in params:
        kwargs["anchors"] = anchors
    result = verification.verify_ledger(**kwargs)
    if not result.ok:
        return _Outcome(False, result.tree_size, result.root_hash, result.reason or "", result.detail or "",
                        result.first_bad_seq)
    size = result.tree_size
    try:
        frontier = _stored_frontier(size, result.root_hash)
    except _Bad as bad:
        return _Outcome(False, size, result.root_hash, bad.reason, bad.detail, None)
    last_hash = ZERO_HASH
    if size:
        last_hash = Entry.objects.values_list("entry_hash", flat=True).get(seq=size - 1)
    return _Outcome(True, size, result.root_hash, last_hash=last_hash, frontier=frontier)


def _chunks(start: int, chunk: int) -> Iterator[list[Entry]]:
    # Model instances, so the hashed body is whatever Entry.canonical_body() says it is today.
    after = start - 1
    while True:
        rows = list(Entry.objects.filter(seq__gt=after).order_by("seq")[:chunk])
        if not rows:
            return
        yield rows
        after = rows[-1].seq


def _subject_heads_before(start: int, rows: list[Entry], known: dict[tuple[str, str], int | None]) -> None:
    """Fill ``known`` with the last seq below ``start`` of every subject in ``rows`` not seen yet (one query)."""
    fresh = {(r.subject_type, r.subject_id) for r in rows} - known.keys()
    if not fresh:
        return
    found = (
        Entry.objects.filter(seq__lt=start, subject_id__in={sid for _, sid in fresh})
        .values_list("subject_type", "subject_id")
        .annotate(last=Max("seq"))
    )
    heads = {(t, i): s for t, i, s in found}
    for key in fresh:
        known[key] = heads.get(key)


def _check_checkpoint(cp_id: int, size: int, root_hex: str, note: str, verifiers: list[Verifier],
                      root: bytes, last_good: int, keys: list[verification.TrustedKey]) -> None:
    """The full verifier's checkpoint check (signature, key lifetime, origin, stored and recomputed root)."""
    try:
        verification.check_checkpoint(cp_id, size, root_hex, note, verifiers, root, keys)
    except verification.Failure as failure:
        if failure.reason == verification.CHECKPOINT_MISMATCH and failure.seq is None:  # as verify_ledger
            raise _Bad(last_good, failure.reason,
                       f"{failure.detail}; the first changed entry is in [{last_good}, {size})") from None
        raise _Bad(failure.seq, failure.reason, failure.detail) from None


def _incremental(base: VerificationRun, progress: Progress | None, chunk: int = CHUNK) -> _Outcome:
    start = base.tree_size
    tree = CompactRange(start, [(int(level), bytes.fromhex(h)) for level, h in base.frontier])
    prev = base.last_hash
    root = tree.root()
    if start:
        stored = Entry.objects.filter(seq=start - 1).values_list("entry_hash", flat=True).first()
        if stored != prev:
            return _Outcome(False, start, root.hex(), verification.CHANGED,
                            f"entry {start - 1} no longer carries the hash verified by run #{base.pk}", start - 1)
    keys = verification.trusted_keys()
    verifiers = list({str(k.verifier): k.verifier for k in keys}.values())
    checkpoints = iter(
        Checkpoint.objects.filter(tree_size__gt=start).order_by("tree_size", "id")
        .values_list("tree_size", "id", "root_hash", "note")
    )
    next_cp = next(checkpoints, None)
    subjects: dict[tuple[str, str], int | None] = {}
    expected = start
    last_good = start
    try:
        for rows in _chunks(start, chunk):
            _subject_heads_before(start, rows, subjects)
            for entry in rows:
                seq, st, sid, ph, sp, eh = (entry.seq, entry.subject_type, entry.subject_id, entry.prev_hash,
                                            entry.subject_prev, entry.entry_hash)
                if seq != expected:
                    raise _Bad(expected, verification.MISSING,
                               f"entry {expected} is missing (next stored entry is {seq})")
                problem = verification.payload_problem(seq, entry.payload_json)
                if problem is not None:  # as the full run: only exact, duplicate-free JSON is hashed
                    raise _Bad(seq, verification.MALFORMED_JSON, problem)
                leaf = leaf_hash(entry.canonical_body())
                if leaf.hex() != eh:
                    raise _Bad(seq, verification.CHANGED, f"entry {seq} does not match its hash (a field was changed)")
                if ph != prev:
                    raise _Bad(seq, verification.BROKEN_LINK,
                               f"entry {seq}'s prev_hash is not the hash of entry {seq - 1}")
                want = subjects.get((st, sid))
                if sp != want:
                    raise _Bad(seq, verification.BROKEN_SUBJECT_LINK,
                               f"entry {seq}'s subject_prev is {sp}, but the previous entry of {st}:{sid} is {want}")
                subjects[(st, sid)] = seq
                prev = eh
                tree.push(leaf)
                expected += 1
                if next_cp is not None and next_cp[0] == expected:
                    root = tree.root()
                    while next_cp is not None and next_cp[0] == expected:
                        _check_checkpoint(next_cp[1], expected, next_cp[2], next_cp[3], verifiers, root, last_good,
                                          keys)
                        next_cp = next(checkpoints, None)
                    last_good = expected
            if progress is not None:
                progress(expected - start)
        if next_cp is not None:
            raise _Bad(expected, verification.TRUNCATED,
                       f"checkpoint #{next_cp[1]} covers {next_cp[0]} entries but the ledger has only {expected}: "
                       "entries were removed from the tail")
    except _Bad as bad:
        return _Outcome(False, expected, tree.root().hex(), bad.reason, bad.detail, bad.seq)
    return _Outcome(True, expected, tree.root().hex(), last_hash=prev, frontier=_frontier_of(tree))


def _base() -> VerificationRun | None:
    """The last successful run an incremental run can resume from."""
    return (
        VerificationRun.objects.filter(ok=True, finished_at__isnull=False)
        .exclude(last_hash="")
        .order_by("-tree_size", "-id")
        .first()
    )


def verification_run(*, mode: str, progress: Progress | None = None) -> VerificationRun:
    """Verify the ledger (``"incremental"`` or ``"full"``), store the run and record ``ledger.verified``.

    An incremental run with nothing to resume from runs in full (and is stored as
    full). A failure also records a ``compliance.violation`` of kind ``integrity``.
    """
    if mode not in VerificationRun.Mode.values:
        raise ValueError(f"mode must be one of {', '.join(VerificationRun.Mode.values)}, not {mode!r}")
    base = _base() if mode == VerificationRun.Mode.INCREMENTAL else None
    if base is None:
        mode = VerificationRun.Mode.FULL
    from_size = base.tree_size if base is not None else 0
    # Committed at once: a worker killed mid-run leaves a visible unfinished row.
    run = VerificationRun.objects.create(mode=mode, started_at=timezone.now(), from_size=from_size)
    started = time.perf_counter()
    try:
        anchors, unanchored = _witness_anchors()
        for message in unanchored:
            logger.warning("ledger verification: %s", message)
        outcome = _anchors_truncated(anchors) or (
            _incremental(base, progress) if base is not None else _full(progress, anchors)
        )
        if outcome.ok and anchors:
            outcome = _anchors_extended(anchors, outcome.tree_size, outcome.root_hash) or outcome
    except NoteError as exc:  # a malformed trusted key in configuration
        outcome = _Outcome(False, from_size, "", ERROR, f"a trusted key is malformed: {exc}")
    duration_ms = int((time.perf_counter() - started) * 1000)
    return _finish(run, outcome, duration_ms)


@transaction.atomic
def _finish(run: VerificationRun, outcome: _Outcome, duration_ms: int) -> VerificationRun:
    run.finished_at = timezone.now()
    run.tree_size = outcome.tree_size
    run.ok = outcome.ok
    run.reason = outcome.reason[:40]
    run.detail = outcome.detail
    run.first_bad_seq = outcome.first_bad_seq
    run.duration_ms = duration_ms
    run.root_hash = outcome.root_hash
    run.last_hash = outcome.last_hash if outcome.ok else ""
    run.frontier = outcome.frontier or []
    run.save()
    record(
        event_type="ledger.verified",
        actor=Actor.system("integrity"),
        subject=_subject(),
        payload={"mode": run.mode, "from_size": run.from_size, "tree_size": run.tree_size, "ok": outcome.ok,
                 "reason": outcome.reason or None, "duration_ms": duration_ms},
    )
    if not outcome.ok:
        logger.error("ledger verification run %s failed: %s at seq %s", run.pk, outcome.reason, outcome.first_bad_seq)
        integrity_failed.send(
            sender=VerificationRun,
            subject=_subject(),
            summary=f"ledger verification failed ({run.mode}): {outcome.reason} at seq {outcome.first_bad_seq}",
            details={"verification_run": run.pk, "mode": run.mode, "reason": outcome.reason,
                     "first_bad_seq": outcome.first_bad_seq, "detail": outcome.detail[:1000]},
        )
    return run
