"""verify_ledger's fast paths give the careful path's verdict, in one process and in two.

``_Checker`` checks a page of rows column by column, a row by cheaper means, or a row exactly as
specified (``careful``); ``jobs=2`` checks the later half in a second process. Over a corpus of
damaged ledgers (each kind of tampering, each kind of non-canonical payload, with the hashes
recomputed so that only the JSON check can tell) every path must give the same result: the same
verdict, the same first bad seq, reason and detail, the same counts, root and warnings.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from audit import verification
from audit.canonical import body_bytes, canonical_json
from audit.models import Entry
from audit.services import checkpoints
from audit.verification import Anchor, _entries, _verify, trusted_keys, verify_ledger
from tests.audit.integration.helpers import fill, tamper
from tests.audit.integration.test_tampering import rewrite_from

# Payloads written with the triggers off (hash and chain recomputed): none is exactly canonical,
# duplicate-free JSON, each in its own way.
NOT_CANONICAL = {
    "space": '{"text": "x"}',
    "unsorted": '{"text":"x","reference":"y"}',
    "duplicate": '{"text":"x","text":"y"}',
    "needless escape": '{"text":"\\u0041"}',
    "escaped slash": '{"text":"a\\/b"}',
    "uppercase escape": '{"text":"\\u001F"}',
    "exponent 1e21": '{"n":1e21}',
    "negative zero": '{"n":-0.0}',
    "integral float": '{"n":1.0}',
    "denormal": '{"n":5e-324}',
    "big integer": '{"n":9007199254740993}',
    "minus zero integer": '{"n":-0}',
    "escaped lone surrogate": '{"text":"\\ud800"}',
    "U+E000 after astral": '{"\ue000":1,"\U0001f600":2}',
    "not an object": '["text"]',
    "not JSON": '{"text":',
    "NaN": '{"n":NaN}',
    "trailing text": '{"text":"x"} ',
}
# Canonical payloads the fast page check leaves to the others (exponents, astral keys, escapes...).
UNUSUAL_BUT_CANONICAL = [
    {"n": 1e21}, {"n": 5e-324}, {"n": -1.5}, {"f": 0.1}, {"text": "line\nbreak \"quoted\" \\ tab\t"},
    {"\U0001f600": 2, "\ue000": 1}, {"nested": {"b": [1, {"a": None}], "a": True}}, {},
    {"text": "é ü 中文 \u2028"},
]


def _ledger() -> None:
    """About 40 entries over a few subjects: plain notes, unusual but canonical payloads (written in
    their RFC 8785 form with the hashes recomputed, as no event type takes them), two checkpoints."""
    fill(12, subjects=3)
    checkpoints.checkpoint_create()
    fill(14, subjects=5, prefix="later")
    checkpoints.checkpoint_create()
    fill(12, subjects=2, prefix="last")
    # after the last checkpoint, whose root the sequencer's stored tree gave
    tail = Entry.objects.count() - len(UNUSUAL_BUT_CANONICAL) - 1
    for i, payload in enumerate(UNUSUAL_BUT_CANONICAL):
        rewrite_from(tail + i, payload_json=canonical_json(payload))
    tamper("UPDATE audit_entry SET request_id = 'req-1.a:b' WHERE seq = %s", [tail - 1])
    rewrite_from(tail - 1)


def _rehash(seq: int) -> None:
    """Recompute entry ``seq``'s hash from its (changed) fields, leaving the chain after it as it was."""
    e = Entry.objects.get(seq=seq)
    body = body_bytes(seq=e.seq, timestamp=e.timestamp, event_type=e.event_type, actor_type=e.actor_type,
                      actor_id=e.actor_id, subject_type=e.subject_type, subject_id=e.subject_id,
                      payload_json=e.payload_json, prev_hash=e.prev_hash, subject_prev=e.subject_prev,
                      request_id=e.request_id)
    tamper("UPDATE audit_entry SET entry_hash = %s WHERE seq = %s", [hashlib.sha256(b"\x00" + body).hexdigest(), seq])


