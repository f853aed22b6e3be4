"""Full verification of the ledger from its stored fields.

Streams entries in ``seq`` order with keyset pagination (constant memory),
recomputing every entry hash, the hash chain, the per-subject chain and the
Merkle root at every checkpoint's size, and checks every checkpoint's signature
against keys trusted from configuration (never from the database, which is
what an attacker would have edited), each only for the tree sizes it was valid
for. Stops at the first problem and names it.

All of that only shows the database is consistent with itself: someone who can
write to it and holds a signing key can rebuild a consistent ledger. Anchors
(``Anchor``: a witness's latest cosigned checkpoint, a checkpoint a reader kept)
come from outside it: the ledger must extend each one (at least its size, the same
root at its size). ``VerificationResult.anchored`` says whether any did.
"""
from __future__ import annotations

import contextlib
import queue
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from audit import signing
from audit.canonical import ZERO_HASH, body_bytes, leaf_hash
from audit.merkle import CompactRange
from audit.models import Checkpoint, Entry, LedgerHead
from audit.note import CheckpointBody, NoteError, Verifier, open_note
from audit.offline_verify import exact_json_problem, is_exact_json_text

CHUNK = 5000
SUBJECT_CACHE = 200_000

# Reasons, stable strings for --json consumers.
CHANGED = "changed_entry"
MISSING = "missing_entry"
REORDERED = "reordered"
BROKEN_LINK = "broken_link"
BROKEN_SUBJECT_LINK = "broken_subject_link"
CHECKPOINT_MISMATCH = "checkpoint_mismatch"
BAD_SIGNATURE = "bad_signature"
TRUNCATED = "truncated"  # also: an anchor is larger than the ledger
FORKED = "forked"  # the ledger's root at an anchor's size is not the anchor's root
RETIRED_KEY = "retired_key"  # a checkpoint larger than its signing key's lifetime
MALFORMED_JSON = "malformed_json"  # a stored payload that is not exactly canonical, duplicate-free JSON


@dataclass(frozen=True)
class Anchor:
    """A (size, root) the ledger must extend, from outside the database; ``source`` says where from."""

    size: int
    root: bytes
    source: str


# A trusted key is a key lifetime: one type and one grammar for both verifiers and the key configuration.
TrustedKey = signing.KeyLifetime


