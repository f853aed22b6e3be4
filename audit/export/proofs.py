"""Inclusion proofs in bulk: per aligned block of 1,024 leaves, dense blocks computed, sparse ones fetched."""
from __future__ import annotations

import hashlib
from collections.abc import Iterable

from audit.export.errors import ExportError
from audit.ledger import fetch_nodes
from audit.merkle import fold, inclusion_ranges, range_nodes, verify_inclusion
from audit.models import Entry

BLOCK_LEVEL = 10  # proofs are made per aligned block of 1,024 leaves


BLOCK = 1 << BLOCK_LEVEL


DENSE = 64  # from this many exported entries in a block its subtree is computed, not fetched node by node


FETCH_BATCH = 500


def _fetch(nodes: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    wanted = list(nodes)
    out: dict[tuple[int, int], bytes] = {}
    for i in range(0, len(wanted), FETCH_BATCH):
        out.update(fetch_nodes(wanted[i : i + FETCH_BATCH]))
    return out


class Proofs:
    """RFC 9162 inclusion proofs of many leaves against one checkpoint, leaf to root, as hex.

    Leaves come in ``seq`` order, grouped per aligned block of 1,024. A block that is
    complete in the tree and mostly exported has its subtree computed here (its other
    leaves read from the entries), plus one shared path from the block to the root; a
    sparse or the last, partial block is proved leaf by leaf from the stored nodes.
    Every block's first proof (and every leaf-by-leaf one) is verified against the
    root before it is written: an export never contains a proof that does not verify.
    """

    def __init__(self, size: int, root: bytes) -> None:
        self.size = size
        self.root = root
        self._upper: dict[int, list[str]] = {}

    def upper(self, block: int) -> list[str]:
        """The path from complete block ``block`` to the root (hex); fetched for 64 blocks at a time."""
        if block not in self._upper:
            self._upper.clear()
            complete = self.size >> BLOCK_LEVEL
            wanted = range(block, min(block + 64, complete))
            plans = {b: [range_nodes(s, e) for s, e in inclusion_ranges(b << BLOCK_LEVEL, self.size)[BLOCK_LEVEL:]]
                     for b in wanted}
            stored = _fetch({node for ranges in plans.values() for nodes in ranges for node in nodes})
            try:
                for b, ranges in plans.items():
                    self._upper[b] = [fold([stored[n] for n in nodes]).hex() for nodes in ranges]
            except KeyError:
                raise ExportError("tree nodes are missing: run verify_ledger", code="ledger_not_intact") from None
        return self._upper[block]

    def lines(self, leaves: list[tuple[int, bytes]]) -> bytes:
        """The proofs.jsonl lines of ``leaves`` (one aligned block, in seq order)."""
        size = self.size
        base = leaves[0][0] >> BLOCK_LEVEL << BLOCK_LEVEL
        if base + BLOCK > size or len(leaves) < DENSE:
            self._generic(leaves)
            return b"".join(_proof_line(seq, size, self.single(seq, leaf)) for seq, leaf in leaves)
        if len(leaves) == BLOCK:
            level = [leaf for _, leaf in leaves]
        else:
            level = self._block_leaves(base, leaves)
        levels = [[h.hex() for h in level]]
        for _ in range(BLOCK_LEVEL):
            level = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)]
            levels.append([h.hex() for h in level])
        upper = self.upper(base >> BLOCK_LEVEL)
        first_seq, first_leaf = leaves[0]
        first = [levels[lv][((first_seq - base) >> lv) ^ 1] for lv in range(BLOCK_LEVEL)] + upper
        if not verify_inclusion(first_seq, size, first_leaf, [bytes.fromhex(h) for h in first], self.root):
            raise ExportError(f"the inclusion proof of entry {first_seq} does not verify against the checkpoint: "
                              "the stored tree is not intact; run verify_ledger", code="ledger_not_intact")
        # The path text from level l up, per node of level l: shared by all the leaves below that node.
        suffix = [('","' + '","'.join(upper) if upper else "") + '"]}\n']
        for lv in range(BLOCK_LEVEL - 1, -1, -1):
            siblings, above = levels[lv], suffix
            suffix = [siblings[i ^ 1] + ('","' + above[i >> 1] if lv < BLOCK_LEVEL - 1 else above[0])
                      for i in range(len(siblings))]
        head = f',"tree_size":{size},"inclusion":["'
        return "".join([f'{{"seq":{seq}{head}{suffix[seq - base]}' for seq, _ in leaves]).encode()

    def _block_leaves(self, base: int, leaves: list[tuple[int, bytes]]) -> list[bytes]:
        known = dict(leaves)
        stored = Entry.objects.filter(seq__gte=base, seq__lt=base + BLOCK).order_by("seq")
        hashes = list(stored.values_list("seq", "entry_hash"))
        if len(hashes) != BLOCK or hashes[0][0] != base or hashes[-1][0] != base + BLOCK - 1:
            raise ExportError(f"entries {base}..{base + BLOCK - 1} are not all stored: run verify_ledger",
                              code="ledger_not_intact")
        return [known.get(s) or bytes.fromhex(h) for s, h in hashes]

    def _generic(self, leaves: list[tuple[int, bytes]]) -> None:
        plans = {seq: [range_nodes(s, e) for s, e in inclusion_ranges(seq, self.size)] for seq, _ in leaves}
        needed = {node for ranges in plans.values() for nodes in ranges for node in nodes}
        self._nodes = _fetch(needed)
        missing = needed - self._nodes.keys()
        if missing:
            raise ExportError(f"{len(missing)} tree node(s) are not stored: run verify_ledger",
                              code="ledger_not_intact")
        self._plans = plans

    def single(self, seq: int, leaf: bytes) -> list[str]:
        path = [fold([self._nodes[n] for n in nodes]) for nodes in self._plans[seq]]
        if not verify_inclusion(seq, self.size, leaf, path, self.root):
            raise ExportError(f"the inclusion proof of entry {seq} does not verify against the checkpoint: "
                              "the stored tree is not intact; run verify_ledger", code="ledger_not_intact")
        return [h.hex() for h in path]

    def one(self, seq: int, leaf: bytes) -> list[str]:
        """The proof of a single leaf (boundary entries, the export's own entry)."""
        self._generic([(seq, leaf)])
        return self.single(seq, leaf)


def _proof_line(seq: int, size: int, path: list[str]) -> bytes:
    inner = '","'.join(path)
    return (f'{{"seq":{seq},"tree_size":{size},"inclusion":[' + (f'"{inner}"' if path else "") + "]}\n").encode()