def _damages() -> dict[str, Callable[[], Any]]:
    cases: dict[str, Callable[[], Any]] = {
        "intact": lambda: None,
        "tampered body": lambda: tamper("UPDATE audit_entry SET actor_id = 'mallory' WHERE seq = 17"),
        "tampered payload": lambda: tamper(
            "UPDATE audit_entry SET payload_json = '{\"text\":\"edited\"}' WHERE seq = 30"),
        "tampered payload, rehashed chain": lambda: rewrite_from(30, payload_json='{"text":"edited"}'),
        "broken chain link": lambda: (tamper("UPDATE audit_entry SET prev_hash = %s WHERE seq = 25", ["ab" * 32]),
                                      _rehash(25)),
        "broken subject link": lambda: (tamper("UPDATE audit_entry SET subject_prev = 1 WHERE seq = 33"),
                                        _rehash(33)),
        "subject link to nothing": lambda: rewrite_from(0, subject_prev=None, subject_id="brand-new"),
        "wrong root (history rewritten)": lambda: rewrite_from(5, actor_id="mallory"),
        "bad signature": lambda: tamper(
            "UPDATE audit_checkpoint SET note = replace(note, 'tree', 'tre3') "
            "WHERE id = (SELECT max(id) FROM audit_checkpoint)"),
        "truncated": lambda: tamper("DELETE FROM audit_entry WHERE seq >= (SELECT max(seq) - 2 FROM audit_entry)"),
        "missing entry": lambda: tamper("DELETE FROM audit_entry WHERE seq = 28"),
        "reordered": lambda: (tamper("UPDATE audit_entry SET seq = 1000000 WHERE seq = 20"),
                              tamper("UPDATE audit_entry SET seq = 20 WHERE seq = 21"),
                              tamper("UPDATE audit_entry SET seq = 21 WHERE seq = 1000000")),
        "lone surrogate in a field": lambda: tamper("UPDATE audit_entry SET actor_id = %s WHERE seq = 8", ["\ud800"]),
        "quote in a field": lambda: rewrite_from(9, actor_id='a"b\\c\n'),
    }
    for name, payload in NOT_CANONICAL.items():
        cases[f"payload: {name}"] = (lambda p: lambda: rewrite_from(27, payload_json=p))(payload)
    return cases


DAMAGES = _damages()


def _result(**kwargs: Any) -> dict[str, Any]:
    result = verify_ledger(**kwargs).as_dict()
    result.pop("seconds")
    return result


def _careful(lenient: bool, anchors: list[Anchor]) -> dict[str, Any]:
    result = _verify(_entries(7), trusted_keys(), None, anchors, lenient, careful=True).as_dict()
    result.pop("seconds")
    return result


def _anchors() -> list[Anchor]:
    from audit.selectors import tree_root

    return [Anchor(size=20, root=tree_root(20), source="kept"), Anchor(size=3, root=b"\x01" * 32, source="fork")]


