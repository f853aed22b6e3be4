"""Pure tests of audit.merkle against RFC 9162 and a naive reference.

The reference (``Naive``) is RFC 9162 section 2.1 written out literally: MTH,
PATH and SUBPROOF as recursive functions over the leaf data, with hashlib
directly (no code shared with the module under test).

Published vectors: transparency-dev/merkle testonly/constants.go (leaves,
node hashes, roots, compact ranges) and proof/verify_test.go (inclusion and
consistency proofs), the RFC 6962 test tree also used by Certificate
Transparency and Trillian.
"""
from __future__ import annotations

import hashlib
import itertools
import math
import random
from collections.abc import Callable, Mapping

import pytest

from audit.canonical import leaf_hash
from audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    Node,
    ProofError,
    consistency_ranges,
    fold,
    inclusion_ranges,
    largest_power_of_two_below,
    node_key,
    range_nodes,
    resolve,
    root_nodes,
    verify_consistency,
    verify_inclusion,
)

# --------------------------------------------------------------------------------------
# Naive RFC 9162 reference
# --------------------------------------------------------------------------------------


def _k(n: int) -> int:
    """RFC 9162: the largest power of two smaller than n (n > 1), by counting."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class Naive:
    """MTH, PATH and PROOF of RFC 9162 section 2.1 over D = ``leaves``.

    Subtrees are addressed as D[a:b]; MTH is memoized (it does not depend on n).
    """

    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves = leaves
        self._memo: dict[tuple[int, int], bytes] = {}

    def mth(self, a: int, b: int) -> bytes:
        if (a, b) in self._memo:
            return self._memo[(a, b)]
        n = b - a
        if n == 0:
            h = hashlib.sha256(b"").digest()
        elif n == 1:
            h = _leaf(self.leaves[a])
        else:
            k = _k(n)
            h = _node(self.mth(a, a + k), self.mth(a + k, b))
        self._memo[(a, b)] = h
        return h

    def path(self, m: int, a: int, b: int) -> list[bytes]:
        """PATH(m, D[a:b]), m relative to a."""
        n = b - a
        if n == 1:
            return []
        k = _k(n)
        if m < k:
            return [*self.path(m, a, a + k), self.mth(a + k, b)]
        return [*self.path(m - k, a + k, b), self.mth(a, a + k)]

    def subproof(self, m: int, a: int, b: int, complete: bool) -> list[bytes]:
        """SUBPROOF(m, D[a:b], b)."""
        n = b - a
        if m == n:
            return [] if complete else [self.mth(a, b)]
        k = _k(n)
        if m <= k:
            return [*self.subproof(m, a, a + k, complete), self.mth(a + k, b)]
        return [*self.subproof(m - k, a + k, b, False), self.mth(a, a + k)]

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return self.path(index, 0, size)

    def consistency(self, old: int, new: int) -> list[bytes]:
        return self.subproof(old, 0, new, True)


MAX_N = 70
DATA = [f"leaf {i} \u2028 {i * i}".encode() for i in range(MAX_N)]
NAIVE = Naive(DATA)


def _build(leaf_hashes: list[bytes]) -> tuple[dict[Node, bytes], list[CompactRange]]:
    """Feed leaves through CompactRange.append; collect stored nodes and a snapshot per size."""
    store: dict[Node, bytes] = {}
    snapshots = [CompactRange()]
    tree = CompactRange()
    for h in leaf_hashes:
        for level, index, node in tree.append(h):
            assert (level, index) not in store, "a node was created twice"
            store[(level, index)] = node
        snapshots.append(CompactRange(tree.size, list(tree.stack)))
    return store, snapshots


STORE, SNAPSHOTS = _build([_leaf(d) for d in DATA])


def _fetcher(size: int, calls: list[set[Node]] | None = None) -> Callable[[set[Node]], Mapping[Node, bytes]]:
    """Serve only nodes that exist in a tree of ``size`` leaves, as the database would."""

    def fetch(needed: set[Node]) -> Mapping[Node, bytes]:
        if calls is not None:
            calls.append(set(needed))
        for level, index in needed:
            assert (index + 1) << level <= size, f"node {(level, index)} is not complete at size {size}"
        return {node: STORE[node] for node in needed}

    return fetch


# --------------------------------------------------------------------------------------
# RFC 6962 test tree (transparency-dev/merkle testonly/constants.go, proof/verify_test.go)
# --------------------------------------------------------------------------------------

RFC6962_LEAVES = [
    bytes.fromhex(x)
    for x in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
NODE_HASHES = [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index (0-based), tree size, audit path)
INCLUSION_VECTORS = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# (old size, new size, consistency proof)
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]


@pytest.fixture(scope="module")
def rfc6962_tree() -> tuple[dict[Node, bytes], list[CompactRange]]:
    return _build([leaf_hash(d) for d in RFC6962_LEAVES])


def test_rfc6962_empty_tree_root() -> None:
    assert EMPTY_ROOT.hex() == ROOTS[0]
    assert CompactRange().root() == EMPTY_ROOT
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT


def test_rfc6962_roots_for_every_size(rfc6962_tree: tuple[dict[Node, bytes], list[CompactRange]]) -> None:
    _, snapshots = rfc6962_tree
    assert [s.root().hex() for s in snapshots] == ROOTS


def test_rfc6962_stored_nodes_are_the_published_node_hashes(
    rfc6962_tree: tuple[dict[Node, bytes], list[CompactRange]],
) -> None:
    store, _ = rfc6962_tree
    expected = {(level, index): h for level, row in enumerate(NODE_HASHES) for index, h in enumerate(row)}
    assert {node: h.hex() for node, h in store.items()} == expected


def test_rfc6962_compact_ranges(rfc6962_tree: tuple[dict[Node, bytes], list[CompactRange]]) -> None:
    # testonly.CompactTrees(): the right edge of the tree at each size, largest subtree first
    nh = NODE_HASHES
    expected = [
        [],
        [nh[0][0]],
        [nh[1][0]],
        [nh[1][0], nh[0][2]],
        [nh[2][0]],
        [nh[2][0], nh[0][4]],
        [nh[2][0], nh[1][2]],
        [nh[2][0], nh[1][2], nh[0][6]],
        [nh[3][0]],
    ]
    _, snapshots = rfc6962_tree
    assert [[h.hex() for _, h in s.stack] for s in snapshots] == expected


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION_VECTORS)
def test_rfc6962_inclusion_vectors(
    rfc6962_tree: tuple[dict[Node, bytes], list[CompactRange]], index: int, size: int, path: list[str]
) -> None:
    store, _ = rfc6962_tree
    # when
    got = resolve(inclusion_ranges(index, size), lambda need: {n: store[n] for n in need})
    # then
    assert [h.hex() for h in got] == path
    leaf = leaf_hash(RFC6962_LEAVES[index])
    assert verify_inclusion(index, size, leaf, [bytes.fromhex(h) for h in path], bytes.fromhex(ROOTS[size]))


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS)
def test_rfc6962_consistency_vectors(
    rfc6962_tree: tuple[dict[Node, bytes], list[CompactRange]], old: int, new: int, proof: list[str]
) -> None:
    store, _ = rfc6962_tree
    got = resolve(consistency_ranges(old, new), lambda need: {n: store[n] for n in need})
    assert [h.hex() for h in got] == proof
    assert verify_consistency(
        old, new, bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new]), [bytes.fromhex(h) for h in proof]
    )


# --------------------------------------------------------------------------------------
# Tree building against the naive MTH
# --------------------------------------------------------------------------------------


def test_compact_range_root_equals_naive_mth_for_every_size() -> None:
    for size, snapshot in enumerate(SNAPSHOTS):
        assert snapshot.size == size
        assert snapshot.root() == NAIVE.mth(0, size), size


def test_append_creates_exactly_every_perfect_subtree_with_its_mth() -> None:
    # every perfect subtree inside [0, MAX_N) is created once, with the right hash
    expected = {
        (level, index)
        for level in range(MAX_N.bit_length())
        for index in range(MAX_N >> level)
    }
    assert set(STORE) == expected
    for (level, index), h in STORE.items():
        assert h == NAIVE.mth(index << level, (index + 1) << level)


def test_append_reports_the_leaf_first_then_its_completed_ancestors() -> None:
    tree = CompactRange()
    for i, data in enumerate(DATA[:33]):
        created = tree.append(_leaf(data))
        assert created[0] == (0, i, _leaf(data))
        # leaf i completes one ancestor per trailing 1 bit of i
        trailing_ones = (i ^ (i + 1)).bit_length() - 1
        assert [(lv, ix) for lv, ix, _ in created] == [(lv, i >> lv) for lv in range(trailing_ones + 1)]


def test_push_and_append_agree() -> None:
    pushed, appended = CompactRange(), CompactRange()
    for data in DATA:
        pushed.push(_leaf(data))
        appended.append(_leaf(data))
        assert pushed.size == appended.size
        assert pushed.stack == appended.stack
        assert pushed.root() == appended.root()


@pytest.mark.parametrize("cuts", [(), (1,), (3, 4), (5, 8, 13, 64), (2, 7, 9, 31, 33, 100)])
def test_extend_in_batches_agrees_with_push(cuts: tuple[int, ...]) -> None:
    leaves = [_leaf(i.to_bytes(4, "big")) for i in range(130)]
    pushed, batched = CompactRange(), CompactRange()
    bounds = [0, *cuts, len(leaves)]
    for start, end in itertools.pairwise(bounds):
        for leaf in leaves[start:end]:
            pushed.push(leaf)
        batched.extend(leaves[start:end])
        assert (batched.size, batched.stack, batched.root()) == (pushed.size, pushed.stack, pushed.root())
    batched.extend([])
    assert batched.root() == pushed.root()


def test_compact_range_stack_is_the_root_decomposition() -> None:
    for size, snapshot in enumerate(SNAPSHOTS):
        assert [level for level, _ in snapshot.stack] == [level for level, _ in root_nodes(size)]
        assert len(snapshot.stack) == bin(size).count("1")


def test_from_nodes_rebuilds_the_same_state() -> None:
    for size, snapshot in enumerate(SNAPSHOTS):
        # given: only the nodes of a tree of this size
        rebuilt = CompactRange.from_nodes(size, _fetcher(size)(set(root_nodes(size))))
        # then
        assert rebuilt.size == size
        assert rebuilt.stack == snapshot.stack
        assert rebuilt.root() == NAIVE.mth(0, size)
        # and it keeps growing like the original
        if size < MAX_N:
            rebuilt.push(_leaf(DATA[size]))
            assert rebuilt.root() == NAIVE.mth(0, size + 1)


def test_root_from_stored_nodes_equals_naive_mth() -> None:
    for size in range(1, MAX_N + 1):
        nodes = root_nodes(size)
        assert fold([STORE[n] for n in nodes]) == NAIVE.mth(0, size)
        assert resolve([(0, size)], _fetcher(size)) == [NAIVE.mth(0, size)]


def test_compact_range_default_stacks_are_not_shared() -> None:
    a, b = CompactRange(), CompactRange()
    a.push(b"\x00" * 32)
    assert b.stack == []
    assert b.size == 0


# --------------------------------------------------------------------------------------
# Proofs against the naive PATH / SUBPROOF
# --------------------------------------------------------------------------------------


def test_inclusion_proofs_equal_naive_path_for_every_size_and_index() -> None:
    for size in range(1, MAX_N + 1):
        for index in range(size):
            calls: list[set[Node]] = []
            got = resolve(inclusion_ranges(index, size), _fetcher(size, calls))
            assert got == NAIVE.inclusion(index, size), (index, size)
            assert len(calls) <= 1  # one round trip
            assert verify_inclusion(index, size, _leaf(DATA[index]), got, NAIVE.mth(0, size))


def test_consistency_proofs_equal_naive_subproof_for_every_pair_of_sizes() -> None:
    for new in range(1, MAX_N + 1):
        for old in range(1, new + 1):
            calls: list[set[Node]] = []
            got = resolve(consistency_ranges(old, new), _fetcher(new, calls))
            assert got == NAIVE.consistency(old, new), (old, new)
            assert len(calls) <= 1
            assert verify_consistency(old, new, NAIVE.mth(0, old), NAIVE.mth(0, new), got)


def test_inclusion_ranges_are_the_subtrees_of_the_naive_path() -> None:
    for size in range(1, 40):
        for index in range(size):
            ranges = inclusion_ranges(index, size)
            assert [NAIVE.mth(a, b) for a, b in ranges] == NAIVE.inclusion(index, size)
            assert all(not a <= index < b for a, b in ranges)  # siblings never contain the leaf


def test_range_nodes_fold_to_the_subtree_hash() -> None:
    # every range RFC 9162's recursion can produce
    ranges = {r for n in range(1, MAX_N + 1) for i in range(n) for r in inclusion_ranges(i, n)}
    ranges |= {r for n in range(1, MAX_N + 1) for m in range(1, n + 1) for r in consistency_ranges(m, n)}
    for a, b in ranges:
        nodes = range_nodes(a, b)
        # perfect, left to right, covering [a, b) exactly
        spans = [(index << level, (index + 1) << level) for level, index in nodes]
        assert spans[0][0] == a
        assert spans[-1][1] == b
        assert all(x[1] == y[0] for x, y in itertools.pairwise(spans))
        assert fold([STORE[n] for n in nodes]) == NAIVE.mth(a, b)


def test_range_nodes_examples() -> None:
    assert range_nodes(0, 1) == [(0, 0)]
    assert range_nodes(0, 8) == [(3, 0)]
    assert range_nodes(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert range_nodes(4, 6) == [(1, 2)]
    assert range_nodes(8, 13) == [(2, 2), (0, 12)]
    assert range_nodes(5, 5) == []
    assert root_nodes(0) == []
    assert root_nodes(70) == [(6, 0), (2, 16), (1, 34)]


def test_largest_power_of_two_below() -> None:
    for n in range(2, 5000):
        assert largest_power_of_two_below(n) == _k(n)
    assert largest_power_of_two_below(2**40 + 1) == 2**40
    assert largest_power_of_two_below(2**40) == 2**39


def test_node_key_is_injective() -> None:
    keys = {node_key(level, index) for level in range(64) for index in range(300)}
    assert len(keys) == 64 * 300
    assert node_key(0, 0) == 0
    assert node_key(3, 5) == (5 << 6) | 3
    assert node_key(0, 2**50) < 2**63  # fits a signed 64-bit column for any realistic tree


def test_resolve_fetches_nothing_for_an_empty_proof() -> None:
    def fetch(needed: set[Node]) -> Mapping[Node, bytes]:
        raise AssertionError("should not be called")

    assert resolve([], fetch) == []
    assert resolve(consistency_ranges(5, 5), fetch) == []


def test_resolve_reports_missing_nodes() -> None:
    with pytest.raises(ProofError, match="not stored"):
        resolve(inclusion_ranges(3, 8), lambda need: {})
    partial = {n: STORE[n] for n in list(range_nodes(0, 4))}
    with pytest.raises(ProofError):
        resolve(inclusion_ranges(0, 8), lambda need: {n: partial[n] for n in need if n in partial})


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 1), (5, 5), (6, 5), (-1, 5), (0, -1)])
def test_inclusion_ranges_refuse_leaves_outside_the_tree(index: int, size: int) -> None:
    with pytest.raises(ProofError):
        inclusion_ranges(index, size)


@pytest.mark.parametrize(("old", "new"), [(0, 0), (0, 5), (6, 5), (2, 1), (-1, 5), (1, 0)])
def test_consistency_ranges_refuse_impossible_sizes(old: int, new: int) -> None:
    with pytest.raises(ProofError):
        consistency_ranges(old, new)


def test_proofs_need_logarithmically_many_stored_nodes() -> None:
    n = 1_000_000
    bound = 2 * math.ceil(math.log2(n)) + 2
    rng = random.Random(6962)
    indexes = [0, 1, n // 2 - 1, n // 2, n - 2, n - 1, 524_287, 524_288, 999_424, *rng.sample(range(n), 40)]
    for index in indexes:
        nodes = {node for a, b in inclusion_ranges(index, n) for node in range_nodes(a, b)}
        assert len(nodes) <= bound, (index, len(nodes))
    for old in [1, 2, 3, 2**19, 2**19 + 1, n - 1, *rng.sample(range(1, n), 40)]:
        nodes = {node for a, b in consistency_ranges(old, n) for node in range_nodes(a, b)}
        assert len(nodes) <= bound, (old, len(nodes))
    for size in [n, 2**20 - 1, 2**40 - 1]:
        assert len(root_nodes(size)) <= math.ceil(math.log2(size)) + 1


# --------------------------------------------------------------------------------------
# Verifiers reject what they must
# --------------------------------------------------------------------------------------

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _flip(h: bytes, bit: int = 3) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


def _bad_inclusion_probes(
    index: int, size: int, leaf: bytes, path: list[bytes], root: bytes
) -> list[tuple[str, tuple[int, int, bytes, list[bytes], bytes]]]:
    probes = [
        ("index - 1", (index - 1, size, leaf, path, root)),
        ("index + 1", (index + 1, size, leaf, path, root)),
        ("index ^ 2", (index ^ 2, size, leaf, path, root)),
        ("size * 2", (index, size * 2, leaf, path, root)),
        ("size // 2", (index, size // 2, leaf, path, root)),
        ("wrong leaf", (index, size, _leaf(b"wrong leaf"), path, root)),
        ("flipped leaf", (index, size, _flip(leaf), path, root)),
        ("empty root", (index, size, leaf, path, EMPTY_ROOT)),
        ("random root", (index, size, leaf, path, SOME_HASH)),
        ("flipped root", (index, size, leaf, path, _flip(root))),
        ("trailing garbage", (index, size, leaf, [*path, b""], root)),
        ("trailing root", (index, size, leaf, [*path, root], root)),
        ("preceding garbage", (index, size, leaf, [b"", *path], root)),
        ("preceding root", (index, size, leaf, [root, *path], root)),
    ]
    for i in range(len(path)):
        wrong = list(path)
        wrong[i] = _flip(wrong[i])
        probes.append((f"flipped path[{i}]", (index, size, leaf, wrong, root)))
    if path:
        probes.append(("truncated path", (index, size, leaf, path[:-1], root)))
        probes.append(("dropped first", (index, size, leaf, path[1:], root)))
    if len(path) > 1:
        probes.append(("inserted element", (index, size, leaf, [path[0], SOME_HASH, *path[1:]], root)))
        probes.append(("swapped elements", (index, size, leaf, [path[1], path[0], *path[2:]], root)))
    # Negative indexes are handled separately (see the test below).
    return [(d, p) for d, p in probes if p[0] >= 0]


def test_verify_inclusion_rejects_corrupted_proofs() -> None:
    for size in range(1, 41):
        root = NAIVE.mth(0, size)
        for index in range(size):
            leaf = _leaf(DATA[index])
            path = NAIVE.inclusion(index, size)
            assert verify_inclusion(index, size, leaf, path, root)
            for desc, probe in _bad_inclusion_probes(index, size, leaf, path, root):
                assert not verify_inclusion(*probe), (index, size, desc)


def test_verify_inclusion_another_leaf_with_the_same_path_fails() -> None:
    for size in range(2, 33):
        root = NAIVE.mth(0, size)
        for index in range(size):
            path = NAIVE.inclusion(index, size)
            for other in range(size):
                if other != index:
                    assert not verify_inclusion(index, size, _leaf(DATA[other]), path, root)
                    assert not verify_inclusion(other, size, _leaf(DATA[index]), path, root)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 1), (2, 1), (1, 0), (5, 5), (2**64, 3)])
def test_verify_inclusion_rejects_indexes_outside_the_tree(index: int, size: int) -> None:
    assert not verify_inclusion(index, size, SOME_HASH, [], SOME_HASH)
    assert not verify_inclusion(index, size, SOME_HASH, [], EMPTY_ROOT)


def test_verify_inclusion_single_leaf_tree() -> None:
    leaf = _leaf(b"data")
    assert verify_inclusion(0, 1, leaf, [], leaf)
    assert not verify_inclusion(0, 1, leaf, [], b"")
    assert not verify_inclusion(0, 1, b"", [], leaf)
    assert not verify_inclusion(0, 1, leaf, [leaf], leaf)


def test_verify_inclusion_rejects_negative_indexes() -> None:
    size = 8
    path = NAIVE.inclusion(size - 1, size)
    assert verify_inclusion(size - 1, size, _leaf(DATA[size - 1]), path, NAIVE.mth(0, size))
    assert not verify_inclusion(-1, size, _leaf(DATA[size - 1]), path, NAIVE.mth(0, size))


def _bad_consistency_probes(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> list[tuple[str, tuple[int, int, bytes, bytes, list[bytes]]]]:
    probes = [
        ("old - 1", (old - 1, new, old_root, new_root, proof)),
        ("old + 1", (old + 1, new, old_root, new_root, proof)),
        ("old ^ 2", (old ^ 2, new, old_root, new_root, proof)),
        ("new * 2", (old, new * 2, old_root, new_root, proof)),
        ("new // 2", (old, new // 2, old_root, new_root, proof)),
        ("wrong old root", (old, new, b"WrongRoot", new_root, proof)),
        ("wrong new root", (old, new, old_root, b"WrongRoot", proof)),
        ("flipped old root", (old, new, _flip(old_root), new_root, proof)),
        ("flipped new root", (old, new, old_root, _flip(new_root), proof)),
        ("swapped roots", (old, new, new_root, old_root, proof)),
        ("empty proof", (old, new, old_root, new_root, [])),
        ("trailing garbage", (old, new, old_root, new_root, [*proof, b""])),
        ("trailing old root", (old, new, old_root, new_root, [*proof, old_root])),
        ("trailing new root", (old, new, old_root, new_root, [*proof, new_root])),
        ("preceding garbage", (old, new, old_root, new_root, [b"", *proof])),
        ("preceding old root", (old, new, old_root, new_root, [old_root, *proof])),
        ("preceding new root", (old, new, old_root, new_root, [new_root, *proof])),
        ("preceding proof[0]", (old, new, old_root, new_root, [proof[0], *proof])),
        ("truncated proof", (old, new, old_root, new_root, proof[:-1])),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = _flip(wrong[i], 4)
        probes.append((f"flipped proof[{i}]", (old, new, old_root, new_root, wrong)))
    return probes


def test_verify_consistency_rejects_corrupted_proofs() -> None:
    for new in range(2, 41):
        new_root = NAIVE.mth(0, new)
        for old in range(1, new):
            old_root = NAIVE.mth(0, old)
            proof = NAIVE.consistency(old, new)
            assert verify_consistency(old, new, old_root, new_root, proof)
            for desc, probe in _bad_consistency_probes(old, new, old_root, new_root, proof):
                if probe[0] < 0:
                    continue  # see the test below
                assert not verify_consistency(*probe), (old, new, desc)


def test_verify_consistency_equal_sizes() -> None:
    root = NAIVE.mth(0, 5)
    assert verify_consistency(5, 5, root, root, [])
    assert not verify_consistency(5, 5, root, SOME_HASH, [])
    assert not verify_consistency(5, 5, root, root, [root])
    assert not verify_consistency(5, 5, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])


@pytest.mark.parametrize(("old", "new"), [(0, 0), (0, 1), (0, 8), (1, 0), (2, 1), (9, 8)])
def test_verify_consistency_rejects_impossible_sizes(old: int, new: int) -> None:
    # old == 0 is refused (nothing to be consistent with); old > new is time travel.
    for old_root, new_root in [(EMPTY_ROOT, EMPTY_ROOT), (EMPTY_ROOT, NAIVE.mth(0, max(new, 1)))]:
        assert not verify_consistency(old, new, old_root, new_root, [])
        assert not verify_consistency(old, new, old_root, new_root, [EMPTY_ROOT])
    if 0 < new < old:
        # even with the genuine proof in the other direction
        proof = NAIVE.consistency(new, old)
        assert not verify_consistency(old, new, NAIVE.mth(0, old), NAIVE.mth(0, new), proof)


def test_verify_consistency_rejects_negative_old_size() -> None:
    # given: a forged 'proof' that a tree of size -1 whose root is MTH(D[0:3]) grew into D[0:4]
    h = [_leaf(d) for d in DATA[:4]]
    forged = [h[2], h[3], _node(h[0], h[1])]
    # then
    assert not verify_consistency(-1, 4, NAIVE.mth(0, 3), NAIVE.mth(0, 4), forged)
