"""Tile paths and tile sets as c2sp.org/tlog-tiles specifies them (the spec's own examples), both sides: the
encoding verify.py uses and the strict parsing the server does (one canonical path per tile)."""
from __future__ import annotations

import pytest

from audit.offline_verify import tile_path
from audit.tiles import TILE_WIDTH, Tile, parse_tile_path, tiles_for_size


@pytest.mark.parametrize(("level", "index", "width", "path"), [
    (0, 1234067, 256, "tile/0/x001/x234/067"),  # the spec's example
    (0, 0, 256, "tile/0/000"),
    (1, 999, 256, "tile/1/999"),
    (2, 1000, 256, "tile/2/x001/000"),
    (0, 5, 112, "tile/0/005.p/112"),
    ("entries", 1234067, 7, "tile/entries/x001/x234/067.p/7"),
    (63, 10**9, 1, "tile/63/x001/x000/x000/000.p/1"),
])
def test_tile_paths_are_encoded_as_the_spec_says(level: int | str, index: int, width: int, path: str) -> None:
    assert tile_path(level, index, width) == path
    parsed = parse_tile_path(path.removeprefix("tile/"))
    assert parsed == Tile(None if level == "entries" else int(level), index, width)
    assert parsed.path == path


@pytest.mark.parametrize("bad", [
    "0/1234067",  # not in groups of three
    "0/x000/067",  # a leading zero group: a second name for tile 67
    "0/001/234",  # all but the last group start with x
    "0/x001/x234",  # the last one does not
    "00/000", "64/000", "-1/000", "data/000",  # levels 0..63 without leading zeros; "entries" for bundles
    "0/000.p/0", "0/000.p/256", "0/000.p/007", "0/000.p/", "0/000.p",  # widths 1..255, no leading zeros
    "0/000/", "0/000.p/5/", "/0/000", "0/0000", "0/00", "0/x1/000",
])
def test_anything_else_is_not_a_tile(bad: str) -> None:
    assert parse_tile_path(bad) is None


def test_the_tiles_of_a_tree_of_70000_are_the_specs() -> None:
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0 tile of width
    # 112, one full level 1 tile, one partial level 1 tile of width 17, and one partial level 2 tile of width 1"
    tiles = list(tiles_for_size(70_000))
    by_level = {level: [t for t in tiles if t.level == level] for level in (0, 1, 2)}
    assert len(tiles) == 273 + 1 + 1 + 1 + 1
    assert [t.width for t in by_level[0]] == [TILE_WIDTH] * 273 + [112]
    assert [t.width for t in by_level[1]] == [TILE_WIDTH, 17]
    assert by_level[2] == [Tile(2, 0, 1)]


def test_a_tree_of_256_is_one_full_tile_and_a_partial_one_above() -> None:
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile of width 1"
    assert list(tiles_for_size(256)) == [Tile(0, 0, TILE_WIDTH), Tile(1, 0, 1)]
    assert list(tiles_for_size(0)) == []
