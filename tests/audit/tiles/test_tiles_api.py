"""/tlog/: the tree as C2SP tlog-tiles. Hash tiles equal the tree the ledger's entries define (computed here
independently of the stored nodes), entry bundles hash to the leaves, caching, 404 beyond the tree, who may read
what, the reads on the record, and a bounded number of queries whatever the ledger's size."""
from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import override_settings

from audit import offline_verify, selectors
from audit.canonical import leaf_hash
from audit.models import Entry, PendingEntry
from audit.offline_verify import TileClient, TileTree, tile_path
from tests.api.helpers import problem_of, writes_no_ledger
from tests.audit.tiles.helpers import SIZE, grow_to, grown_and_signed, leaves, mth, parse_bundle

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]

T = "/tlog/"


def hashes_of(data: bytes) -> list[bytes]:
    assert len(data) % 32 == 0
    return [data[i:i + 32] for i in range(0, len(data), 32)]


def accesses() -> list[dict[str, Any]]:
    rows = PendingEntry.objects.filter(event_type="ledger.accessed").order_by("id")
    return [{"actor": f"{r.actor_type}:{r.actor_id}", "subject": f"{r.subject_type}:{r.subject_id}",
             **json.loads(r.payload_json)} for r in rows]


@pytest.fixture
def tree(people: Any, isolated_key: Any) -> int:
    """A ledger of SIZE entries, checkpointed at SIZE."""
    return grown_and_signed(SIZE)


@pytest.fixture
def reader(token_for: Any) -> Any:
    return token_for(["ledger:read"])


# --- the tiles are the tree ---------------------------------------------------------------------------------


def test_level_0_tiles_are_the_leaf_hashes_full_and_partial(tree: int, reader: Any) -> None:
    expected = leaves()
    for n in range(3):
        response = reader.get(T + tile_path(0, n))
        assert response.status_code == 200
        assert response["Content-Type"] == "application/octet-stream"
        assert hashes_of(response.content) == expected[n * 256:(n + 1) * 256]
    partial = reader.get(T + tile_path(0, 3, 17))
    assert hashes_of(partial.content) == expected[768:785]
    # any width the tree already has is the same prefix (the bytes never change)
    assert reader.get(T + tile_path(0, 3, 5)).content == partial.content[:5 * 32]


def test_a_level_1_tile_holds_the_roots_of_the_full_level_0_tiles(tree: int, reader: Any) -> None:
    expected = leaves()
    response = reader.get(T + tile_path(1, 0, 3))
    assert response.status_code == 200
    assert hashes_of(response.content) == [mth(expected[n * 256:(n + 1) * 256]) for n in range(3)]
    # the partial level-0 tile is never hashed into the level above
    assert reader.get(T + tile_path(1, 0, 4)).status_code == 404


class _TestClientTiles(TileClient):
    """verify.py's tile reader over Django's test client (the live-server tests use real HTTP)."""

    def __init__(self, client: Any) -> None:
        super().__init__("http://testserver/tlog/")
        self.client = client

    def get(self, path: str, max_bytes: int, *, missing_ok: bool = False) -> bytes | None:
        response = self.client.get(T + path)
        assert response.status_code == 200, (path, response.status_code)
        self.fetched += 1
        return bytes(response.content)


def test_verify_py_computes_the_ledgers_roots_and_proofs_from_the_tiles(tree: int, reader: Any) -> None:
    tiles = TileTree(_TestClientTiles(reader), SIZE)
    assert tiles.mth(0, SIZE) == selectors.tree_root(SIZE) == mth(leaves())
    for seq in (0, 255, 256, 511, 700, 767, 768, 784):
        proof = selectors.inclusion_proof(seq=seq, tree_size=SIZE)
        assert tiles.inclusion(seq) == proof.path
        assert offline_verify.verify_inclusion(seq, SIZE, proof.leaf_hash, tiles.inclusion(seq), proof.root)
    for old in (1, 255, 256, 300, 512, 784):
        assert tiles.consistency(old) == selectors.consistency_proof(old_size=old, new_size=SIZE).path
    # every tile fetched once: 4 at level 0, 1 at level 1
    assert tiles.client.fetched == 5


