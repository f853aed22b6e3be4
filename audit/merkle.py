"""RFC 9162 Merkle tree arithmetic over stored perfect subtrees.

Every *perfect* subtree (2**level leaves starting at a multiple of 2**level) is
stored once, addressed by ``(level, index)``. Any RFC 9162 subtree hash
``MTH(D[start:end])`` that occurs in a root, an inclusion proof or a consistency
proof decomposes into at most ~log2(n) perfect subtrees, so every root and proof
is computed from O(log n) stored nodes fetched in one query.

The functions here are pure: they *plan* which nodes are needed, and combine
hashes once a caller has fetched them. ``verify_inclusion`` and
``verify_consistency`` are the client algorithms of RFC 9162 sections 2.1.3.2
and 2.1.4.2.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

from audit.canonical import node_hash

# The client algorithms (RFC 9162 2.1.3.2 and 2.1.4.2) live once, in the standalone
# verifier that regulators run; the server uses the very same code.
from audit.offline_verify import verify_consistency, verify_inclusion

__all__ = ["verify_consistency", "verify_inclusion"]

Node = tuple[int, int]  # (level, index)
Range = tuple[int, int]  # [start, end)


class ProofError(ValueError):
    """A proof was asked for sizes or indexes that do not exist."""


def largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162: the largest power of two strictly smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def node_key(level: int, index: int) -> int:
    """A single integer key for a stored node (index in the high bits, level in the low 6)."""
    return (index << 6) | level


def range_nodes(start: int, end: int) -> list[Node]:
    """Perfect subtrees, left to right, whose right fold is MTH(D[start:end]).

    ``start`` must be aligned as it always is inside RFC 9162's recursion.
    """
    nodes: list[Node] = []
    while end - start > 0:
        size = end - start
        if size & (size - 1) == 0:
            level = size.bit_length() - 1
            nodes.append((level, start >> level))
            break
        k = largest_power_of_two_below(size)
        level = k.bit_length() - 1
        nodes.append((level, start >> level))
        start += k
    return nodes


def fold(hashes: list[bytes]) -> bytes:
    """Combine the hashes of ``range_nodes`` into the subtree hash (right fold)."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The subtrees whose hashes form PATH(index, D[0:size]), leaf to root."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    path: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = largest_power_of_two_below(end - start)
        if index < start + k:
            path.append((start + k, end))
            end = start + k
        else:
            path.append((start, start + k))
            start = start + k
    path.reverse()
    return path


def consistency_ranges(old_size: int, new_size: int) -> list[Range]:
    """The subtrees whose hashes form PROOF(old_size, D[0:new_size]) (RFC 9162 2.1.4.1)."""
    if not 0 < old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size == new_size:
        return []
    proof: list[Range] = []
    m, start, end, complete = old_size, 0, new_size, True
    while True:
        n = end - start
        if m == n:
            if not complete:
                proof.append((start, end))
            break
        k = largest_power_of_two_below(n)
        if m <= k:
            proof.append((start + k, end))
            end = start + k
        else:
            proof.append((start, start + k))
            start, m, complete = start + k, m - k, False
    proof.reverse()
    return proof


def resolve(ranges: Iterable[Range], fetch: Callable[[set[Node]], Mapping[Node, bytes]]) -> list[bytes]:
    """Hash each range using one ``fetch`` of all the stored nodes they need."""
    plans = [range_nodes(s, e) for s, e in ranges]
    needed = {node for plan in plans for node in plan}
    stored = fetch(needed) if needed else {}
    missing = needed - stored.keys()
    if missing:
        raise ProofError(f"{len(missing)} tree node(s) are not stored (e.g. {min(missing)})")
    return [fold([stored[node] for node in plan]) for plan in plans]


def root_nodes(size: int) -> list[Node]:
    return range_nodes(0, size)


class CompactRange:
    """The right edge of a growing tree: the perfect subtrees that make up [0, size).

    ``append`` returns every perfect node it completes, which is exactly what a
    sequencer has to store; ``root`` is the RFC 9162 root of the current size.
    Memory is O(log n), so a verifier can stream millions of leaves through it.
    """

    __slots__ = ("size", "stack")

    def __init__(self, size: int = 0, stack: list[tuple[int, bytes]] | None = None) -> None:
        self.size = size
        # (level, hash) from the largest subtree to the smallest.
        self.stack: list[tuple[int, bytes]] = stack or []

    @classmethod
    def from_nodes(cls, size: int, hashes: Mapping[Node, bytes]) -> CompactRange:
        return cls(size, [(level, hashes[(level, index)]) for level, index in root_nodes(size)])

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        created = [(0, self.size, leaf)]
        index = self.size
        self.size += 1
        level, h = 0, leaf
        stack = self.stack
        while stack and stack[-1][0] == level:
            _, left = stack.pop()
            h = node_hash(left, h)
            level += 1
            index >>= 1
            created.append((level, index, h))
        stack.append((level, h))
        return created

    def push(self, leaf: bytes) -> None:
        """``append`` without reporting the new nodes (the verifier's fast path)."""
        self.size += 1
        level, h = 0, leaf
        stack = self.stack
        while stack and stack[-1][0] == level:
            h = node_hash(stack.pop()[1], h)
            level += 1
        stack.append((level, h))

    def extend(self, leaves: Sequence[bytes]) -> None:
        """``push`` of every leaf in turn, computed level by level over lists (the verifier's batch path).

        The new leaves are cut into the perfect subtrees aligned at their position (as large as the
        alignment and the count allow); each is hashed one level at a time, then joined to the right
        edge like a pushed node of its level. The result is exactly that of pushing leaf by leaf.
        """
        sha256 = hashlib.sha256
        size, done, total = self.size, 0, len(leaves)
        while done < total:
            # The largest subtree aligned at ``size`` (any size at 0) that the remaining leaves fill.
            level = min((size & -size).bit_length() - 1 if size else 63, (total - done).bit_length() - 1)
            width = 1 << level
            hashes = list(leaves[done : done + width])
            while len(hashes) > 1:
                hashes = [sha256(b"\x01" + a + b).digest() for a, b in zip(hashes[0::2], hashes[1::2], strict=True)]
            self._push_node(level, hashes[0])
            size += width
            done += width
        self.size = size

    def _push_node(self, level: int, h: bytes) -> None:
        """Join the perfect subtree of ``level`` that starts at the current size (aligned) to the right edge."""
        stack = self.stack
        while stack and stack[-1][0] == level:
            h = node_hash(stack.pop()[1], h)
            level += 1
        stack.append((level, h))

    def root(self) -> bytes:
        if not self.stack:
            return EMPTY_ROOT
        return fold([h for _, h in self.stack])


# RFC 9162: the hash of an empty tree is the hash of an empty string.
EMPTY_ROOT = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
