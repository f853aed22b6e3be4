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
import hashlib
import itertools
import json
import json.encoder
import multiprocessing
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from audit import signing
from audit.canonical import ZERO_HASH, body_bytes, leaf_hash
from audit.merkle import CompactRange
from audit.models import Checkpoint, Entry, LedgerHead
from audit.note import CheckpointBody, NoteError, Verifier, open_note
from audit.offline_verify import _fast_encode, _fast_scan, exact_json_problem, is_exact_json_text

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
_COLUMNS = ", ".join(_FIELDS)
_FIRST_PAGE = f"SELECT {_COLUMNS} FROM audit_entry ORDER BY seq LIMIT %s"
_NEXT_PAGE = f"SELECT {_COLUMNS} FROM audit_entry WHERE seq > %s ORDER BY seq LIMIT %s"
_TAIL_PAGE = f"SELECT {_COLUMNS} FROM audit_entry WHERE seq >= %s ORDER BY seq LIMIT %s"
_HEAD_PAGE = f"SELECT {_COLUMNS} FROM audit_entry WHERE seq < %s ORDER BY seq LIMIT %s"
_FROM_PAGE = f"SELECT {_COLUMNS} FROM audit_entry WHERE seq >= %s AND seq < %s ORDER BY seq LIMIT %s"
_NEXT_RANGE_PAGE = f"SELECT {_COLUMNS} FROM audit_entry WHERE seq > %s AND seq < %s ORDER BY seq LIMIT %s"