def test_entry_bundles_are_the_canonical_bodies_and_hash_to_the_level_0_tile(tree: int, reader: Any) -> None:
    for n, width in ((0, 256), (2, 256), (3, 17)):
        bundle = reader.get(T + tile_path("entries", n, width))
        assert bundle.status_code == 200 and bundle["Content-Type"] == "application/octet-stream"
        bodies = parse_bundle(bundle.content)
        assert len(bodies) == width
        tile = hashes_of(reader.get(T + tile_path(0, n, width)).content)
        assert [leaf_hash(b) for b in bodies] == tile
        first = Entry.objects.get(seq=n * 256)
        assert bodies[0] == first.canonical_body()


# --- caching ------------------------------------------------------------------------------------------------


def test_full_tiles_are_immutable_partial_ones_short_lived_and_private_unless_published(tree: int,
                                                                                      reader: Any) -> None:
    assert reader.get(T + tile_path(0, 0))["Cache-Control"] == "private, max-age=31536000, immutable"
    assert reader.get(T + tile_path(0, 3, 17))["Cache-Control"] == "private, max-age=60"
    assert reader.get(T + tile_path("entries", 0))["Cache-Control"] == "private, max-age=31536000, immutable"
    assert reader.get(T + "checkpoint")["Cache-Control"] == "no-store"
    with override_settings(LEDGER_TILES_PUBLIC=True):
        assert reader.get(T + tile_path(0, 0))["Cache-Control"] == "public, max-age=31536000, immutable"
        assert reader.get(T + tile_path(1, 0, 3))["Cache-Control"] == "public, max-age=60"
        assert reader.get(T + "checkpoint")["Cache-Control"] == "public, max-age=5"
        # entry bundles are ledger content: never for a shared cache, published tiles or not
        assert reader.get(T + tile_path("entries", 0))["Cache-Control"] == "private, max-age=31536000, immutable"


def test_a_tile_beyond_the_tree_is_a_404_no_cache_may_keep(tree: int, reader: Any) -> None:
    for path in (tile_path(0, 4), tile_path(0, 3), tile_path(0, 3, 18), tile_path(1, 0), tile_path(1, 1, 1),
                 tile_path(2, 0, 1), tile_path("entries", 3), tile_path("entries", 3, 18), tile_path("entries", 4, 1)):
        response = reader.get(T + path)
        assert response.status_code == 404, path
        assert response["Cache-Control"] == "no-store", path
        problem_of(response)
    # ... and once the tree has grown there, it is served
    grow_to(4 * 256)
    assert reader.get(T + tile_path(0, 3)).status_code == 200
    assert reader.get(T + tile_path(1, 0, 4)).status_code == 200


@pytest.mark.parametrize("path", [
    "tile/0/x000/000", "tile/0/0", "tile/0/000.p/256", "tile/0/000.p/0", "tile/64/000", "tile/data/000",
    "tile/entries/000.p/256", "tile/entries/entries/000", "tile/8/000.p/1", "tile/7/x999/x999/x999/x999/x999/999",
    "tile/entries/x999/x999/x999/x999/x999/x999/999", "tile/0/x144/x115/x188/x075/x855/x871/x000/000",
    "tile/", "tiles/0/000", "checkpoint/x",
])
def test_malformed_or_impossible_tiles_are_404_never_500(tree: int, reader: Any, path: str) -> None:
    # the huge indexes would overflow the 64-bit node keys and seq: refused before any query
    with writes_no_ledger():
        response = reader.get(T + path)
    assert response.status_code == 404, path
    problem_of(response)