@dataclass
class VerificationResult:
    ok: bool
    entries: int
    checkpoints: int
    tree_size: int
    root_hash: str
    seconds: float
    first_bad_seq: int | None = None
    reason: str | None = None
    detail: str | None = None
    # Whether an anchor from outside the database (a witness, a kept checkpoint) was checked: without
    # one, ``ok`` shows only that the database is consistent with itself.
    anchored: bool = False
    anchors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Failure(Exception):
    def __init__(self, seq: int | None, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.seq, self.reason, self.detail = seq, reason, detail


_FIELDS = (
    "seq",
    "timestamp",
    "event_type",
    "actor_type",
    "actor_id",
    "subject_type",
    "subject_id",
    "payload_json",
    "prev_hash",
    "subject_prev",
    "entry_hash",
    "request_id",
)


def _entries(chunk: int) -> Iterator[tuple[Any, ...]]:
    # No lower bound on the first page: a row inserted with a negative seq must be seen, not skipped.
    entries = Entry.objects.order_by("seq").values_list(*_FIELDS)
    after: int | None = None
    while True:
        page = entries if after is None else entries.filter(seq__gt=after)
        rows = list(page[:chunk])
        if not rows:
            return
        yield from rows
        after = rows[-1][0]


_COLUMNS = ", ".join(_FIELDS)
_FIRST_PAGE = f"SELECT {_COLUMNS} FROM audit_entry ORDER BY seq LIMIT %s"
_NEXT_PAGE = f"SELECT {_COLUMNS} FROM audit_entry WHERE seq > %s ORDER BY seq LIMIT %s"
_SNAPSHOT_ID = re.compile(r"[0-9A-Fa-f-]{1,64}")
_DONE = object()


class _Prefetched:
    """Entry pages read by a second connection, one page ahead of the hashing (PostgreSQL only).

    Both connections read the same snapshot: the caller's transaction is REPEATABLE READ
    and exports it (``pg_export_snapshot``), the reader imports it. So the entries, the
    checkpoints and every lookup the verifier makes see one state of the ledger, however
    long verification takes and whatever is written meanwhile. Hashing releases the GIL
    only partly; the gain is the database round trip and row decoding overlapping it.
    """

    def __init__(self, snapshot: str, chunk: int) -> None:
        if not _SNAPSHOT_ID.fullmatch(snapshot):
            raise ValueError(f"unexpected snapshot id {snapshot!r}")
        self.snapshot = snapshot
        self.chunk = chunk
        self.pages: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="verify-prefetch", daemon=True)

    def __enter__(self) -> Iterator[tuple[Any, ...]]:
        self.thread.start()
        return self._rows()

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        while self.thread.is_alive():  # unblock a reader waiting to hand over a page
            with contextlib.suppress(queue.Empty):
                self.pages.get(timeout=0.05)
        self.thread.join()

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.pages.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        from django.db import connection as own  # this thread's own connection

        try:
            with transaction.atomic(), own.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                cursor.execute(f"SET TRANSACTION SNAPSHOT '{self.snapshot}'")
                cursor.execute(_FIRST_PAGE, [self.chunk])
                while not self.stop.is_set():
                    rows = cursor.fetchall()
                    if not rows or not self._put(rows):
                        break
                    cursor.execute(_NEXT_PAGE, [rows[-1][0], self.chunk])
            self._put(_DONE)
        except BaseException as exc:  # handed to the verifying thread, which raises it
            self._put(exc)
        finally:
            own.close()

    def _rows(self) -> Iterator[tuple[Any, ...]]:
        while True:
            item = self.pages.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield from item


@contextlib.contextmanager
def _snapshot_rows(chunk: int, prefetch: bool | None) -> Iterator[Iterator[tuple[Any, ...]]]:
    """The entries in seq order, all reads of the verification in one snapshot where the database allows."""
    if prefetch is None:
        prefetch = connection.vendor == "postgresql" and not connection.in_atomic_block
    if not prefetch:
        # Inside the caller's transaction (tests, or a caller that wants its own isolation) or on SQLite:
        # pages on this connection.
        yield _entries(chunk)
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute("SELECT pg_export_snapshot()")
        snapshot = cursor.fetchone()[0]
        with _Prefetched(snapshot, chunk) as rows:
            yield rows


def _checkpoints(chunk: int = 1000) -> Iterator[tuple[int, int, str, str]]:
    last: tuple[int, int] = (-1, -1)
    while True:
        rows = list(
            Checkpoint.objects.filter(tree_size__gte=last[0])
            .exclude(tree_size=last[0], id__lte=last[1])
            .order_by("tree_size", "id")
            .values_list("tree_size", "id", "root_hash", "note")[:chunk]
        )
        if not rows:
            return
        yield from rows
        last = (rows[-1][0], rows[-1][1])


def configured_keys() -> list[TrustedKey]:
    """The keys checkpoints may be signed with, each with its lifetime, from configuration only."""
    return signing.key_lifetimes()


def trusted_keys(extra: Sequence[str] | None = None, trusted: Sequence[TrustedKey] | None = None) -> list[TrustedKey]:
    """``trusted`` (default: ``configured_keys()``) plus the trusted-key lines ``extra``; NoteError if malformed."""
    keys = list(configured_keys() if trusted is None else trusted)
    return keys + signing.parse_lifetimes(list(extra or []), "--trusted-key")


def trusted_verifiers(extra: list[str] | None = None) -> list[Verifier]:
    """Every trusted key, whatever its lifetime (for callers that only open notes)."""
    keys = trusted_keys(extra)
    return list({str(v): v for v in (k.verifier for k in keys)}.values())


