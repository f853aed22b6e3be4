"""Full verification of the ledger from its stored fields.

Streams entries in ``seq`` order with keyset pagination (constant memory),
recomputing every entry hash, the hash chain, the per-subject chain and the
Merkle root at every checkpoint's size, and checks every checkpoint's signature
against keys trusted from configuration (never from the database, which is
what an attacker would have edited). Stops at the first problem and names it.
"""
from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from audit.canonical import ZERO_HASH, body_bytes, leaf_hash
from audit.merkle import CompactRange
from audit.models import Checkpoint, Entry
from audit.note import CheckpointBody, NoteError, Verifier, open_note
from audit.signing import current_verifier_key

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
    keys = [current_verifier_key(), *settings.LEDGER_TRUSTED_KEYS, *_file_keys(), *(extra or [])]
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


def verify_ledger(
    *,
    extra_keys: list[str] | None = None,
    progress: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
) -> VerificationResult:
    started = time.perf_counter()
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
        for row in _entries(chunk):
            seq, ts, et, at, aid, st, sid, pj, ph, sp, eh = row
            if seq < expected:
                raise _Failure(seq, CHANGED, f"entry {seq} is stored outside the sequence 0, 1, 2, ...")
            if seq != expected:
                raise _Failure(expected, MISSING, f"entry {expected} is missing (next stored entry is {seq})")
            body = body_bytes(
                seq=seq, timestamp=ts, event_type=et, actor_type=at, actor_id=aid, subject_type=st,
                subject_id=sid, payload_json=pj, prev_hash=ph, subject_prev=sp,
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
            if progress is not None and expected % chunk == 0:
                progress(expected)
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
        progress(expected)
    return VerificationResult(
        ok=True, entries=expected, checkpoints=checked_cps, tree_size=expected, root_hash=root.hex(),
        seconds=time.perf_counter() - started,
    )


def _hashes_at_other_seq(row: tuple[Any, ...]) -> bool:
    """Whether the row's stored hash matches its fields at a nearby seq: it was moved, not edited."""
    seq, ts, et, at, aid, st, sid, pj, ph, sp, eh = row
    for other in (seq - 2, seq - 1, seq + 1, seq + 2):
        if other < 0:
            continue
        body = body_bytes(
            seq=other, timestamp=ts, event_type=et, actor_type=at, actor_id=aid, subject_type=st,
            subject_id=sid, payload_json=pj, prev_hash=ph, subject_prev=sp,
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