def test_no_checkpoint_yet_is_a_404(people: Any, reader: Any, isolated_key: Any) -> None:
    response = reader.get(T + "checkpoint")
    assert response.status_code == 404 and response["Cache-Control"] == "no-store"


def test_the_checkpoint_is_the_latest_signed_note_with_its_cosignatures(tree: int, reader: Any) -> None:
    response = reader.get(T + "checkpoint")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    latest = selectors.latest_checkpoint()
    assert latest is not None
    assert response.content.decode() == reader.get("/api/v1/ledger/checkpoint").content.decode()
    assert response.content.decode().startswith(latest.note)


# --- who may read what --------------------------------------------------------------------------------------


def test_by_default_the_tiles_need_a_ledger_reader(tree: int, people: Any, as_user: Any, token_for: Any) -> None:
    tile, bundle, checkpoint = T + tile_path(0, 0), T + tile_path("entries", 0), T + "checkpoint"
    for who, client in {"infosec": as_user(people.infosec), "auditor": as_user(people.auditor),
                        "token": token_for(["ledger:read"])}.items():
        assert [client.get(p).status_code for p in (checkpoint, tile, bundle)] == [200, 200, 200], who
    # the checkpoint is published to every signed-in person (as /api/v1/ledger/checkpoint); tiles and bundles not
    for who, client in {"owner": as_user(people.owner), "outsider": as_user(people.outsider)}.items():
        assert [client.get(p).status_code for p in (checkpoint, tile, bundle)] == [200, 403, 403], who
    wrong_scope = token_for(["events:write"])
    assert [wrong_scope.get(p).status_code for p in (checkpoint, tile, bundle)] == [403, 403, 403]
    anonymous = as_user(None)
    for path in (checkpoint, tile, bundle):
        response = anonymous.get(path)
        assert response.status_code == 401, path
        assert b"\x00" not in response.content and problem_of(response)["status"] == 401


@override_settings(LEDGER_TILES_PUBLIC=True)
def test_published_tiles_are_for_anyone_but_entry_bundles_still_need_a_ledger_reader(
        tree: int, people: Any, as_user: Any, token_for: Any) -> None:
    anonymous = as_user(None)
    assert anonymous.get(T + "checkpoint").status_code == 200
    assert anonymous.get(T + tile_path(0, 1)).content == b"".join(leaves(256, 512))
    with writes_no_ledger():
        assert anonymous.get(T + tile_path("entries", 0)).status_code == 401
    assert as_user(people.owner).get(T + tile_path("entries", 0)).status_code == 403
    assert token_for(["events:write"]).get(T + tile_path("entries", 0)).status_code == 403
    # published: nobody's tile reads are recorded, not even a known reader's
    assert as_user(people.auditor).get(T + tile_path(0, 1)).status_code == 200
    assert accesses() == []


# --- on the record ------------------------------------------------------------------------------------------


def test_entry_bundles_are_recorded_once_per_reader_and_window(tree: int, people: Any, reader: Any,
                                                              as_user: Any) -> None:
    for n in range(3):
        assert reader.get(T + tile_path("entries", n)).status_code == 200
    assert as_user(people.auditor).get(T + tile_path("entries", 3, 17)).status_code == 200
    assert accesses() == [
        {"actor": "service:pipeline", "subject": "ledger:entries", "view": "tlog-entries", "channel": "api",
         "filter": {"tile": "000"}, "covers": "principal", "window_seconds": 300},
        {"actor": f"user:{people.auditor.pk}", "subject": "ledger:entries", "view": "tlog-entries", "channel": "api",
         "filter": {"tile": "003.p/17"}, "covers": "principal", "window_seconds": 300},
    ]


def test_hash_tiles_are_recorded_as_proofs_and_the_checkpoint_not_at_all(tree: int, reader: Any) -> None:
    reader.get(T + "checkpoint")
    for n in range(3):
        reader.get(T + tile_path(0, n))
    assert [(a["view"], a["subject"], a["filter"]) for a in accesses()] == [
        ("tlog-tile", "ledger:proofs", {"tile": "0/000"})]


