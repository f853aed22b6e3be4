"""Pure tests of audit.canonical: JCS (RFC 8785) bytes, timestamps, RFC 9162 hashes.

Vectors:
- RFC 8785 Appendix B (number serialization samples), section 3.2.2 (sample
  document), 3.2.3 (sorting by UTF-16 code units) and 3.2.4 (UTF-8 bytes).
  The same tables are used by cyberphone/json-canonicalization (the RFC
  authors' reference implementation, testdata/).
- RFC 6962 leaf hashes of transparency-dev/merkle testonly/constants.go.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import struct
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import rfc8785

from audit import canonical
from audit.canonical import (
    ZERO_HASH,
    CanonicalizationError,
    body_bytes,
    canonical_json,
    format_timestamp,
    leaf_hash,
    node_hash,
    parse_timestamp,
)

# --------------------------------------------------------------------------------------
# Random JSON generation (seeded, so failures reproduce)
# --------------------------------------------------------------------------------------

# Characters that JCS treats specially, or that naive escaping gets wrong.
_TRICKY = [
    '"', "\\", "/", "\b", "\f", "\n", "\r", "\t", "\x00", "\x01", "\x08", "\x0b", "\x0e", "\x1f",
    "\x7f", "\x80", "\x9f", "\u00a0", "\u00e9", "\u00f6", "\u2028", "\u2029", "\u20ac", "\ufb33",
    "\ufeff", "\ufffd", "\uffff", "\U0001f600", "\U0001f602", "\U0001d11e", "\U0010ffff",
    "e\u0301", "<", ">", "&", "'", " ", "\u3042", "\u0645",
]
_ASCII = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-.:"

_SPECIAL_FLOATS = [
    0.0, -0.0, 0.1, 0.2 + 0.1, 1.0, -1.5, 1e21, 1e20, 1e-7, 1e-6, 5e-324, -5e-324,
    1.7976931348623157e308, 2.0**53, -(2.0**53), 1 / 3, 333333333.3333333, 1e23, 9.999999999999997e22,
    123456789012345680000.0, 4.5, 0.002, 1e-27, 1e30,
]
_SPECIAL_INTS = [0, 1, -1, 2**31, -(2**31), 2**53 - 1, -(2**53 - 1), 10**15, 255]


def _random_string(rng: random.Random, max_len: int = 12) -> str:
    out = []
    for _ in range(rng.randint(0, max_len)):
        roll = rng.random()
        if roll < 0.45:
            out.append(rng.choice(_ASCII))
        elif roll < 0.8:
            out.append(rng.choice(_TRICKY))
        elif roll < 0.9:
            out.append(chr(rng.randint(0x20, 0xD7FF)))
        else:
            out.append(chr(rng.randint(0x10000, 0x10FFFF)))
    return "".join(out)


def _random_float(rng: random.Random) -> float:
    if rng.random() < 0.4:
        return rng.choice(_SPECIAL_FLOATS)
    while True:
        value: float = struct.unpack(">d", rng.getrandbits(64).to_bytes(8, "big"))[0]
        if math.isfinite(value):
            return value


def _random_scalar(rng: random.Random) -> Any:
    kind = rng.randrange(6)
    if kind == 0:
        return _random_string(rng)
    if kind == 1:
        return _random_float(rng)
    if kind == 2:
        return rng.choice(_SPECIAL_INTS) if rng.random() < 0.3 else rng.randint(-(2**53 - 1), 2**53 - 1)
    if kind == 3:
        return rng.choice([True, False])
    if kind == 4:
        return None
    return rng.randint(-1000, 1000)


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 4 and roll < 0.2:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if depth < 4 and roll < 0.4:
        return _random_object(rng, depth + 1)
    return _random_scalar(rng)


def _random_object(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    return {_random_string(rng, 6): _random_value(rng, depth) for _ in range(rng.randint(0, 5))}


def _random_timestamp(rng: random.Random) -> str:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(0, 2**52))
    return format_timestamp(moment)


def _loads_as_doubles(text: str) -> Any:
    """Parse JSON the way JCS sees it: every number is an IEEE 754 double."""
    return json.loads(text, parse_int=float)


def _body_dict(fields: dict[str, Any], payload: Any) -> dict[str, Any]:
    return {
        "seq": fields["seq"],
        "timestamp": fields["timestamp"],
        "event_type": fields["event_type"],
        "actor": {"type": fields["actor_type"], "id": fields["actor_id"]},
        "subject": {"type": fields["subject_type"], "id": fields["subject_id"]},
        "payload": payload,
        "prev_hash": fields["prev_hash"],
        "subject_prev": fields["subject_prev"],
        **({} if fields.get("request_id") is None else {"request_id": fields["request_id"]}),
    }


def _random_fields(rng: random.Random) -> dict[str, Any]:
    return {
        "seq": rng.choice([0, 1, 2**53 - 1, rng.randint(0, 2**53 - 1), rng.randint(0, 10**6)]),
        "timestamp": _random_timestamp(rng) if rng.random() < 0.8 else _random_string(rng, 30),
        "event_type": rng.choice(["model.registered", "dataset.approved", "", _random_string(rng)]),
        "actor_type": rng.choice(["user", "service", "system", _random_string(rng)]),
        "actor_id": _random_string(rng, 20),
        "subject_type": _random_string(rng, 10),
        "subject_id": _random_string(rng, 30),
        "prev_hash": rng.choice([ZERO_HASH, rng.randbytes(32).hex()]),
        "subject_prev": rng.choice([None, 0, 1, rng.randint(0, 2**53 - 1)]),
        # optional: absent from the body when None
        "request_id": rng.choice([None, "0f8fad5b-d9cb-469f-a165-70867728950e", _random_string(rng, 64)]),
    }


# --------------------------------------------------------------------------------------
# body_bytes == rfc8785.dumps(body_dict)
# --------------------------------------------------------------------------------------


def test_body_bytes_matches_rfc8785_on_generated_entries() -> None:
    rng = random.Random(8785)
    for case in range(600):
        # given
        fields = _random_fields(rng)
        payload = _random_object(rng)
        # when
        fast = body_bytes(**fields, payload_json=canonical_json(payload))
        # then
        assert fast == rfc8785.dumps(_body_dict(fields, payload)), f"case {case}: {fields!r} {payload!r}"


def test_body_bytes_parses_back_to_the_same_object() -> None:
    rng = random.Random(9162)
    for _ in range(200):
        fields = _random_fields(rng)
        payload = _random_object(rng)
        text = body_bytes(**fields, payload_json=canonical_json(payload)).decode("utf-8")
        assert _loads_as_doubles(text) == _body_dict(fields, payload)


@pytest.mark.parametrize(
    "text",
    [
        "",
        '"',
        "\\",
        '\\"',
        "\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f",
        "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f",
        "\x7f",
        "\u2028\u2029",
        "\U0001f600",
        "\U0010ffff",
        "caf\u00e9 \u20ac \ufb33",
        "</script>",
        "a/b",
        "e\u0301",
    ],
)
def test_body_bytes_escapes_every_string_field_like_jcs(text: str) -> None:
    # given: the same awkward text in every string column
    fields = {
        "seq": 7,
        "timestamp": text,
        "event_type": text,
        "actor_type": text,
        "actor_id": text,
        "subject_type": text,
        "subject_id": text,
        "prev_hash": text,
        "subject_prev": None,
    }
    payload = {text: text, "k": [text]}
    # when / then
    assert body_bytes(**fields, payload_json=canonical_json(payload)) == rfc8785.dumps(_body_dict(fields, payload))


def test_body_bytes_control_characters_use_lowercase_hex_escapes() -> None:
    out = body_bytes(
        seq=1,
        timestamp="t",
        event_type="\x1f\x0b",
        actor_type="user",
        actor_id="\x7f",
        subject_type="s",
        subject_id="\u2028",
        payload_json="{}",
        prev_hash=ZERO_HASH,
        subject_prev=None,
    )
    assert b'"event_type":"\\u001f\\u000b"' in out
    # DEL and U+2028 are not escaped by JCS: they stay as raw UTF-8.
    assert b'"id":"\x7f"' in out
    assert '"id":"\u2028"'.encode() in out


def test_body_bytes_key_order_and_exact_layout() -> None:
    out = body_bytes(
        seq=42,
        timestamp="2026-11-29T06:41:04.123456Z",
        event_type="model.registered",
        actor_type="user",
        actor_id="alice",
        subject_type="model",
        subject_id="m-1",
        payload_json=canonical_json({"b": 1, "a": [0.1, -0.0, 1e21]}),
        prev_hash=ZERO_HASH,
        subject_prev=3,
    )
    assert out == (
        b'{"actor":{"id":"alice","type":"user"},"event_type":"model.registered",'
        b'"payload":{"a":[0.1,0,1e+21],"b":1},"prev_hash":"' + ZERO_HASH.encode() + b'",'
        b'"seq":42,"subject":{"id":"m-1","type":"model"},"subject_prev":3,'
        b'"timestamp":"2026-11-29T06:41:04.123456Z"}'
    )


@pytest.mark.parametrize("subject_prev", [None, 0, 1, 2**53 - 1])
@pytest.mark.parametrize("seq", [0, 1, 2**53 - 1])
def test_body_bytes_integer_columns(seq: int, subject_prev: int | None) -> None:
    fields = {
        "seq": seq,
        "timestamp": "2026-01-01T00:00:00.000000Z",
        "event_type": "e",
        "actor_type": "user",
        "actor_id": "a",
        "subject_type": "s",
        "subject_id": "1",
        "prev_hash": ZERO_HASH,
        "subject_prev": subject_prev,
    }
    assert body_bytes(**fields, payload_json="{}") == rfc8785.dumps(_body_dict(fields, {}))


def test_body_bytes_and_rfc8785_both_refuse_lone_surrogates() -> None:
    fields = _random_fields(random.Random(1))
    fields["actor_id"] = "\ud800"
    with pytest.raises(ValueError):  # UnicodeEncodeError
        body_bytes(**fields, payload_json="{}")
    with pytest.raises(rfc8785.CanonicalizationError):
        rfc8785.dumps(_body_dict(fields, {}))


# --------------------------------------------------------------------------------------
# canonical_json: RFC 8785 vectors
# --------------------------------------------------------------------------------------

# RFC 8785 Appendix B: IEEE 754 bit pattern -> canonical text.
APPENDIX_B = [
    ("0000000000000000", "0"),  # zero
    ("8000000000000000", "0"),  # minus zero
    ("0000000000000001", "5e-324"),  # min pos number
    ("8000000000000001", "-5e-324"),  # min neg number
    ("7fefffffffffffff", "1.7976931348623157e+308"),  # max pos number
    ("ffefffffffffffff", "-1.7976931348623157e+308"),  # max neg number
    ("4340000000000000", "9007199254740992"),  # max pos int
    ("c340000000000000", "-9007199254740992"),  # max neg int
    ("4430000000000000", "295147905179352830000"),  # ~2**68
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),  # round to even
]
# Appendix B patterns that MUST make a JCS implementation fail (NaN, Infinity), plus -Infinity.
APPENDIX_B_ERRORS = ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"]


def _double(bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(bits))[0]
    return value


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B, ids=[b for b, _ in APPENDIX_B])
def test_canonical_json_rfc8785_appendix_b_numbers(bits: str, expected: str) -> None:
    value = _double(bits)
    assert canonical_json(value) == expected
    assert canonical_json([value]) == f"[{expected}]"
    assert canonical_json({"n": value}) == f'{{"n":{expected}}}'


@pytest.mark.parametrize("bits", APPENDIX_B_ERRORS)
def test_canonical_json_rfc8785_appendix_b_non_finite_values_fail(bits: str) -> None:
    with pytest.raises(CanonicalizationError):
        canonical_json(_double(bits))
    with pytest.raises(CanonicalizationError):
        canonical_json({"nested": [1, {"x": _double(bits)}]})


def test_canonical_json_rfc8785_section_3_2_2_sample_and_3_2_4_utf8_bytes() -> None:
    # given: the input of RFC 8785 section 3.2.2, read by an ordinary JSON parser
    source = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    value = json.loads(source)
    # when
    text = canonical_json(value)
    # then: section 3.2.2 output, and section 3.2.4 bytes
    assert text == (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert text.encode("utf-8").hex() == (
        "7b226c69746572616c73223a5b6e756c6c2c747275652c66616c73655d2c226e756d62657273223a5b33333333"
        "33333333332e333333333333332c31652b33302c342e352c302e3030322c31652d32375d2c22737472696e6722"
        "3a22e282ac245c75303030665c6e4127425c225c5c5c5c5c222f227d"
    )


def test_canonical_json_rfc8785_section_3_2_3_sorts_keys_by_utf16_code_units() -> None:
    # given: the RFC 8785 section 3.2.3 object
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    # when
    text = canonical_json(value)
    # then: the emoji (UTF-16 D83D DE00) sorts before U+FB33, unlike code-point order
    assert text == (
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
        '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    )
    assert sorted(value) != [k for k in json.loads(text)]  # the vector discriminates


def test_canonical_json_sorts_nested_objects_and_keeps_array_order() -> None:
    value = {"b": [{"z": 1, "a": 2}, 3, 1], "a": {"d": True, "c": None}, "\uffff": 0, "\U0001f600": 1}
    assert canonical_json(value) == '{"a":{"c":null,"d":true},"b":[{"a":2,"z":1},3,1],"\U0001f600":1,"\uffff":0}'


def test_canonical_json_generated_values_match_utf16_sort_and_round_trip() -> None:
    rng = random.Random(3223)
    for _ in range(300):
        value = _random_object(rng)
        text = canonical_json(value)
        assert _loads_as_doubles(text) == value
        keys = list(json.loads(text))
        assert keys == sorted(keys, key=lambda k: k.encode("utf-16-be"))
        assert canonical_json(_loads_as_doubles(text)) == text  # idempotent


def test_integral_doubles_come_back_from_json_loads_as_ints_outside_the_safe_range() -> None:
    # JCS writes integral doubles below 1e21 without an exponent, so Python's json module reads
    # them back as ints, which JCS then refuses when they exceed 2**53 - 1.  A verifier that
    # re-canonicalizes parsed bodies must read numbers as doubles (as JavaScript does).
    text = canonical_json({"x": 1e20, "y": 2.0**53})
    assert text == '{"x":100000000000000000000,"y":9007199254740992}'
    with pytest.raises(CanonicalizationError):
        canonical_json(json.loads(text))
    assert canonical_json(_loads_as_doubles(text)) == text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, "0.1"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (-0.0, "0"),
        (5e-324, "5e-324"),
        (1.0, "1"),
        (2**53 - 1, "9007199254740991"),
        (-(2**53 - 1), "-9007199254740991"),
        (True, "true"),
        (False, "false"),
        (None, "null"),
        ("", '""'),
        ([], "[]"),
        ({}, "{}"),
        ((1, "a"), '[1,"a"]'),
    ],
)
def test_canonical_json_scalars(value: Any, expected: str) -> None:
    assert canonical_json(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        [1, float("nan")],
        # Integers are IEEE 754 doubles in JCS: ones that are not exactly representable must fail
        # rather than silently change value (RFC 8785 3.2.2.3 and Appendix D; I-JSON RFC 7493 2.2).
        2**53 + 1,
        -(2**53 + 1),
        2**64,
        10**30,
        {"big": [2**63]},
        # 2**53 itself is a double, but outside I-JSON's interoperable range [-(2**53)+1, 2**53-1];
        # the library (and so the ledger) refuses it as an integer.  As a float it serializes
        # (Appendix B: 0x4340000000000000 -> 9007199254740992).
        2**53,
        -(2**53),
        "\ud800",
        {"\udfff": 1},
        {1: "non-string key"},
        b"bytes",
        {1, 2},
        object(),
    ],
)
def test_canonical_json_refuses_what_jcs_cannot_represent(value: Any) -> None:
    with pytest.raises(CanonicalizationError):
        canonical_json(value)


def test_canonicalization_error_is_a_value_error() -> None:
    assert issubclass(CanonicalizationError, ValueError)


# --------------------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------------------


def test_format_timestamp_shape() -> None:
    text = format_timestamp(datetime(2026, 11, 29, 6, 41, 4, 123456, tzinfo=UTC))
    assert text == "2026-11-29T06:41:04.123456Z"
    assert len(text) == 27


def test_format_timestamp_pads_microseconds_and_converts_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert format_timestamp(datetime(2026, 1, 1, 1, 0, tzinfo=plus_two)) == "2025-12-31T23:00:00.000000Z"
    assert format_timestamp(datetime(2026, 3, 4, 5, 6, 7, 8, tzinfo=UTC)) == "2026-03-04T05:06:07.000008Z"


def test_format_timestamp_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_timestamp(datetime(2026, 1, 1))


def test_timestamps_round_trip_with_fixed_width() -> None:
    rng = random.Random(3339)
    base = datetime(1970, 1, 1, tzinfo=UTC)
    for _ in range(500):
        moment = base + timedelta(microseconds=rng.randrange(0, 8_000 * 365 * 86_400 * 10**6))
        offset = timezone(timedelta(minutes=rng.randrange(-14 * 60, 14 * 60 + 1)))
        local = moment.astimezone(offset)
        text = format_timestamp(local)
        assert len(text) == 27
        assert text.endswith("Z")
        assert text[10] == "T"
        parsed = parse_timestamp(text)
        assert parsed == moment
        assert parsed.tzinfo is UTC
        assert format_timestamp(parsed) == text


def test_timestamp_text_order_is_time_order() -> None:
    rng = random.Random(27)
    base = datetime(1000, 1, 1, tzinfo=UTC)
    span = int((datetime(9999, 12, 31, tzinfo=UTC) - base).total_seconds()) * 10**6
    moments = [base + timedelta(microseconds=rng.randrange(0, span)) for _ in range(1000)]
    # near-ties: same second, microseconds apart; and across a day boundary
    moments += [datetime(2026, 5, 5, 12, 0, 0, us, tzinfo=UTC) for us in (0, 1, 9, 10, 99, 100, 999999)]
    moments += [datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)]
    assert sorted(moments, key=format_timestamp) == sorted(moments)


def test_format_timestamp_is_fixed_width_for_early_years() -> None:
    early = datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC)
    text = format_timestamp(early)
    assert text == "0999-12-31T23:59:59.000000Z"
    assert format_timestamp(early) < format_timestamp(datetime(2026, 1, 1, tzinfo=UTC))


# --------------------------------------------------------------------------------------
# RFC 6962 / 9162 hashes
# --------------------------------------------------------------------------------------

# transparency-dev/merkle testonly/constants.go: LeafInputs() and NodeHashes()[0].
RFC6962_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
RFC6962_LEAF_HASHES = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
]


def test_empty_string_hash_is_the_empty_tree_root() -> None:
    assert hashlib.sha256(b"").hexdigest() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize(("data", "expected"), list(zip(RFC6962_LEAVES, RFC6962_LEAF_HASHES, strict=True)))
def test_leaf_hash_rfc6962_vectors(data: bytes, expected: str) -> None:
    assert leaf_hash(data).hex() == expected


def test_node_hash_rfc6962_vectors() -> None:
    # NodeHashes()[1][0] and [2][0] of the same test tree
    h = [bytes.fromhex(x) for x in RFC6962_LEAF_HASHES]
    n10 = node_hash(h[0], h[1])
    assert n10.hex() == "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"
    n11 = node_hash(h[2], h[3])
    assert n11.hex() == "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"
    assert node_hash(n10, n11).hex() == "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    left, right = b"\x11" * 32, b"\x22" * 32
    assert leaf_hash(left + right) != node_hash(left, right)
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert node_hash(left, right) != node_hash(right, left)


# --------------------------------------------------------------------------------------
# canonical_json's fast path (the standard library's encoder on float-free values)
# --------------------------------------------------------------------------------------


def _without_floats(value: Any) -> Any:
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and abs(value) < 2**53 else "f"
    if isinstance(value, list):
        return [_without_floats(v) for v in value]
    if isinstance(value, dict):
        return {k: _without_floats(v) for k, v in value.items()}
    return value


def test_canonical_json_fast_path_is_exactly_rfc8785() -> None:
    rng = random.Random(1785)
    fast = 0
    for case in range(3000):
        # given: ASCII and non-ASCII member names, control characters, astral characters, big integers
        value = _without_floats(_random_object(rng))
        if rng.random() < 0.3:
            value[_random_string(rng, 4)] = rng.choice([2**53, -(2**53), 2**53 - 1, 10**30])
        # when
        try:
            expected = rfc8785.dumps(value).decode("utf-8")
        except Exception:
            with pytest.raises(CanonicalizationError):
                canonical_json(value)
            continue
        # then
        assert canonical_json(value) == expected, f"case {case}: {value!r}"
        fast += canonical._plain(value)
    assert fast > 300  # the fast path was really taken (random member names are often non-ASCII)


def test_canonical_json_fast_path_refuses_lone_surrogates_like_rfc8785() -> None:
    with pytest.raises(CanonicalizationError):
        canonical_json({"text": "\ud800"})
    value = {"b": [1, True, None], "a": "\u2028\x7f\x1f"}
    assert canonical._plain(value)
    assert canonical_json(value) == '{"a":"\u2028\x7f\\u001f","b":[1,true,null]}'



def test_canonical_json_fast_path_for_floats_is_exactly_rfc8785() -> None:
    import math
    import random
    import struct

    import rfc8785

    rng = random.Random(8785)
    values: list[float] = [0.1, 0.5, -2.75, 1e-4, 1e-5, 1e-7, 1e15 + 0.5, 1e16, 1e21, 123456789012345.6, -0.0, 5e-324]
    values += [rng.uniform(-1e6, 1e6) for _ in range(20000)]
    values += [round(rng.uniform(0, 1), rng.randint(1, 8)) for _ in range(20000)]
    for _ in range(20000):
        (f,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
        if math.isfinite(f):
            values.append(f)
    for f in values:
        doc = {"value": f, "threshold": [f, 1, "x"]}
        assert canonical_json(doc) == rfc8785.dumps(doc).decode("utf-8"), f


# --------------------------------------------------------------------------------------
# Depth bound: deep nesting is a CanonicalizationError, never a RecursionError
# --------------------------------------------------------------------------------------


def _nested(depth: int, make: Any = lambda inner: {"d": inner}) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = make(value)
    return value


@pytest.mark.parametrize("make", [lambda inner: {"d": inner}, lambda inner: [inner]], ids=["objects", "arrays"])
def test_values_up_to_the_depth_bound_canonicalise(make: Any) -> None:
    value = _nested(canonical.MAX_DEPTH, make)
    assert canonical_json(value) == rfc8785.dumps(value).decode()


@pytest.mark.parametrize("depth", [canonical.MAX_DEPTH + 1, 480, 10_000])
@pytest.mark.parametrize("make", [lambda inner: {"d": inner}, lambda inner: [inner]], ids=["objects", "arrays"])
def test_deeper_values_are_refused_not_a_recursion_error(depth: int, make: Any) -> None:
    with pytest.raises(CanonicalizationError, match=f"deeper than {canonical.MAX_DEPTH} levels"):
        canonical_json(_nested(depth, make))


def test_a_deep_value_that_is_not_plain_is_refused_too() -> None:
    # A float in exponent form sends the value to the rfc8785 path, which must not recurse first.
    with pytest.raises(CanonicalizationError, match="deeper than"):
        canonical_json({"x": 1e-9, "d": _nested(5_000)})


def test_check_depth_counts_containers_not_scalars() -> None:
    canonical.check_depth("scalar", 0)
    canonical.check_depth({"a": [1, 2], "b": {}}, 2)
    with pytest.raises(CanonicalizationError):
        canonical.check_depth({"a": [1, [2]]}, 2)
    with pytest.raises(CanonicalizationError):
        canonical.check_depth(_nested(100_000), 64)


def test_loads_refuses_deep_text_even_beyond_the_decoders_recursion_limit() -> None:
    assert canonical.loads('{"a": [[1]]}') == {"a": [[1]]}
    for depth in (65, 480, 50_000):
        with pytest.raises(CanonicalizationError, match="deeper than 64 levels"):
            canonical.loads("[" * depth + "]" * depth)
    with pytest.raises(json.JSONDecodeError):
        canonical.loads("[1,")
    with pytest.raises(CanonicalizationError, match="deeper than 3 levels"):
        canonical.loads("[[[[]]]]", limit=3)
