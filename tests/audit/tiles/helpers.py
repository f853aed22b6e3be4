"""Helpers of the tile tests: a ledger grown to a given size quickly, and an independent Merkle computation."""
from __future__ import annotations

from django.db import transaction

from audit import ledger, selectors
from audit.canonical import node_hash
from audit.ledger import Actor, Event, Subject
from audit.models import Entry
from audit.services import checkpoints

# 3 full level-0 tiles and a partial one of width 17; a partial level-1 tile of width 3.
SIZE = 3 * 256 + 17


def grow_to(size: int, *, text: str = "tile test") -> None:
    """Record notes (in one transaction) until the ledger holds ``size`` integrated entries."""
    ledger.integrate()
    missing = size - selectors.ledger_size()
    assert missing >= 0, f"the ledger already holds more than {size} entries"
    with transaction.atomic():
        ledger.record_many([
            Event("ledger.note_added", Actor.system("tests"), Subject("model", f"m/{i % 5}"), {"text": f"{text} {i}"})
            for i in range(missing)
        ])
    ledger.integrate()
    assert selectors.ledger_size() == size


def grown_and_signed(size: int) -> int:
    """Grow to ``size`` and sign a checkpoint of exactly that size (the key's registration entry, which the first
    checkpoint by a key writes, is written first)."""
    checkpoints.checkpoint_create()
    grow_to(size)
    checkpoint = checkpoints.checkpoint_create()
    assert checkpoint is not None and checkpoint.tree_size == size
    return size


def leaves(start: int = 0, end: int | None = None) -> list[bytes]:
    """The entries' hashes as stored in audit_entry (not the Merkle table): the test's own view of the leaves."""
    qs = Entry.objects.order_by("seq").filter(seq__gte=start)
    if end is not None:
        qs = qs.filter(seq__lt=end)
    return [bytes.fromhex(h) for h in qs.values_list("entry_hash", flat=True)]


def mth(hashes: list[bytes]) -> bytes:
    """RFC 9162 MTH over leaf hashes, by the definition (recursive), independent of audit.merkle."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return node_hash(mth(hashes[:k]), mth(hashes[k:]))


def parse_bundle(data: bytes) -> list[bytes]:
    """An entry bundle's entries (uint16 big-endian length, then the bytes), refusing trailing bytes."""
    out, at = [], 0
    while at < len(data):
        assert at + 2 <= len(data), "a length cut short"
        n = int.from_bytes(data[at:at + 2], "big")
        out.append(data[at + 2: at + 2 + n])
        assert len(out[-1]) == n, "an entry cut short"
        at += 2 + n
    return out
