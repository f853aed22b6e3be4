"""Reads of the ledger: tree roots and proofs from stored nodes (O(log n) each)."""
from __future__ import annotations

from dataclasses import dataclass

from audit.merkle import (
    EMPTY_ROOT,
    ProofError,
    consistency_ranges,
    fold,
    inclusion_ranges,
    resolve,
    root_nodes,
)
from audit.models import Checkpoint, Entry, LedgerHead


def ledger_size() -> int:
    return LedgerHead.objects.values_list("tree_size", flat=True).get(pk=1)


def _check_size(size: int) -> None:
    current = ledger_size()
    if not 0 <= size <= current:
        raise ProofError(f"tree size {size} is outside the ledger (0..{current})")


def tree_root(size: int) -> bytes:
    """RFC 9162 root hash of the first ``size`` entries."""
    from audit.ledger import fetch_nodes

    _check_size(size)
    if size == 0:
        return EMPTY_ROOT
    nodes = root_nodes(size)
    stored = fetch_nodes(nodes)
    if len(stored) != len(nodes):
        raise ProofError(f"tree nodes for size {size} are missing")
    return fold([stored[n] for n in nodes])


@dataclass(frozen=True)
class InclusionProof:
    seq: int
    tree_size: int
    leaf_hash: bytes
    path: list[bytes]
    root: bytes


def inclusion_proof(*, seq: int, tree_size: int) -> InclusionProof:
    from audit.ledger import fetch_nodes

    _check_size(tree_size)
    ranges = inclusion_ranges(seq, tree_size)
    entry_hash = Entry.objects.values_list("entry_hash", flat=True).get(seq=seq)
    path = resolve(ranges, fetch_nodes)
    return InclusionProof(seq, tree_size, bytes.fromhex(entry_hash), path, tree_root(tree_size))


@dataclass(frozen=True)
class ConsistencyProof:
    old_size: int
    new_size: int
    path: list[bytes]
    old_root: bytes
    new_root: bytes


def consistency_proof(*, old_size: int, new_size: int) -> ConsistencyProof:
    from audit.ledger import fetch_nodes

    _check_size(new_size)
    ranges = consistency_ranges(old_size, new_size)
    path = resolve(ranges, fetch_nodes)
    return ConsistencyProof(old_size, new_size, path, tree_root(old_size), tree_root(new_size))


def latest_checkpoint() -> Checkpoint | None:
    return Checkpoint.objects.order_by("-id").first()


def checkpoint_covering(seq: int) -> Checkpoint | None:
    """The earliest checkpoint whose tree contains entry ``seq``."""
    return Checkpoint.objects.filter(tree_size__gt=seq).order_by("tree_size", "id").first()