def test_refused_and_missing_reads_are_no_accesses(tree: int, people: Any, as_user: Any, reader: Any) -> None:
    with writes_no_ledger():
        assert as_user(None).get(T + tile_path("entries", 0)).status_code == 401
        assert reader.get(T + tile_path("entries", 9)).status_code == 404
        assert reader.get(T + tile_path(0, 9)).status_code == 404
    # someone signed in and refused: no read (nothing was served), but an invalid access attempt on the record
    assert as_user(people.owner).get(T + tile_path("entries", 0)).status_code == 403
    assert accesses() == []
    denied = PendingEntry.objects.filter(event_type="access.check_denied").values_list("actor_id", flat=True)
    assert list(denied) == [str(people.owner.pk)]


def test_an_entry_too_large_for_a_bundle_refuses_that_bundle_whole(people: Any, reader: Any,
                                                                   isolated_key: Any) -> None:
    # A body over 65,535 bytes cannot be length-prefixed with a uint16: never truncated, never served wrong.
    from tests.audit.integration.helpers import note

    grow_to(256 + 10)
    note("x" * 70_000, subject="model/huge")
    from audit import ledger

    ledger.integrate()
    huge = selectors.ledger_size() - 1
    grow_to(2 * 256)
    with writes_no_ledger():
        response = reader.get(T + tile_path("entries", 1))
    assert response.status_code == 409 and response["Cache-Control"] == "no-store"
    assert f"entry {huge} is" in problem_of(response)["detail"]
    # the hash tiles are not affected, and the other bundles neither
    assert hashes_of(reader.get(T + tile_path(0, 1)).content)[huge - 256] == leaves(huge, huge + 1)[0]
    assert reader.get(T + tile_path("entries", 0)).status_code == 200


# --- bounded queries ----------------------------------------------------------------------------------------


def test_a_tile_or_a_bundle_costs_the_same_few_queries_whatever_the_ledger(
        tree: int, reader: Any, django_assert_max_num_queries: Any, django_assert_num_queries: Any) -> None:
    reader.get(T + tile_path("entries", 0))  # the reader's window is open: what follows is reads only
    reader.get(T + tile_path(0, 0))
    # token authentication (1), then the tile's nodes by primary key (1); the window is in the cache
    with django_assert_num_queries(2):
        assert reader.get(T + tile_path(0, 2)).status_code == 200
    with django_assert_num_queries(2):
        assert reader.get(T + tile_path(1, 0, 3)).status_code == 200
    with django_assert_num_queries(2):
        assert reader.get(T + tile_path("entries", 2)).status_code == 200
    with django_assert_num_queries(3):
        assert reader.get(T + "checkpoint").status_code == 200  # the token, the checkpoint, its cosignatures
    # beyond the tree: one query as well, never a scan
    with django_assert_max_num_queries(2):
        assert reader.get(T + tile_path(0, 9)).status_code == 404


# --- static copies ------------------------------------------------------------------------------------------


def test_tlog_tiles_writes_the_same_files_the_server_serves(tree: int, reader: Any, tmp_path: Any) -> None:
    from io import StringIO

    from django.core.management import call_command

    out = tmp_path / "tlog"
    call_command("tlog_tiles", "--out", str(out), stdout=StringIO())
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["checkpoint", "tile/0/000", "tile/0/001", "tile/0/002", "tile/0/003.p/17", "tile/1/000.p/3"]
    for name in written:
        assert (out / name).read_bytes() == reader.get(T + name).content, name
    # entry bundles are ledger content: never written to a directory anyone may serve
    assert not (out / "tile" / "entries").exists()
    # a second run keeps the full tiles (immutable) and rewrites the rest
    stdout = StringIO()
    call_command("tlog_tiles", "--out", str(out), stdout=stdout)
    assert "2 tile(s) written, 3 full tile(s) already there" in stdout.getvalue()