def _validity_problem(cp_id: int, size: int, signed_by: list[Verifier], keys: Sequence[TrustedKey]) -> Failure | None:
    """A failure when no key that signed checkpoint ``cp_id`` (of tree ``size``) was valid for that size."""
    lines = [k for k in keys if any(str(k.verifier) == str(v) for v in signed_by)]
    if any(k.allows(size) for k in lines):
        return None
    retired = [k for k in lines if k.valid_until is not None and k.valid_until < size]
    if retired:
        return Failure(
            size - 1 if size else None, RETIRED_KEY,
            f"checkpoint #{cp_id} (size {size}) is signed only by "
            + ", ".join(f"{k.verifier_key} (retired: until={k.valid_until})" for k in retired)
            + ": a key retired before this size cannot vouch for it (a history rewritten with an old key)")
    return Failure(
        size - 1 if size else None, BAD_SIGNATURE,
        f"checkpoint #{cp_id} (size {size}) is signed only by key(s) not valid for that size: "
        + ", ".join(f"{k.verifier_key} (from={k.valid_from})" for k in lines))


def open_checkpoint(note: str, keys: Sequence[TrustedKey], label: str = "checkpoint") -> Anchor:
    """A signed checkpoint note verified with ``keys`` (each for its lifetime) and our origin, as an Anchor.

    Raises NoteError naming what is wrong (for a known checkpoint a reader kept, ``--known-checkpoint``).
    """
    verifiers = list({str(k.verifier): k.verifier for k in keys}.values())
    opened = open_note(note, verifiers)
    body = CheckpointBody.parse(opened.text)
    if body.origin != settings.LEDGER_ORIGIN:
        raise NoteError(f"{label} is for origin {body.origin!r}, not {settings.LEDGER_ORIGIN!r}")
    problem = _validity_problem(0, body.tree_size, opened.verified_by, keys)
    if problem is not None:
        raise NoteError(f"{label}: {problem.detail}")
    return Anchor(size=body.tree_size, root=body.root_hash, source=label)


def check_checkpoint(
    cp_id: int, size: int, root_hex: str, note: str, verifiers: list[Verifier], root: bytes,
    keys: Sequence[TrustedKey] = (),
) -> None:
    try:
        opened = open_note(note, verifiers)
        body = CheckpointBody.parse(opened.text)
    except NoteError as exc:
        raise Failure(size - 1 if size else None, BAD_SIGNATURE, f"checkpoint #{cp_id} (size {size}): {exc}") from None
    if keys:
        problem = _validity_problem(cp_id, body.tree_size, opened.verified_by, keys)
        if problem is not None:
            raise problem
    if body.origin != settings.LEDGER_ORIGIN:
        raise Failure(None, BAD_SIGNATURE, f"checkpoint #{cp_id} is for origin {body.origin!r}")
    if body.tree_size != size or body.root_hash.hex() != root_hex:
        raise Failure(None, CHECKPOINT_MISMATCH, f"checkpoint #{cp_id}: stored size/root differ from its signed note")
    if body.root_hash != root:
        raise Failure(
            None,
            CHECKPOINT_MISMATCH,
            f"checkpoint #{cp_id} signed root for size {size} differs from the root recomputed from the entries",
        )


Progress = Callable[[int, "int | None"], None]
PROGRESS_EVERY = 20_000


def verify_ledger(
    *,
    extra_keys: list[str] | None = None,
    progress: Progress | None = None,
    chunk: int = CHUNK,
    prefetch: bool | None = None,
    anchors: Sequence[Anchor] = (),
    lenient: bool = False,
    trusted: list[TrustedKey] | None = None,
) -> VerificationResult:
    """Verify the whole ledger (see the module docstring); stops at the first problem.

    ``progress(done, total)`` is called every ``PROGRESS_EVERY`` entries and at the end;
    ``total`` is the sequencer's tree size at the start (a hint for a progress bar, not
    trusted), None if unknown. ``prefetch`` (default: on PostgreSQL outside an atomic
    block) reads the next page on a second connection in the same snapshot.

    Keys: ``trusted`` (default: ``configured_keys()``) plus ``extra_keys`` (trusted-key lines);
    a checkpoint must be signed by one valid for its size (else ``retired_key``/``bad_signature``).
    ``anchors``: the ledger must hold at least each one's size (else ``truncated``) with its root
    at that size (else ``forked``); ``anchored`` is True when there was at least one and all held.
    A stored payload that is not exactly canonical, duplicate-free JSON is ``malformed_json``,
    or a warning with ``lenient``. Raises NoteError when a key line is malformed.
    """
    keys = trusted_keys(extra_keys, trusted)
    with _snapshot_rows(chunk, prefetch) as rows:
        return _verify(rows, keys, progress, anchors, lenient)


