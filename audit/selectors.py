"""Reads of the ledger: tree roots and proofs from stored nodes (O(log n) each)."""
from __future__ import annotations

from dataclasses import dataclass

from audit.merkle import (
    EMPTY_ROOT,
    ProofError,
    consistency_ranges,
    inclusion_ranges,
    resolve,
)
from audit.models import Checkpoint, LedgerHead


def ledger_size() -> int:
    return LedgerHead.objects.values_list("tree_size", flat=True).get(pk=1)


def _check_size(size: int) -> None:
    current = ledger_size()
    if not 0 <= size <= current:
        raise ProofError(f"tree size {size} is outside the ledger (0..{current})")


def _hashes(ranges: list[tuple[int, int]]) -> list[bytes]:
    """The subtree hash of every range, from one query for all the stored nodes they need."""
    from audit.ledger import fetch_nodes

    return resolve(ranges, fetch_nodes)


def tree_root(size: int) -> bytes:
    """RFC 9162 root hash of the first ``size`` entries."""
    _check_size(size)
    if size == 0:
        return EMPTY_ROOT
    return _hashes([(0, size)])[0]


@dataclass(frozen=True)
class InclusionProof:
    seq: int
    tree_size: int
    leaf_hash: bytes
    path: list[bytes]
    root: bytes


def inclusion_proof(*, seq: int, tree_size: int) -> InclusionProof:
    """Two queries whatever the size: the head, then every node of the path, the leaf and the root."""
    _check_size(tree_size)
    ranges = inclusion_ranges(seq, tree_size)
    *path, leaf, root = _hashes([*ranges, (seq, seq + 1), (0, tree_size)])
    return InclusionProof(seq, tree_size, leaf, path, root)


@dataclass(frozen=True)
class ConsistencyProof:
    old_size: int
    new_size: int
    path: list[bytes]
    old_root: bytes
    new_root: bytes


def consistency_proof(*, old_size: int, new_size: int) -> ConsistencyProof:
    """Two queries whatever the sizes: the head, then every node of the proof and both roots."""
    _check_size(new_size)
    ranges = consistency_ranges(old_size, new_size)
    *path, old_root, new_root = _hashes([*ranges, (0, old_size), (0, new_size)])
    return ConsistencyProof(old_size, new_size, path, old_root, new_root)


def latest_checkpoint() -> Checkpoint | None:
    return Checkpoint.objects.order_by("-id").first()


def checkpoint_covering(seq: int) -> Checkpoint | None:
    """The earliest checkpoint whose tree contains entry ``seq``."""
    return Checkpoint.objects.filter(tree_size__gt=seq).order_by("tree_size", "id").first()