def _entries(chunk: int, start: int | None = None, end: int | None = None, db: Any = None) -> Iterator[tuple[Any, ...]]:
    """Rows with ``start <= seq < end`` in seq order, as tuples, in pages of ``chunk`` (``db``: a connection).

    The ORM's row objects cost more than the checks. Without ``start`` no lower bound: a row inserted
    with a negative seq must be seen, not skipped.
    """
    db = db or connection
    with db.cursor() as wrapper:
        execute: Callable[[str, list[int]], Any] = wrapper.execute
        if db.vendor == "postgresql":
            # The binary format decodes the integers with less work; text columns are the same str either way.
            raw_cursor = wrapper.cursor

            def execute(sql: str, params: list[int]) -> Any:
                return raw_cursor.execute(sql, params, binary=True)

        if end is None:
            execute(_FIRST_PAGE if start is None else _TAIL_PAGE, [chunk] if start is None else [start, chunk])
        elif start is None:
            execute(_HEAD_PAGE, [end, chunk])
        else:
            execute(_FROM_PAGE, [start, end, chunk])
        while rows := wrapper.fetchall():
            yield from rows
            if end is None:
                execute(_NEXT_PAGE, [rows[-1][0], chunk])
            else:
                execute(_NEXT_RANGE_PAGE, [rows[-1][0], end, chunk])


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
    jobs: int = 1,
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

    ``jobs=2`` (PostgreSQL, outside an atomic block, a ledger of at least ``2 * PAGE`` entries): a
    second process checks the later half in the same snapshot while this one checks the first half;
    the result is the same as with one (any doubt, any failure in the second half: verified again
    here in one process). The second process is forked: not for a process that runs other threads.
    """
    keys = trusted_keys(extra_keys, trusted)
    if jobs > 1 and connection.vendor == "postgresql" and not connection.in_atomic_block:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SELECT pg_export_snapshot()")
            snapshot = cursor.fetchone()[0]
            if not _SNAPSHOT_ID.fullmatch(snapshot):
                raise ValueError(f"unexpected snapshot id {snapshot!r}")
            size = LedgerHead.objects.filter(pk=1).values_list("tree_size", flat=True).first() or 0
            start = size // 2 // PAGE * PAGE  # a hint: the halves are checked by seq, whatever the size
            if start >= PAGE:
                second = _Second(snapshot, start, chunk, lenient)
                try:
                    return _verify(_entries(chunk, end=start), keys, progress, anchors, lenient, second=second)
                except _Fallback:
                    pass
                finally:
                    second.close()
            return _verify(_entries(chunk), keys, progress, anchors, lenient)
    with _snapshot_rows(chunk, prefetch) as rows:
        return _verify(rows, keys, progress, anchors, lenient)


def payload_problem(seq: int, payload_json: str) -> str | None:
    if payload_json[:1] == "{" and is_exact_json_text(payload_json):
        return None
    problem = exact_json_problem(payload_json.encode("utf-8", "surrogatepass"), "payload")
    if problem is None and payload_json[:1] != "{":
        problem = "payload: not a JSON object"
    return None if problem is None else f"entry {seq}: {problem}"


_quote = json.encoder.encode_basestring  # JSONEncoder(ensure_ascii=False).encode of a str, without its wrapper
# The body of ``body_bytes`` as one format: the same bytes for the same columns (a test compares them).
_BODY = (
    '{"actor":{"id":%s,"type":%s},"event_type":%s,"payload":%s,"prev_hash":"%s",'
    '%s"seq":%d,"subject":{"id":%s,"type":%s},"subject_prev":%s,"timestamp":%s}'
)
_PLAIN_BODY = (
    '{"actor":{"id":"%s","type":"%s"},"event_type":"%s","payload":%s,"prev_hash":"%s",'
    '%s"seq":%d,"subject":{"id":"%s","type":"%s"},"subject_prev":%s,"timestamp":"%s"}'
)
_ESCAPED = re.compile(r'["\\\x00-\x1f]').search  # a character encode_basestring escapes
_ESCAPED_BYTES = b'"\\' + bytes(range(0x20))  # the same characters' UTF-8 bytes
_LEAF_BODY = "\x00" + _PLAIN_BODY  # a leaf hash's input: RFC 9162's leaf prefix, then the body
PAGE = 4096  # rows checked together by ``_Checker.page``
_MEMO = 1 << 16  # payloads kept as proven canonical before the memo is emptied


class _Checker:
    """The per-entry checks of ``_verify``, in their order, and what they carry from entry to entry.

    Three paths give the same verdict (a test runs them over a corpus of damaged ledgers):
    ``careful`` checks one row exactly as specified (``payload_problem``, ``body_bytes``, ...);
    ``row`` takes a row whose every check holds by cheaper means and hands any other to ``careful``;
    ``page`` takes a whole page whose every check holds, column by column, or hands it to ``row``.
    """

    def __init__(self, lenient: bool, careful: bool = False) -> None:
        self.lenient = lenient
        self.careful_only = careful
        self.warnings: list[str] = []
        self.expected = 0  # the seq the next row must have
        self.prev = ZERO_HASH  # the hash the next row must link to
        self.subjects: dict[tuple[str, str], int] = {}
        # Whether ``subjects`` holds every subject seen so far (until it is first emptied): only then is a
        # subject missing from it one without an earlier entry; after that a miss is asked of the database.
        self.complete = True
        self.recent: deque[str] = deque(maxlen=8)
        self.proven: set[str] = set()
        # Checking a later range in a second process: the first entry of each subject in the range is
        # taken as it is and listed (key, seq, subject_prev) for the first process to check.
        self.deferred: list[tuple[tuple[str, str], int, int | None]] | None = None

    def subject_want(self, key: tuple[str, str], seq: int) -> int | None:
        """The seq of the subject's previous entry: from the cache, else from the database (same snapshot)."""
        want = self.subjects.get(key)
        if want is None and not self.complete:
            want = _last_subject_seq(key[0], key[1], seq)
        return want

    def trim(self) -> None:
        if len(self.subjects) > SUBJECT_CACHE:
            # Emptied rather than evicted one by one: a miss is then asked of the database, so the cache
            # only decides how often that happens, never a verdict.
            self.subjects.clear()
            self.complete = False
        if len(self.proven) > _MEMO:
            self.proven.clear()

    def careful(self, row: tuple[Any, ...]) -> bytes:
        """Check one row against the entry before it; its leaf hash, or Failure."""
        seq, ts, et, at, aid, st, sid, pj, ph, sp, eh, rid = row
        expected, prev = self.expected, self.prev
        if seq < expected:
            raise Failure(seq, CHANGED, f"entry {seq} is stored outside the sequence 0, 1, 2, ...")
        if seq != expected:
            raise Failure(expected, MISSING, f"entry {expected} is missing (next stored entry is {seq})")
        problem = payload_problem(seq, pj)
        if problem is not None:
            if not self.lenient:
                raise Failure(seq, MALFORMED_JSON, problem)
            self.warnings.append(problem)
        try:
            body = body_bytes(
                seq=seq, timestamp=ts, event_type=et, actor_type=at, actor_id=aid, subject_type=st,
                subject_id=sid, payload_json=pj, prev_hash=ph, subject_prev=sp, request_id=rid,
            )
        except UnicodeEncodeError:
            raise Failure(seq, MALFORMED_JSON, f"entry {seq}: a field holds a lone surrogate (not Unicode)") from None
        leaf = leaf_hash(body)
        if leaf.hex() != eh:
            if _hashes_at_other_seq(row):
                raise Failure(seq, REORDERED, f"entry {seq} was hashed at another position (reordered)")
            raise Failure(seq, CHANGED, f"entry {seq} does not match its hash (a field was changed)")
        if ph != prev:
            if ph in self.recent:
                raise Failure(seq, REORDERED, f"entry {seq} links to an earlier entry than {seq - 1}")
            raise Failure(seq, BROKEN_LINK, f"entry {seq}'s prev_hash is not the hash of entry {seq - 1}")
        key = (st, sid)
        if self.deferred is not None and key not in self.subjects:
            self.deferred.append((key, seq, sp))
            want = sp
        else:
            want = self.subject_want(key, seq)
        if sp != want:
            raise Failure(
                seq, BROKEN_SUBJECT_LINK,
                f"entry {seq}'s subject_prev is {sp}, but the previous entry of {st}:{sid} is {want}",
            )
        self.subjects[key] = seq
        self._advance(eh)
        return leaf

    def _advance(self, entry_hash: str) -> None:
        self.recent.append(self.prev)
        self.prev = entry_hash
        self.expected += 1

    def row(self, row: tuple[Any, ...]) -> bytes:
        """``careful``'s verdict on one row, by a cheaper path when every check holds."""
        seq, ts, et, at, aid, st, sid, pj, ph, sp, eh, rid = row
        if (not self.careful_only and seq == self.expected and ph == self.prev
                and (pj in self.proven or (pj[:1] == "{" and is_exact_json_text(pj)))):
            try:
                body = (_BODY % (
                    _quote(aid), _quote(at), _quote(et), pj, ph,
                    "" if rid is None else f'"request_id":{_quote(rid)},', seq,
                    _quote(sid), _quote(st), "null" if sp is None else int(sp), _quote(ts),
                )).encode("utf-8")
            except (UnicodeEncodeError, TypeError, ValueError):
                return self.careful(row)
            digest = hashlib.sha256(b"\x00" + body).digest()
            key = (st, sid)
            if digest.hex() == eh and sp == self.subjects.get(key) and (
                    sp is not None or (self.complete and self.deferred is None)):
                self.subjects[key] = seq
                self.proven.add(pj)
                self._advance(eh)
                return digest
        return self.careful(row)

    def page(self, rows: list[tuple[Any, ...]]) -> list[bytes]:
        """The leaf hashes of ``rows`` (consecutive entries), or Failure at the first bad one.

        Column by column: seq in order, prev_hash links, every payload shown exactly canonical at
        once (one C scan of them all as an array; each payload must be the C encoder's own text of
        its parsed value, which holds only for exactly canonical, duplicate-free JSON), bodies
        formatted and hashed in one comprehension. Anything short of all of that holding goes row by
        row from the first row it could concern.
        """
        n = len(rows)
        leaves = None if self.careful_only else self._page_leaves(rows)
        if leaves is None:
            return [self.row(row) for row in rows]
        subjects, get, complete, deferred = self.subjects, self.subjects.get, self.complete, self.deferred
        done = 0
        for seq, _, _, _, _, st, sid, _, _, sp, _, _ in rows:
            key = (st, sid)
            want = get(key)
            if sp != want or want is None:
                if want is None and deferred is not None:
                    deferred.append((key, seq, sp))
                elif sp != want or not complete:
                    break
            subjects[key] = seq
            done += 1
        if done:
            recent = self.recent
            recent.append(self.prev)
            recent.extend(row[10] for row in rows[max(0, done - 8) : done - 1])
            self.prev = rows[done - 1][10]
            self.expected += done
        if done < n:
            leaves[done:] = [self.row(row) for row in rows[done:]]
        return leaves

    def _page_leaves(self, rows: list[tuple[Any, ...]]) -> list[bytes] | None:
        """The leaf hashes when every check but the subject links holds for every row, else None."""
        n = len(rows)
        columns = list(zip(*rows, strict=True))
        seqs, payloads, prevs, hashes = columns[0], columns[7], columns[8], columns[10]
        if seqs != tuple(range(self.expected, self.expected + n)) or prevs != (self.prev, *hashes[:-1]):
            return None
        text = "[" + ",".join(payloads) + "]"
        if _fast_encode is None or (not text.isascii() and max(text) >= "\ue000"):
            return None
        try:
            values, end = _fast_scan(text, 0)
            if end != len(text) or len(values) != n:
                return None
            join, encode = "".join, _fast_encode
            if tuple([join(encode(v, 0)) if type(v) is dict else "" for v in values]) != payloads:
                return None
            # Field values with nothing to escape are their own JSON string's content (encode_basestring
            # escapes only '"', '\\' and controls below 0x20): no such byte in their UTF-8 shows it (every
            # byte of a multi-byte character is >= 0x80), one C pass over them all.
            fields = join([join(column) for column in columns[1:7]] + list(filter(None, columns[11])))
            raw = fields.encode("utf-8", "surrogatepass")
            if len(raw.translate(None, _ESCAPED_BYTES)) != len(raw):
                return None
            sha256, body = hashlib.sha256, _LEAF_BODY
            leaves = [
                sha256((body % (
                    aid, at, et, pj, ph, "" if rid is None else f'"request_id":"{rid}",',
                    seq, sid, st, "null" if sp is None else int(sp), ts,
                )).encode("utf-8")).digest()
                for seq, ts, et, at, aid, st, sid, pj, ph, sp, _, rid in rows
            ]
        except Exception:  # not JSON, an unusual number, a lone surrogate, too deep...: row by row decides
            return None
        if list(map(bytes.hex, leaves)) != list(hashes):
            return None
        return leaves


