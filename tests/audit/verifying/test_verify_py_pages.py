"""verify.py's pages give the line-by-line code's report, in one process and with the proof worker.

``page_of`` takes a block of entries.jsonl at once and ``ProofPages`` the proofs of whole tiles; whatever
they cannot show fine goes to the line-by-line code (the block), or redoes the whole pass with it (a proof).
Over a corpus of damaged bundles (each kind of tampering, each kind of non-canonical payload with the
hashes recomputed so that only the JSON check can tell, damaged proofs and checkpoints, lines moved) the
report must be the same as that code's alone (``BundleVerifier.pages = False``): same verdict, same
failures in the same order, same counts, with ``--jobs 1`` and ``--jobs 2``.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from audit import ledger, offline_verify
from audit.models import PendingEntry
from audit.services import checkpoints
from audit.signing import current_verifier_key
from tests.audit.export.helpers import Export, bulk, members, rezip
from tests.audit.integration.helpers import ALICE, tamper
from tests.audit.verifying.test_verify_ledger_paths import NOT_CANONICAL

pytestmark = pytest.mark.django_db


@pytest.fixture
def bundle(db: None, isolated_key: Path, export: Export, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A whole-ledger bundle of about 1,100 entries (four full tiles) over seven subjects; blocks of
    about ten lines, so that a bundle has many pages."""
    bulk(300, subjects=7)
    checkpoints.checkpoint_create()
    bulk(800, subjects=7, prefix="later")
    checkpoints.checkpoint_create()
    monkeypatch.setattr(offline_verify, "_BLOCK", 4096)
    return export()


