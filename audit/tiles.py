"""The Merkle tree as C2SP tlog-tiles (c2sp.org/tlog-tiles): hash tiles and entry bundles, read from storage.

Every perfect subtree is stored once (``MerkleNode``, keyed ``index << 6 | level``), so the ``i``-th hash of
tile ``N`` at tile level ``L`` is simply the stored node ``(8L, N*256 + i)``: a tile is one indexed query
for at most 256 primary keys, never a scan. A tile exists exactly when all its nodes do (a node of level
``8L`` and index ``j`` is stored once the tree holds ``(j + 1) * 256**L`` leaves), so "beyond the tree" is
known from the same query. Nodes and entries are append-only, so a tile's bytes never change once
servable: a full tile is immutable, and a partial tile of width W is the first W hashes of the full one.

Entry bundles hold each entry's canonical body (the RFC 9162 leaf data: ``entry_hash = SHA-256(0x00 ||
body)``) behind a big-endian uint16 length. A body longer than 65,535 bytes cannot be written so; its
bundle is refused (``EntryTooLarge``) rather than served wrong or truncated; the entry and its proofs stay
available through ``/api/v1/ledger/…``, and its hash tiles are unaffected.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from audit.merkle import node_key
from audit.models import Entry, MerkleNode
from audit.offline_verify import HASH_SIZE, TILE_HEIGHT, TILE_WIDTH, tile_path

__all__ = ["TILE_HEIGHT", "TILE_WIDTH", "EntryTooLarge", "Tile", "entry_bundle", "hash_tile", "parse_tile_path",
           "tile_path", "tiles_for_size"]

MAX_ENTRY_BYTES = 0xFFFF
# seq and node keys are signed 64-bit columns: nothing at or past 2**63 leaves can exist (and asking for it
# must be a 404, not a database overflow).
_LEAF_LIMIT = 1 << 63

# <L or "entries">/<N>[.p/<W>], N canonical: groups of three digits, all but the last prefixed with x, no
# leading x000 group (one path per tile: caches and static copies never hold two names for one tile).
_PATH = re.compile(
    r"(?P<level>entries|0|[1-9][0-9]?)/(?P<index>(?:x[0-9]{3}/)*[0-9]{3})(?:\.p/(?P<width>[1-9][0-9]{0,2}))?")


@dataclass(frozen=True)
class Tile:
    """A tile named by a request: ``level`` None for an entry bundle; ``width`` 256 for a full tile."""

    level: int | None
    index: int
    width: int

    @property
    def partial(self) -> bool:
        return self.width < TILE_WIDTH

    @property
    def path(self) -> str:
        return tile_path("entries" if self.level is None else self.level, self.index, self.width)


def parse_tile_path(path: str) -> Tile | None:
    """The tile at ``path`` (what follows ``tile/``), or None when it is not a canonical tile path of the spec
    (the level 0 to 63, no leading zeros; N in zero-padded groups; W from 1 to 255)."""
    match = _PATH.fullmatch(path)
    if match is None:
        return None
    groups = match["index"].split("/")
    if len(groups) > 1 and groups[0] == "x000":
        return None
    index = int("".join(g.lstrip("x") for g in groups))
    width = int(match["width"]) if match["width"] else TILE_WIDTH
    level = None if match["level"] == "entries" else int(match["level"])
    if (match["width"] and width >= TILE_WIDTH) or (level is not None and level > 63):
        return None  # a partial tile is 1 to 255 wide; a full one has no .p/
    return Tile(level, index, width)


def tiles_for_size(size: int) -> Iterator[Tile]:
    """Every hash tile of the tree of ``size`` leaves, level by level: the full ones, then the partial one
    (width ``floor(size / 256**L) mod 256``) when there is one. Entry bundles are the level-0 tiles' twins."""
    level = 0
    while count := size >> (TILE_HEIGHT * level):
        full, rest = divmod(count, TILE_WIDTH)
        for index in range(full):
            yield Tile(level, index, TILE_WIDTH)
        if rest:
            yield Tile(level, full, rest)
        level += 1


def _within_limits(tile: Tile) -> bool:
    level = tile.level or 0
    return (tile.index * TILE_WIDTH + tile.width) << (TILE_HEIGHT * level) <= _LEAF_LIMIT


def hash_tile(tile: Tile) -> bytes | None:
    """The tile's ``width`` hashes (32 bytes each), or None when the tree does not have them all yet.

    One query (the nodes by primary key); none for a tile no tree of 2**63 leaves could hold.
    """
    assert tile.level is not None
    if not _within_limits(tile):
        return None
    level = TILE_HEIGHT * tile.level
    first = tile.index * TILE_WIDTH
    keys = [node_key(level, first + i) for i in range(tile.width)]
    rows = dict(MerkleNode.objects.filter(key__in=keys).values_list("key", "hash"))
    if len(rows) != tile.width:
        return None
    data = b"".join(bytes(rows[k]) for k in keys)
    if len(data) != tile.width * HASH_SIZE:  # a stored hash that is not 32 bytes: never served as a tile
        raise ValueError(f"tile {tile.path}: a stored node is not a 32-byte hash")
    return data


class EntryTooLarge(ValueError):
    """An entry's canonical body is longer than an entry bundle's uint16 length can say."""

    def __init__(self, seq: int, size: int) -> None:
        super().__init__(
            f"entry {seq} is {size:,} bytes, more than an entry bundle can hold ({MAX_ENTRY_BYTES:,}): this bundle "
            f"cannot be served; read the entry at /api/v1/ledger/entries/{seq} (its hash tiles are served as usual)")
        self.seq = seq
        self.size = size


def entry_bundle(tile: Tile) -> bytes | None:
    """The bundle's entries, each as ``uint16 big-endian length || canonical body``; None when the ledger does
    not hold all ``width`` of them yet. One query. Raises ``EntryTooLarge`` (nothing is served)."""
    assert tile.level is None
    if not _within_limits(tile):
        return None
    first = tile.index * TILE_WIDTH
    entries = list(Entry.objects.filter(seq__gte=first, seq__lt=first + tile.width).order_by("seq").only(
        "seq", "timestamp", "event_type", "actor_type", "actor_id", "subject_type", "subject_id", "payload_json",
        "prev_hash", "subject_prev", "request_id"))
    if len(entries) != tile.width:
        return None
    out = bytearray()
    for entry in entries:
        body = entry.canonical_body()
        if len(body) > MAX_ENTRY_BYTES:
            raise EntryTooLarge(entry.seq, len(body))
        out += len(body).to_bytes(2, "big") + body
    return bytes(out)