def _verify(
    rows: Iterable[tuple[Any, ...]], keys: list[TrustedKey], progress: Progress | None,
    anchors: Sequence[Anchor] = (), lenient: bool = False, careful: bool = False, second: _Second | None = None,
) -> VerificationResult:
    """The checks of ``verify_ledger`` over ``rows``; ``careful``: every row by ``_Checker.careful`` (tests).

    ``second``: ``rows`` end before its range, whose rows a second process checked; its leaves follow
    ``rows`` through the same checkpoint and anchor checks. Raises ``_Fallback`` when it cannot vouch for them.
    """
    started = time.perf_counter()
    total = LedgerHead.objects.filter(pk=1).values_list("tree_size", flat=True).first() if progress else None
    next_progress = PROGRESS_EVERY
    verifiers = list({str(k.verifier): k.verifier for k in keys}.values())
    pending = sorted(anchors, key=lambda a: a.size)
    next_anchor = 0
    tree = CompactRange()
    checker = _Checker(lenient, careful)
    check_page = checker.page if not careful else (lambda page: [checker.careful(row) for row in page])
    checkpoints = _checkpoints()
    next_cp = next(checkpoints, None)
    checked_cps = 0
    last_good_cp_size = 0
    root = tree.root()
    source: Iterator[Any] = iter(rows)
    try:
        # Checkpoints and anchors of the empty tree.
        while next_cp is not None and next_cp[0] == 0:
            check_checkpoint(next_cp[1], 0, next_cp[2], next_cp[3], verifiers, tree.root(), keys)
            checked_cps += 1
            next_cp = next(checkpoints, None)
        next_anchor = _check_anchors(pending, next_anchor, 0, tree.root(), 0)
        while True:
            # Up to the next size where something is checked (a checkpoint, an anchor) or reported.
            expected = checker.expected
            stop = expected + PAGE
            if next_cp is not None and expected < next_cp[0] < stop:
                stop = next_cp[0]
            if next_anchor < len(pending) and expected < pending[next_anchor].size < stop:
                stop = pending[next_anchor].size
            if progress is not None and expected < next_progress < stop:
                stop = next_progress
            page = list(itertools.islice(source, stop - expected))
            if not page:
                if second is None:
                    break
                # The rows of the second process: their checks are done, only their leaves go on.
                source, check_page, second = iter(second.leaves(checker)), _taken(checker), None
                continue
            try:
                tree.extend(check_page(page))
            finally:
                checker.trim()
            expected = checker.expected
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
        expected = checker.expected
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
        expected = checker.expected
        return VerificationResult(
            ok=False, entries=expected, checkpoints=checked_cps, tree_size=expected, root_hash=root.hex(),
            seconds=time.perf_counter() - started, first_bad_seq=failure.seq, reason=failure.reason,
            detail=failure.detail, warnings=checker.warnings,
        )
    if progress is not None:
        progress(expected, total)
    return VerificationResult(
        ok=True, entries=expected, checkpoints=checked_cps, tree_size=expected, root_hash=root.hex(),
        seconds=time.perf_counter() - started, anchored=bool(pending),
        anchors=[f"{a.source}: tree size {a.size}, root {a.root.hex()}" for a in pending],
        warnings=checker.warnings,
    )