def payload_problem(seq: int, payload_json: str) -> str | None:
    if payload_json[:1] == "{" and is_exact_json_text(payload_json):
        return None
    problem = exact_json_problem(payload_json.encode("utf-8", "surrogatepass"), "payload")
    if problem is None and payload_json[:1] != "{":
        problem = "payload: not a JSON object"
    return None if problem is None else f"entry {seq}: {problem}"


def _verify(
    rows: Iterator[tuple[Any, ...]], keys: list[TrustedKey], progress: Progress | None,
    anchors: Sequence[Anchor] = (), lenient: bool = False,
) -> VerificationResult:
    started = time.perf_counter()
    total = LedgerHead.objects.filter(pk=1).values_list("tree_size", flat=True).first() if progress else None
    next_progress = PROGRESS_EVERY
    verifiers = list({str(k.verifier): k.verifier for k in keys}.values())
    pending = sorted(anchors, key=lambda a: a.size)
    next_anchor = 0
    warnings: list[str] = []
    tree = CompactRange()
    expected = 0
    prev = ZERO_HASH
    subjects: OrderedDict[tuple[str, str], int] = OrderedDict()
    recent: deque[str] = deque(maxlen=8)
    checkpoints = _checkpoints()
    next_cp = next(checkpoints, None)
    checked_cps = 0
    last_good_cp_size = 0
    root = tree.root()
    try:
        # Checkpoints and anchors of the empty tree.
        while next_cp is not None and next_cp[0] == 0:
            check_checkpoint(next_cp[1], 0, next_cp[2], next_cp[3], verifiers, tree.root(), keys)
            checked_cps += 1
            next_cp = next(checkpoints, None)
        next_anchor = _check_anchors(pending, next_anchor, 0, tree.root(), 0)
        for row in rows:
            seq, ts, et, at, aid, st, sid, pj, ph, sp, eh, rid = row
            if seq < expected:
                raise Failure(seq, CHANGED, f"entry {seq} is stored outside the sequence 0, 1, 2, ...")
            if seq != expected:
                raise Failure(expected, MISSING, f"entry {expected} is missing (next stored entry is {seq})")
            problem = payload_problem(seq, pj)
            if problem is not None:
                if not lenient:
                    raise Failure(seq, MALFORMED_JSON, problem)
                warnings.append(problem)
            try:
                body = body_bytes(
                    seq=seq, timestamp=ts, event_type=et, actor_type=at, actor_id=aid, subject_type=st,
                    subject_id=sid, payload_json=pj, prev_hash=ph, subject_prev=sp, request_id=rid,
                )
            except UnicodeEncodeError:
                raise Failure(
                    seq, MALFORMED_JSON, f"entry {seq}: a field holds a lone surrogate (not Unicode)") from None
            leaf = leaf_hash(body)
            computed = leaf.hex()
            if computed != eh:
                if _hashes_at_other_seq(row):
                    raise Failure(seq, REORDERED, f"entry {seq} was hashed at another position (reordered)")
                raise Failure(seq, CHANGED, f"entry {seq} does not match its hash (a field was changed)")
            if ph != prev:
                if ph in recent:
                    raise Failure(seq, REORDERED, f"entry {seq} links to an earlier entry than {seq - 1}")
                raise Failure(seq, BROKEN_LINK, f"entry {seq}'s prev_hash is not the hash of entry {seq - 1}")
            key = (st, sid)
            want = subjects.get(key)
            if want is None and len(subjects) >= SUBJECT_CACHE:
                want = _last_subject_seq(st, sid, seq)
            if sp != want:
                raise Failure(
                    seq, BROKEN_SUBJECT_LINK,
                    f"entry {seq}'s subject_prev is {sp}, but the previous entry of {st}:{sid} is {want}",
                )
            subjects[key] = seq
            subjects.move_to_end(key)
            if len(subjects) > SUBJECT_CACHE:
                subjects.popitem(last=False)
            recent.append(prev)
            prev = computed
            tree.push(leaf)
            expected += 1
            if next_anchor < len(pending) and pending[next_anchor].size == expected:
                next_anchor = _check_anchors(pending, next_anchor, expected, tree.root(), last_good_cp_size)
            if next_cp is not None and next_cp[0] == expected:
                root = tree.root()
                while next_cp is not None and next_cp[0] == expected:
                    try:
                        check_checkpoint(next_cp[1], expected, next_cp[2], next_cp[3], verifiers, root, keys)
                    except Failure as failure:
                        if failure.reason == CHECKPOINT_MISMATCH and failure.seq is None:
                            failure.seq = last_good_cp_size
                            failure.detail += f"; the first changed entry is in [{last_good_cp_size}, {expected})"
                        raise
                    checked_cps += 1
                    next_cp = next(checkpoints, None)
                last_good_cp_size = expected
            if progress is not None and expected >= next_progress:
                progress(expected, total)
                next_progress += PROGRESS_EVERY
        if next_cp is not None:
            raise Failure(
                expected, TRUNCATED,
                f"checkpoint #{next_cp[1]} covers {next_cp[0]} entries but the ledger has only {expected}: "
                "entries were removed from the tail",
            )
        if next_anchor < len(pending):
            anchor = pending[-1]
            raise Failure(
                expected, TRUNCATED,
                f"{anchor.source} saw a tree of {anchor.size} entries but the ledger has only {expected}: "
                "entries (and their checkpoints) were removed from the tail",
            )
        root = tree.root()
    except Failure as failure:
        return VerificationResult(
            ok=False, entries=expected, checkpoints=checked_cps, tree_size=expected, root_hash=root.hex(),
            seconds=time.perf_counter() - started, first_bad_seq=failure.seq, reason=failure.reason,
            detail=failure.detail, warnings=warnings,
        )
    if progress is not None:
        progress(expected, total)
    return VerificationResult(
        ok=True, entries=expected, checkpoints=checked_cps, tree_size=expected, root_hash=root.hex(),
        seconds=time.perf_counter() - started, anchored=bool(pending),
        anchors=[f"{a.source}: tree size {a.size}, root {a.root.hex()}" for a in pending], warnings=warnings,
    )