def reports(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The report of the line-by-line code alone, then with pages in one process and in two."""
    keys = [current_verifier_key()]
    out = []
    for pages, jobs in ((False, 1), (True, 1), (True, 2)):
        monkeypatch.setattr(offline_verify.BundleVerifier, "pages", pages)
        out.append(offline_verify.verify_bundle(str(path), keys, jobs=jobs).as_dict())
    return out


def line_of(lines: list[bytes], seq: int) -> int:
    return next(i for i, line in enumerate(lines) if json.loads(line)["body"]["seq"] == seq)


def rehashed(body: bytes) -> bytes:
    """An entry line for ``body`` as written, its entry_hash recomputed (what a careful forger writes)."""
    return b'{"body":' + body + b',"entry_hash":"' + hashlib.sha256(b"\x00" + body).hexdigest().encode() + b'"}'


def body_of(line: bytes) -> bytes:
    return line[8:-81]


def edit(seq: int, change: Callable[[bytes], bytes]) -> Callable[[dict[str, list[bytes]]], None]:
    def apply(files: dict[str, list[bytes]]) -> None:
        lines = files["entries.jsonl"]
        i = line_of(lines, seq)
        lines[i] = change(lines[i])
    return apply


def with_payload(payload: str) -> Callable[[bytes], bytes]:
    def change(line: bytes) -> bytes:
        body = body_of(line)
        start, end = body.index(b',"payload":') + 11, body.rindex(b',"prev_hash":"')
        return rehashed(body[:start] + payload.encode() + body[end:])
    return change


def replace(old: bytes, new: bytes, *, rehash: bool = True) -> Callable[[bytes], bytes]:
    def change(line: bytes) -> bytes:
        assert old in line
        changed = line.replace(old, new, 1)
        return rehashed(body_of(changed)) if rehash else changed
    return change


def swap(a: int, b: int, name: str = "entries.jsonl") -> Callable[[dict[str, list[bytes]]], None]:
    def apply(files: dict[str, list[bytes]]) -> None:
        lines = files[name]
        lines[a], lines[b] = lines[b], lines[a]
    return apply


def wrong_proof(index: int, element: int = 0) -> Callable[[dict[str, list[bytes]]], None]:
    def apply(files: dict[str, list[bytes]]) -> None:
        proof = json.loads(files["proofs.jsonl"][index])
        h = proof["inclusion"][element]
        proof["inclusion"][element] = ("0" if h[0] != "0" else "1") + h[1:]
        files["proofs.jsonl"][index] = json.dumps(proof, separators=(",", ":")).encode()
    return apply


def proofs_cut(keep: int) -> Callable[[dict[str, list[bytes]]], None]:
    def apply(files: dict[str, list[bytes]]) -> None:
        del files["proofs.jsonl"][keep:]
    return apply


def entry_line(index: int, new: bytes) -> Callable[[dict[str, list[bytes]]], None]:
    def apply(files: dict[str, list[bytes]]) -> None:
        files["entries.jsonl"][index] = new
    return apply


def respaced(index: int) -> Callable[[dict[str, list[bytes]]], None]:
    def apply(files: dict[str, list[bytes]]) -> None:
        obj = json.loads(files["entries.jsonl"][index])
        files["entries.jsonl"][index] = json.dumps(obj, sort_keys=True).encode()
    return apply


def insert(index: int, new: bytes, name: str = "entries.jsonl") -> Callable[[dict[str, list[bytes]]], None]:
    def apply(files: dict[str, list[bytes]]) -> None:
        files[name].insert(index, new)
    return apply


CORPUS: dict[str, Callable[[dict[str, list[bytes]]], None]] = {
    "edited timestamp": edit(700, replace(b'"timestamp":"2', b'"timestamp":"1', rehash=False)),
    "edited payload, rehashed": edit(300, with_payload('{"text":"forged"}')),
    "broken chain link, rehashed": edit(512, replace(b'"prev_hash":"', b'"prev_hash":"0', rehash=True)),
    "subject link, rehashed": edit(900, replace(b'"subject_prev":', b'"subject_prev":1', rehash=True)),
    "payload holding the prev_hash marker": edit(600, with_payload('{"a":1,"prev_hash":"x"}')),
    "reordered entry lines": swap(400, 401),
    "entry moved far": swap(10, 1000),
    "duplicate entry line": lambda files: files["entries.jsonl"].insert(257, files["entries.jsonl"][256]),
    "blank line": insert(333, b""),
    "not an entry line": entry_line(640, b'{"body": "nonsense"}'),
    "line in another layout": respaced(777),
    "no final newline": lambda files: None,
    "wrong proof, first of a tile": wrong_proof(512),
    "wrong proof, inside a tile": wrong_proof(700, 3),
    "wrong proof, shared upper part": wrong_proof(900, 9),
    "wrong proof, last entry": wrong_proof(-1),
    "proofs out of order": swap(600, 601, "proofs.jsonl"),
    "truncated proofs file": proofs_cut(800),
    "extra proof line": lambda files: files["proofs.jsonl"].append(files["proofs.jsonl"][-1]),
    "proof in another layout": lambda files: files["proofs.jsonl"].__setitem__(
        5, json.dumps(json.loads(files["proofs.jsonl"][5])).encode()),
    "bad checkpoint signature": lambda files: None,
    **{f"non-canonical payload: {name}": edit(450, with_payload(payload)) for name, payload in NOT_CANONICAL.items()},
}

# Odd but harmless: skipped, or read another way, by the line-by-line code too.
STILL_VERIFIES = {"no final newline", "blank line", "proof in another layout"}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_pages_give_the_line_by_line_report_on_damaged_bundles(
        bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    files = members(bundle)
    split = {name: files[name].split(b"\n")[:-1] for name in ("entries.jsonl", "proofs.jsonl")}
    CORPUS[case](split)
    changes: dict[str, bytes | None] = {name: b"\n".join(lines) + b"\n" for name, lines in split.items()}
    if case == "no final newline":
        changes["entries.jsonl"] = b"\n".join(split["entries.jsonl"])
    if case == "bad checkpoint signature":
        note = files["checkpoint.txt"].decode()
        head, signature = note.rsplit(" ", 1)
        changes["checkpoint.txt"] = f"{head} {'A' if signature[0] != 'A' else 'B'}{signature[1:]}".encode()
    damaged = rezip(bundle, tmp_path / "damaged.zip", changes)

    careful, pages, worker = reports(damaged, monkeypatch)

    assert pages == careful
    assert worker == careful
    assert careful["ok"] == (case in STILL_VERIFIES), careful["failures"]


def test_a_genuine_bundle_is_taken_by_pages_with_the_same_report(
        bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[int] = []
    original = offline_verify.page_of

    def spy(block: bytes, count: int, hashed: bool = True) -> offline_verify.Page | None:
        page = original(block, count, hashed)
        taken.append(count if page is not None else 0)
        return page

    monkeypatch.setattr(offline_verify, "page_of", spy)

    careful, pages, worker = reports(bundle, monkeypatch)

    assert pages == careful == worker and careful["ok"] and careful["entries"] > 1100
    assert sum(taken) > 2 * 1000  # the pages passes took nearly every entry


@pytest.mark.parametrize("payload", ['{"n":1.5}', '{"\ue000":1}', '{"text":"caf\u00e9"}', '{"a":{"b":[1,{}]}}'])
def test_page_of_takes_only_what_it_shows_canonical(payload: str) -> None:
    body = (b'{"actor":{"id":"1","type":"user"},"event_type":"ledger.note_added","payload":' + payload.encode()
            + b',"prev_hash":"' + b"0" * 64 + b'","seq":0,"subject":{"id":"m","type":"model_version"},'
            b'"subject_prev":null,"timestamp":"2026-01-01T00:00:00.000000Z"}')
    line = rehashed(body) + b"\n"

    page = offline_verify.page_of(line, 1)

    # taken exactly when the one-line fast check takes it (floats and U+E000 names go to the exact check)
    assert (page is not None) == (offline_verify.fast_entry(body, b"h") is not None)
    assert offline_verify.page_of(line.replace(b'"seq":0', b'"seq":00'), 1) is None
    assert offline_verify.page_of(line + line[:-1], 2) is None  # the last line has no newline


# --- bodies the ledger itself wrote wrong: proven in the tree, only the JSON check can tell ----------------------

@pytest.mark.parametrize("name", sorted(NOT_CANONICAL))
def test_pages_give_the_line_by_line_report_on_non_canonical_bodies_the_ledger_proves(
        db: None, isolated_key: Path, export: Export, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    # given: a payload changed while it waited to be sequenced, so the chain and the tree are built over it
    with transaction.atomic():
        ledger.record_many([
            ledger.Event("ledger.note_added", ALICE, ledger.Subject("model_version", f"model/{i % 7}"),
                         {"text": f"note {i}"})
            for i in range(700)
        ])
    pending = PendingEntry.objects.order_by("id").values_list("id", flat=True)[450]
    tamper(f"UPDATE {PendingEntry._meta.db_table} SET payload_json = %s WHERE id = %s", [NOT_CANONICAL[name], pending])
    ledger.integrate()
    checkpoints.checkpoint_create()
    monkeypatch.setattr(offline_verify, "_BLOCK", 4096)
    bundle = export()

    careful, pages, worker = reports(bundle, monkeypatch)

    assert pages == careful
    assert worker == careful
    # (verify.py reads 5e-324 as its own RFC 8785 form and does not ask a payload to be an object)
    assert careful["ok"] == (name in {"denormal", "not an object"}), careful["failures"]