def _taken(checker: _Checker) -> Callable[[list[bytes]], list[bytes]]:
    def take(leaves: list[bytes]) -> list[bytes]:
        checker.expected += len(leaves)
        return leaves

    return take


class _Fallback(Exception):
    """The two-process run cannot vouch for its result: the ledger is verified again in one process."""


class _Second:
    """The entries from ``start`` on, checked by a second process (``_check_range``) in the same snapshot.

    Its checks are ``_Checker.page``'s; what it cannot see from its range (the hash of entry
    ``start - 1``, the previous entry of each subject before ``start``) it hands back with its leaves,
    and ``leaves`` checks it. Any doubt (a failure there, a link that does not join) is ``_Fallback``.
    """

    def __init__(self, snapshot: str, start: int, chunk: int, lenient: bool) -> None:
        self.start = start
        context = multiprocessing.get_context("fork")
        self.pipe, child = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_check_range, args=(snapshot, start, chunk, lenient, child), name="verify-second", daemon=True)
        self.process.start()
        child.close()

    def leaves(self, checker: _Checker) -> list[bytes]:
        """The second range's leaves once everything before it verified (``checker``'s state at its start)."""
        try:
            answer = self.pipe.recv()
            blob = self.pipe.recv_bytes() if answer.get("ok") else b""
        except (EOFError, OSError):
            raise _Fallback from None
        if not answer.get("ok"):
            raise _Fallback
        if answer["count"]:
            if checker.expected != self.start or answer["first_prev"] != checker.prev:
                raise _Fallback
            for key, seq, sp in answer["deferred"]:
                want = checker.subject_want(key, seq) if answer["complete"] else _last_subject_seq(key[0], key[1], seq)
                if sp != want:
                    raise _Fallback
        checker.warnings.extend(answer["warnings"])
        return [blob[i : i + 32] for i in range(0, len(blob), 32)]

    def close(self) -> None:
        self.pipe.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join()


