"""The standalone verifier's own primitives: RFC 8785, RFC 9162 proofs, field extraction, signed notes.

verify.py may not import the project, so it re-implements these; here each is checked
against the project's implementation (and RFC 8785 against the ``rfc8785`` package) on
many random values.
"""
from __future__ import annotations

import json
import math
import random
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import merkle, note, offline_verify
from audit.canonical import body_bytes, leaf_hash, node_hash

# --- RFC 8785 ----------------------------------------------------------------------------------------

ALPHABET = (
    "abcXYZ019 _-./:" + '"\\' + "\b\f\n\r\t\x00\x01\x1f\x7f" + "é€ß\u2028\u2029\ufeff\ufffd" + "\U0001f600\U00010000"
    + "\ue000\uffff" + "日本"
)


def rand_string(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 8)))


def rand_float(rng: random.Random) -> float:
    pick = rng.random()
    if pick < 0.3:
        # any finite double, from random bits
        while True:
            value: float = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
            if math.isfinite(value):
                return value
    if pick < 0.5:
        return rng.choice([0.0, -0.0, 1.0, -1.0, 0.1, 1e21, 1e20, 1e-6, 1e-7, 123456789012345680000.0, 5e-324,
                           1.7976931348623157e308, 2.2250738585072014e-308, 9007199254740993.0, 1e16, 1.5e16,
                           0.000001234, 333333333.33333329, 1e23, 4.35, 0.0000001])
    if pick < 0.75:
        return rng.uniform(-1e6, 1e6)
    return rng.random() * 10 ** rng.randint(-30, 30) * rng.choice([1, -1])


def rand_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randint(0, 8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.randint(-(2**53) + 1, 2**53 - 1) if rng.random() < 0.5 else rng.randint(-1000, 1000)
    if kind == 3:
        return rand_float(rng)
    if kind in (4, 5):
        return rand_string(rng)
    if kind in (6, 7):
        return {rand_string(rng): rand_value(rng, depth + 1) for _ in range(rng.randint(0, 5))}
    return [rand_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]


def test_canonicalization_agrees_with_the_rfc8785_package_on_random_values() -> None:
    rng = random.Random(8785)
    for _ in range(5000):
        value = rand_value(rng)
        assert offline_verify.canonicalize(value) == rfc8785.dumps(value), value


def test_canonicalization_agrees_on_random_doubles_and_integers() -> None:
    rng = random.Random(754)
    for _ in range(20000):
        value = rand_float(rng)
        assert offline_verify.canonicalize(value) == rfc8785.dumps(value), repr(value)
    for _ in range(2000):
        value = rng.randint(-(2**53) + 1, 2**53 - 1)
        assert offline_verify.canonicalize(value) == rfc8785.dumps(value)


def test_canonicalization_round_trips_through_json() -> None:
    """What verify.py meets: a value parsed back from canonical JSON canonicalises to the same bytes."""
    rng = random.Random(1)
    for _ in range(2000):
        text = rfc8785.dumps(rand_value(rng))
        assert offline_verify.canonicalize(json.loads(text)) == text


@pytest.mark.parametrize(("value", "text"), [
    # RFC 8785 appendix B and section 3.2.2.3
    (0.0, "0"), (-0.0, "0"), (5e-324, "5e-324"), (-5e-324, "-5e-324"), (1.7976931348623157e308,
     "1.7976931348623157e+308"), (9007199254740992.0, "9007199254740992"), (9007199254740994.0, "9007199254740994"),
    (295147905179352830000.0, "295147905179352830000"), (1e21, "1e+21"), (1e-7, "1e-7"), (1e-6, "0.000001"),
    (333333333.3333333, "333333333.3333333"), (0.000001234, "0.000001234"), (1e23, "1e+23"), (100.0, "100"),
    (1.5, "1.5"), (-1.5, "-1.5"), (123e-20, "1.23e-18"),
])
def test_es_number_formatting(value: float, text: str) -> None:
    assert offline_verify.es_number(value) == text


def test_the_rfc8785_example_object() -> None:
    value = json.loads(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], '
        '"string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", "literals": [null, true, false]}'
    )
    assert offline_verify.canonicalize(value) == (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    ).encode()


def test_keys_sort_by_utf16_code_units() -> None:
    # U+1F600 sorts after U+E000 by code point but before it in UTF-16 (its surrogates are 0xD83D 0xDE00).
    value = {"\ue000": 2, "\U0001f600": 1, "a": 3}
    text = offline_verify.canonicalize(value)
    assert text == rfc8785.dumps(value)
    assert text.index("\U0001f600".encode()) < text.index("\ue000".encode())