def _check_anchors(pending: list[Anchor], index: int, size: int, root: bytes, last_good: int) -> int:
    """Check every anchor of tree ``size`` (pending[index:] sorted by size) against ``root``; the next index."""
    while index < len(pending) and pending[index].size == size:
        anchor = pending[index]
        if anchor.root != root:
            raise Failure(
                last_good if size else None, FORKED,
                f"{anchor.source} saw root {anchor.root.hex()} at tree size {size}, the ledger's entries give "
                f"{root.hex()}: the history was rewritten (the first changed entry is in [{last_good}, {size}))",
            )
        index += 1
    return index


def _hashes_at_other_seq(row: tuple[Any, ...]) -> bool:
    """Whether the row's stored hash matches its fields at a nearby seq: it was moved, not edited."""
    seq, ts, et, at, aid, st, sid, pj, ph, sp, eh, rid = row
    for other in (seq - 2, seq - 1, seq + 1, seq + 2):
        if other < 0:
            continue
        body = body_bytes(
            seq=other, timestamp=ts, event_type=et, actor_type=at, actor_id=aid, subject_type=st,
            subject_id=sid, payload_json=pj, prev_hash=ph, subject_prev=sp, request_id=rid,
        )
        if leaf_hash(body).hex() == eh:
            return True
    return False


def _last_subject_seq(subject_type: str, subject_id: str, before: int) -> int | None:
    return (
        Entry.objects.filter(subject_type=subject_type, subject_id=subject_id, seq__lt=before)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