def _check_range(snapshot: str, start: int, chunk: int, lenient: bool, pipe: Any) -> None:
    """The second process: check the rows from ``start`` on in ``snapshot``, send what ``_Second`` needs.

    Runs in a thread of its own, so Django gives it a connection of its own: the one inherited from
    the parent (a copy of its socket) is never used, and the process ends without closing it.
    """
    answer: dict[str, Any] = {"ok": False}
    blob: list[bytes] = []

    def run() -> None:
        from django.db import connection as own

        try:
            with transaction.atomic(), own.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                source = _entries(chunk, start, db=own)
                first = next(source, None)
                checker = _Checker(lenient)
                checker.expected, checker.deferred = start, []
                if first is not None:
                    checker.prev = first[8]
                    source = itertools.chain([first], source)
                    while page := list(itertools.islice(source, PAGE)):
                        blob.extend(checker.page(page))
                        checker.trim()
                answer.update(ok=True, count=checker.expected - start, first_prev=checker.prev if first is None
                              else first[8], deferred=checker.deferred, complete=checker.complete,
                              warnings=checker.warnings)
        except Failure:
            pass
        finally:
            own.close()

    worker = threading.Thread(target=run, name="verify-second")
    worker.start()
    worker.join()
    pipe.send(answer)
    if answer["ok"]:
        pipe.send_bytes(b"".join(blob))
    pipe.close()


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