def _apply(name: str) -> bool:
    try:
        DAMAGES[name]()
    except UnicodeEncodeError:  # SQLite stores a lone surrogate; PostgreSQL refuses it
        return False
    return True


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(DAMAGES))
@pytest.mark.parametrize("page", [4, 11, 4096])
def test_the_page_row_and_careful_paths_agree(name: str, page: int, isolated_key: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _ledger()
    anchors = _anchors()[:1]
    if not _apply(name):
        pytest.skip("this database cannot store the damage")
    monkeypatch.setattr(verification, "PAGE", page)
    for lenient in (False, True):
        careful = _careful(lenient, anchors)
        assert _result(prefetch=False, lenient=lenient, anchors=anchors, chunk=5) == careful
        assert _result(prefetch=False, lenient=lenient, anchors=anchors) == careful
    if name == "intact":
        assert careful["ok"] is True, (careful["reason"], careful["detail"])
    elif name in ("broken chain link", "broken subject link", "tampered body", "missing entry", "reordered"):
        assert careful["ok"] is False


@pytest.mark.django_db
def test_a_forked_anchor_is_the_same_failure_on_every_path(isolated_key: Path) -> None:
    _ledger()
    anchors = _anchors()
    careful = _careful(False, anchors)
    assert (careful["reason"], careful["first_bad_seq"]) == ("forked", 0)
    assert _result(prefetch=False, anchors=anchors) == careful


@pytest.mark.django_db
def test_a_subject_cache_emptied_midway_asks_the_database(isolated_key: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _ledger()
    monkeypatch.setattr(verification, "SUBJECT_CACHE", 2)
    monkeypatch.setattr(verification, "PAGE", 3)
    careful = _careful(False, [])
    assert careful["ok"] is True and _result(prefetch=False) == careful
    tamper("UPDATE audit_entry SET subject_prev = NULL WHERE seq = 33")
    _rehash(33)
    careful = _careful(False, [])
    assert (careful["reason"], careful["first_bad_seq"]) == ("broken_subject_link", 33)
    assert _result(prefetch=False) == careful


def test_the_body_format_is_body_bytes() -> None:
    rows = [
        (0, "2026-01-01T00:00:00.000000Z", "a.b", "user", "41", "model", "m/1", '{"a":1}', "0" * 64, None,
         "", None),
        (7, "2026-01-01T00:00:00.000000Z", "a.b", "user", "41", "model", "m/1", "{}", "f" * 64, 3, "", "req-1.2:x"),
    ]
    for seq, ts, et, at, aid, st, sid, pj, ph, sp, _, rid in rows:
        expected = body_bytes(seq=seq, timestamp=ts, event_type=et, actor_type=at, actor_id=aid, subject_type=st,
                              subject_id=sid, payload_json=pj, prev_hash=ph, subject_prev=sp, request_id=rid)
        plain = verification._PLAIN_BODY % (aid, at, et, pj, ph, "" if rid is None else f'"request_id":"{rid}",',
                                             seq, sid, st, "null" if sp is None else sp, ts)
        assert plain.encode() == expected
        leaf = verification._LEAF_BODY % (aid, at, et, pj, ph, "" if rid is None else f'"request_id":"{rid}",',
                                          seq, sid, st, "null" if sp is None else sp, ts)
        assert leaf.encode() == b"\x00" + expected
    # The characters the plain format may not take are exactly those encode_basestring escapes.
    for code in range(0x20000):
        char = chr(code)
        assert (verification._ESCAPED(char) is None) == (verification._quote(char) == f'"{char}"'), code
        # ... and exactly those whose UTF-8 holds a byte the page check deletes (a lone surrogate too).
        raw = char.encode("utf-8", "surrogatepass")
        assert (verification._ESCAPED(char) is None) == (raw.translate(None, verification._ESCAPED_BYTES) == raw), code


@pytest.mark.parametrize("name", list(DAMAGES))
def test_two_processes_give_the_result_of_one(name: str, committing_db: None, on_postgres: None, isolated_key: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _ledger()
    if not _apply(name):
        pytest.skip("this database cannot store the damage")
    monkeypatch.setattr(verification, "PAGE", 4)
    anchors = _anchors()[:1]
    for lenient in (False, True):
        one = _result(jobs=1, lenient=lenient, anchors=anchors)
        assert _result(jobs=2, lenient=lenient, anchors=anchors) == one
        assert _careful(lenient, anchors) == one


@pytest.mark.parametrize(("column", "value", "reason"), [("prev_hash", "ab" * 32, "broken_link"),
                                                         ("subject_prev", 0, "broken_subject_link")])
def test_the_second_process_checks_the_links_across_its_start(
    column: str, value: Any, reason: str, committing_db: None, on_postgres: None, isolated_key: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _ledger()
    monkeypatch.setattr(verification, "PAGE", 4)
    start = Entry.objects.count() // 2 // 4 * 4  # where the second process starts
    assert Entry.objects.get(seq=start).subject_prev != 0
    tamper(f"UPDATE audit_entry SET {column} = %s WHERE seq = %s", [value, start])
    _rehash(start)

    one = _result(jobs=1)
    assert (one["ok"], one["reason"], one["first_bad_seq"]) == (False, reason, start)
    assert _result(jobs=2) == one


@pytest.mark.django_db
def test_the_command_takes_jobs(isolated_key: Path) -> None:
    import json

    from tests.audit.integration.test_tampering import run_command

    _ledger()
    one, two = run_command("--json", "--jobs", "1"), run_command("--json", "--jobs", "2")
    assert one[0] == two[0] == 3
    a, b = json.loads(one[1]), json.loads(two[1])
    a.pop("seconds"), b.pop("seconds")
    assert a == b and a["ok"] is True