def test_integers_beyond_2_53_are_the_doubles_they_denote() -> None:
    # json.loads gives an int for the canonical text of a large double; it canonicalises back to that text.
    assert offline_verify.canonicalize(123456789012345680000) == b"123456789012345680000"
    assert offline_verify.canonicalize(10**21) == b"1e+21"
    assert offline_verify.canonicalize(-(2**60)) == rfc8785.dumps(-float(2**60))
    assert offline_verify.canonicalize(2**53 + 1) == b"9007199254740992"  # as JSON.parse rounds it


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**400, -(10**400), {1: 2}, "\ud800",
                                   {"a": {1, 2}}])
def test_values_without_a_canonical_form_are_refused(value: Any) -> None:
    with pytest.raises(offline_verify.CanonicalizationError):
        offline_verify.canonicalize(value)


# --- entry bodies -------------------------------------------------------------------------------------


PLAIN = "abcXYZ019 _-./:,{}[]é€ß\u2028\ufeff\U0001f600日本"


def rand_body(rng: random.Random) -> bytes:
    alphabet = ALPHABET + ',":{}[]' if rng.random() < 0.3 else PLAIN  # escapes in some bodies, none in most

    def text(n: int = 12) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, n)))

    def value() -> Any:
        return rand_value(rng) if alphabet is not PLAIN else rng.choice([1, "x", None, [1.5, {"k": "v"}], True])

    seq = rng.randint(0, 10**9)
    payload = rfc8785.dumps({
        text(): value(), "subject_prev": 1, "prev_hash": text(), "timestamp": text(),
        "nested": {"subject": {"id": text(), "type": text()}, "seq": 5},
    }).decode()
    return body_bytes(
        seq=seq, timestamp="2026-11-29T06:51:10.112233Z", event_type=rng.choice(["ledger.note_added", "a.b"]),
        actor_type=rng.choice(["user", "system"]), actor_id=text(), subject_type=text(), subject_id=text(),
        payload_json=payload, prev_hash=rng.getrandbits(256).to_bytes(32, "big").hex(),
        subject_prev=rng.choice([None, rng.randint(0, seq) if seq else None]),
    )


def test_fields_of_canonical_bodies_are_what_json_gives() -> None:
    rng = random.Random(42)
    fast = 0
    for _ in range(3000):
        raw = rand_body(rng)
        body = json.loads(raw)
        entry = offline_verify.fields_of_canonical(raw, b"h")
        expected = offline_verify.Entry.from_body(body, b"h")
        assert entry is not None
        fast += 1
        assert (entry.seq, entry.event_type, entry.prev_hash, entry.subject, entry.subject_prev, entry.timestamp) == (
            expected.seq, expected.event_type, expected.prev_hash, expected.subject, expected.subject_prev,
            expected.timestamp)
        assert offline_verify.subject_label(entry.subject) == f"{body['subject']['type']}:{body['subject']['id']}"
    assert fast == 3000


# --- RFC 9162 ---------------------------------------------------------------------------------------


def tree(n: int) -> tuple[list[bytes], dict[tuple[int, int], bytes]]:
    leaves = [leaf_hash(str(i).encode()) for i in range(n)]
    nodes: dict[tuple[int, int], bytes] = {}
    compact = merkle.CompactRange()
    for leaf in leaves:
        for level, index, h in compact.append(leaf):
            nodes[(level, index)] = h
    return leaves, nodes


def proof(leaves: list[bytes], nodes: dict[tuple[int, int], bytes], index: int, size: int) -> list[bytes]:
    return merkle.resolve(merkle.inclusion_ranges(index, size), lambda want: {k: nodes[k] for k in want})


def root(nodes: dict[tuple[int, int], bytes], size: int) -> bytes:
    return merkle.fold([nodes[n] for n in merkle.root_nodes(size)])


