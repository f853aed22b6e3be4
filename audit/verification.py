"""Full verification of the ledger from its stored fields.

Streams entries in ``seq`` order with keyset pagination (constant memory),
recomputing every entry hash, the hash chain, the per-subject chain and the
Merkle root at every checkpoint's size, and checks every checkpoint's signature
against keys trusted from configuration (never from the database, which is
what an attacker would have edited). Stops at the first problem and names it.
"""
from __future__ import annotations

import contextlib
import queue
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from audit.canonical import ZERO_HASH, body_bytes, leaf_hash
from audit.merkle import CompactRange
from audit.models import Checkpoint, Entry, LedgerHead
from audit.note import CheckpointBody, NoteError, Verifier, open_note
from audit.signing import current_verifier_key, key_lifetimes

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
TRUNCATED = "truncated"


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Failure(Exception):
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


TRUSTED_KEYS_FILENAME = "ledger-trusted-keys.txt"


def trusted_keys_file() -> Path:
    """Verifier keys of rotated-out signing keys, one per line (``rotate_signing_key`` appends to it)."""
    return Path(settings.VAR_DIR) / TRUSTED_KEYS_FILENAME


def _file_keys() -> list[str]:
    try:
        text = trusted_keys_file().read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def trusted_verifiers(extra: list[str] | None = None) -> list[Verifier]:
    # Lines may carry lifetimes (``from=``/``until=``) since h-keys; H3 enforces them, this only lists the keys.
    keys = [current_verifier_key(), *(k.verifier_key for k in key_lifetimes()), *(extra or [])]
    return [Verifier.parse(k) for k in dict.fromkeys(keys)]


def _check_checkpoint(
    cp_id: int, size: int, root_hex: str, note: str, verifiers: list[Verifier], root: bytes
) -> None:
    try:
        opened = open_note(note, verifiers)
        body = CheckpointBody.parse(opened.text)
    except NoteError as exc:
        raise _Failure(size - 1 if size else None, BAD_SIGNATURE, f"checkpoint #{cp_id} (size {size}): {exc}") from None
    if body.origin != settings.LEDGER_ORIGIN:
        raise _Failure(None, BAD_SIGNATURE, f"checkpoint #{cp_id} is for origin {body.origin!r}")
    if body.tree_size != size or body.root_hash.hex() != root_hex:
        raise _Failure(None, CHECKPOINT_MISMATCH, f"checkpoint #{cp_id}: stored size/root differ from its signed note")
    if body.root_hash != root:
        raise _Failure(
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
) -> VerificationResult:
    """Verify the whole ledger (see the module docstring); stops at the first problem.

    ``progress(done, total)`` is called every ``PROGRESS_EVERY`` entries and at the end;
    ``total`` is the sequencer's tree size at the start (a hint for a progress bar, not
    trusted), None if unknown. ``prefetch`` (default: on PostgreSQL outside an atomic
    block) reads the next page on a second connection in the same snapshot.
    """
    with _snapshot_rows(chunk, prefetch) as rows:
        return _verify(rows, extra_keys, progress)


def _verify(
    rows: Iterator[tuple[Any, ...]], extra_keys: list[str] | None, progress: Progress | None
) -> VerificationResult:
    started = time.perf_counter()
    total = LedgerHead.objects.filter(pk=1).values_list("tree_size", flat=True).first() if progress else None
    next_progress = PROGRESS_EVERY
    verifiers = trusted_verifiers(extra_keys)
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
        # Checkpoints of the empty tree.
        while next_cp is not None and next_cp[0] == 0:
            _check_checkpoint(next_cp[1], 0, next_cp[2], next_cp[3], verifiers, tree.root())
            checked_cps += 1
            next_cp = next(checkpoints, None)
        for row in rows:
            seq, ts, et, at, aid, st, sid, pj, ph, sp, eh, rid = row
            if seq < expected:
                raise _Failure(seq, CHANGED, f"entry {seq} is stored outside the sequence 0, 1, 2, ...")
            if seq != expected:
                raise _Failure(expected, MISSING, f"entry {expected} is missing (next stored entry is {seq})")
            body = body_bytes(
                seq=seq, timestamp=ts, event_type=et, actor_type=at, actor_id=aid, subject_type=st,
                subject_id=sid, payload_json=pj, prev_hash=ph, subject_prev=sp, request_id=rid,
            )
            leaf = leaf_hash(body)
            computed = leaf.hex()
            if computed != eh:
                if _hashes_at_other_seq(row):
                    raise _Failure(seq, REORDERED, f"entry {seq} was hashed at another position (reordered)")
                raise _Failure(seq, CHANGED, f"entry {seq} does not match its hash (a field was changed)")
            if ph != prev:
                if ph in recent:
                    raise _Failure(seq, REORDERED, f"entry {seq} links to an earlier entry than {seq - 1}")
                raise _Failure(seq, BROKEN_LINK, f"entry {seq}'s prev_hash is not the hash of entry {seq - 1}")
            key = (st, sid)
            want = subjects.get(key)
            if want is None and len(subjects) >= SUBJECT_CACHE:
                want = _last_subject_seq(st, sid, seq)
            if sp != want:
                raise _Failure(
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
            if next_cp is not None and next_cp[0] == expected:
                root = tree.root()
                while next_cp is not None and next_cp[0] == expected:
                    try:
                        _check_checkpoint(next_cp[1], expected, next_cp[2], next_cp[3], verifiers, root)
                    except _Failure as failure:
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
            raise _Failure(
                expected, TRUNCATED,
                f"checkpoint #{next_cp[1]} covers {next_cp[0]} entries but the ledger has only {expected}: "
                "entries were removed from the tail",
            )
        root = tree.root()
    except _Failure as failure:
        return VerificationResult(
            ok=False, entries=expected, checkpoints=checked_cps, tree_size=expected, root_hash=root.hex(),
            seconds=time.perf_counter() - started, first_bad_seq=failure.seq, reason=failure.reason,
            detail=failure.detail,
        )
    if progress is not None:
        progress(expected, total)
    return VerificationResult(
        ok=True, entries=expected, checkpoints=checked_cps, tree_size=expected, root_hash=root.hex(),
        seconds=time.perf_counter() - started,
    )


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