def test_inclusion_and_consistency_agree_with_the_project() -> None:
    leaves, nodes = tree(300)
    rng = random.Random(9162)
    for size in [1, 2, 3, 7, 8, 9, 100, 255, 256, 257, 300]:
        r = root(nodes, size)
        for index in {0, size - 1, rng.randrange(size)}:
            path = proof(leaves, nodes, index, size)
            assert offline_verify.verify_inclusion(index, size, leaves[index], path, r)
            assert not offline_verify.verify_inclusion(index, size, leaves[index], path, node_hash(r, r))
            if path:
                bad = [*path[:-1], node_hash(path[-1], path[-1])]
                assert not offline_verify.verify_inclusion(index, size, leaves[index], bad, r)
        for old in {1, size // 2 or 1, size}:
            cons = merkle.resolve(merkle.consistency_ranges(old, size), lambda want: {k: nodes[k] for k in want})
            assert offline_verify.verify_consistency(old, size, root(nodes, old), r, cons)
            assert merkle.verify_consistency(old, size, root(nodes, old), r, cons)
            if old < size:
                assert not offline_verify.verify_consistency(old, size, root(nodes, old), r, [*cons, r])


def proof_line(index: int, size: int, path: list[bytes]) -> bytes:
    inner = '","'.join(h.hex() for h in path)
    return f'{{"seq":{index},"tree_size":{size},"inclusion":[' .encode() + (
        f'"{inner}"'.encode() if path else b"") + b"]}"


def test_the_remembering_checker_gives_the_rfc_answer_for_every_proof() -> None:
    """Consecutive, random and tampered proofs, through both the line and the token paths."""
    leaves, nodes = tree(1100)
    rng = random.Random(5)
    for size in (1, 2, 5, 64, 1025, 1100):
        r = root(nodes, size)
        checker = offline_verify.InclusionChecker(size, r)
        order = list(range(size)) + [rng.randrange(size) for _ in range(50)]
        for index in order:
            path = proof(leaves, nodes, index, size)
            tamper = rng.random() < 0.1 and path
            if tamper:
                k = rng.randrange(len(path))
                path = [*path[:k], node_hash(path[k], b""), *path[k + 1:]]
            expected = offline_verify.verify_inclusion(index, size, leaves[index], path, r)
            assert expected is (not tamper)
            line = proof_line(index, size, path)
            by_line = checker.check_line(index, leaves[index], line)
            if by_line is None:
                assert not path  # only the empty proof is not in the fixed layout
                by_line = checker.check(index, leaves[index], offline_verify.parse_proof_line(line)[2])
            assert by_line is expected, (size, index)
            seq, n, tokens = offline_verify.parse_proof_line(line)
            assert (seq, n) == (index, size)
            assert checker.check(index, leaves[index], tokens) is expected
            # a leaf that is not the one proved never passes
            assert not checker.check(index, leaf_hash(b"other"), tokens)


def test_proof_lines_in_another_layout_are_parsed_as_json() -> None:
    h = leaf_hash(b"x")
    spaced = json.dumps({"tree_size": 2, "seq": 1, "inclusion": [h.hex()]}).encode()
    assert offline_verify.parse_proof_line(spaced) == (1, 2, [h.hex().encode()])
    with pytest.raises(ValueError):
        offline_verify.parse_proof_line(b'{"seq": 1}')
    # malformed hashes are refused where they are used, by the checker
    seq, size, tokens = offline_verify.parse_proof_line(b'{"seq":1,"tree_size":2,"inclusion":["zz"]}')
    assert not offline_verify.InclusionChecker(size, h).check(seq, h, tokens)
    assert offline_verify.InclusionChecker(2, h).check_line(1, h, b'{"seq":1,"tree_size":2,"inclusion":["zz"]}') \
        is not True


# --- signed notes --------------------------------------------------------------------------------------


def test_signed_notes_open_as_the_project_opens_them() -> None:
    old, new, stranger = (Ed25519PrivateKey.generate() for _ in range(3))
    name = "ledger.example.internal/governance"
    text = note.CheckpointBody(origin=name, tree_size=5, root_hash=leaf_hash(b"r")).text()
    signed = note.sign_note(text, [(name, old), (name, new)])
    vkeys = [note.verifier_key(name, note.public_bytes(k.public_key())) for k in (old, new, stranger)]
    verifiers = [offline_verify.Verifier(v) for v in vkeys]
    body, signed_by, unknown = offline_verify.open_note(signed, verifiers[:1])
    assert body == text and [v.text for v in signed_by] == vkeys[:1] and unknown == 1
    assert len(offline_verify.open_note(signed, verifiers)[1]) == 2
    assert offline_verify.parse_checkpoint(body) == (name, 5, leaf_hash(b"r"))
    with pytest.raises(offline_verify.NoteError, match="no signature by a trusted key"):
        offline_verify.open_note(signed, verifiers[2:])
    forged = signed.replace(text, text.replace("\n5\n", "\n6\n"))
    with pytest.raises(offline_verify.NoteError, match="does not verify"):
        offline_verify.open_note(forged, verifiers[:1])
    assert offline_verify.signers_of(signed) == ["+".join(v.split("+")[:2]) for v in vkeys[:2]]
    with pytest.raises(offline_verify.NoteError):
        offline_verify.Verifier(vkeys[0].replace("+", "+0", 1))


def test_verify_py_is_one_file_with_no_project_imports() -> None:
    source = Path(offline_verify.__file__).read_text()
    imported = {line.split()[1].split(".")[0] for line in source.splitlines()
                if line.startswith(("import ", "from ")) and not line.startswith("from __future__")}
    assert imported <= {"argparse", "base64", "binascii", "copy", "hashlib", "itertools", "json", "math",
                        "multiprocessing", "os",
                        "re", "struct", "sys", "threading", "time", "zipfile", "zlib", "collections", "typing",
                        "cryptography",
                        # --tiles URL only (opt-in network): the standard library's HTTP client
                        "http", "urllib"}
    # and it runs on its own: usage errors exit 2, a missing file is reported
    result = subprocess.run([sys.executable, "-I", offline_verify.__file__, "/nonexistent.zip"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "not a readable zip file" in result.stderr
