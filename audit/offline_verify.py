#!/usr/bin/env python3
"""verify.py: check an audit-ledger export bundle offline.

    python verify.py BUNDLE.zip --trusted-keys-file KEYS [--witnesses-file W --quorum K]
                     [--known-checkpoint FILE ...] [--json] [--lenient] [--jobs 1|2]
                     [--tiles URL [--tiles-token-file FILE]]

Needs Python 3.9 or later and the ``cryptography`` package, nothing else: no
network (unless you ask for ``--tiles``), no database, no code of the ledger. This one file is the whole
verifier; it is copied into every bundle as ``verify.py`` and is the same as
``audit/offline_verify.py`` in the ledger's repository. The bundle format and
what each check proves are in docs/export-format.md (summarised in the
bundle's README.txt).

It checks

* every file against the SHA-256 listed in ``manifest.json``;
* every entry: its hash is recomputed from its body (RFC 8785 canonical JSON,
  ``SHA-256(0x00 || JCS(body))``), its inclusion proof leads to the root of
  ``checkpoint.txt`` (RFC 9162 section 2.1.3.2), consecutive ``seq`` are linked
  by ``prev_hash`` and entries of one subject by ``subject_prev``;
* every checkpoint's signed note (Ed25519, C2SP signed-note) against the keys you
  supply (``--trusted-key``, ``--trusted-keys-file``), each only for the tree sizes
  it was valid for; without them against ``keys.txt``, which anchors nothing;
* the witnesses' cosignatures on ``checkpoint.txt`` (``--witness-key``, ``--quorum``)
  and that the history extends the checkpoints you kept (``--known-checkpoint``);
* strict JSON: no duplicate member, every body exactly its RFC 8785 form
  (``--lenient``: warnings);
* the consistency proof between each checkpoint and the next (RFC 9162 section 2.1.4.2);
* the export's own ledger entry (``ledger.exported``), which fixes the scope:
  the manifest's scope must be the one the ledger signed;
* completeness, for exports that claim it (a subject or a whole range of the
  ledger): no entry was left out, by the links and the boundary entries.
* with ``--tiles URL`` (opt-in network, urllib only): the log's current checkpoint
  served there (c2sp.org/tlog-tiles), verified with the same keys, extends
  ``checkpoint.txt``, and every entry is proven again from the log's hash tiles.

A big bundle is checked in two processes when there are two CPUs (the inclusion
proofs in the second; ``--jobs 1`` for one); the result is the same either way.

It prints a summary and exits 0 only when everything verifies against keys you
supplied; 1 with a message naming each failure; 2 when the bundle (or an anchor
file) cannot be read at all; 3 when everything is consistent but nothing outside
the bundle anchors it (docs/verifying.md).
"""
from __future__ import annotations

import argparse
import base64
import binascii
import copy
import hashlib
import http.client
import json
import json.encoder
import json.scanner
import math
import multiprocessing
import os
import re
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator
from itertools import islice
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "audit-ledger-export/1"
EXPORT_EVENT = "ledger.exported"
ZERO_HASH = b"0" * 64
MAX_LISTED_FAILURES = 50
_CHUNK = 1 << 20
_BLOCK = 1 << 18  # bytes of entries.jsonl taken as one page (about 500 entries)
# Below this much entries.jsonl (about 15,000 entries) a second process costs more than it saves.
_PARALLEL_MIN_BYTES = 4 << 20
# What the entries process sends the proof worker per entry line: seq + 1, the leaf hash and the length
# of the body bytes that follow (0: none to check, the entries process checked them);
# seq + 1 = 0 for a line that is not an entry, all ones for a seq beyond 64 bits (the worker gives up).
_LEAF_RECORD = struct.Struct("<Q32sI")
_SEQ_LIMIT = 2**64 - 2
_NO_LEAF = _LEAF_RECORD.pack(0, bytes(32), 0)
_BAD_LEAF = _LEAF_RECORD.pack(2**64 - 1, bytes(32), 0)
_BATCH_BYTES = 40 * 4096
_PAGE = 1 << 31  # in a record's length: the record is a page (``_ProofWorker.add_page``)
_COUNT = struct.Struct("<I")


# Reasons (stable strings, in --json "reasons"), the same names as verify_ledger's.
BAD_SIGNATURE = "bad_signature"
RETIRED_KEY = "retired_key"
MALFORMED_JSON = "malformed_json"
WITNESS_QUORUM = "witness_quorum"
TRUNCATED = "truncated"
FORKED = "forked"
UNPROVEN = "unproven_consistency"
FAILED = "failed"  # every other failure (named by its message)

# Exit statuses (docs/verifying.md).
EXIT_VERIFIED = 0
EXIT_FAILED = 1
EXIT_UNREADABLE = 2
EXIT_UNANCHORED = 3


class VerifyError(Exception):
    """The bundle cannot be read at all (not a zip, no manifest...)."""


# --------------------------------------------------------------------------------------------------
# RFC 8785: JSON Canonicalization Scheme


class CanonicalizationError(ValueError):
    """A value that has no canonical JSON form (NaN, an integer beyond 2**53, a lone surrogate...)."""


_INT_LIMIT = 2**53 - 1
_STRING_ESCAPES = {i: f"\\u{i:04x}" for i in range(0x20)}
_STRING_ESCAPES.update(
    {ord("\\"): "\\\\", ord('"'): '\\"', 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}
)


def canonicalize(value: Any) -> bytes:
    """The RFC 8785 canonical form of a JSON value (as ``json.loads`` returns it), UTF-8."""
    parts: list[str] = []
    _jcs(value, parts)
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError:
        raise CanonicalizationError("a string contains a lone surrogate (not valid Unicode)") from None


def _jcs(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if -_INT_LIMIT <= value <= _INT_LIMIT:
            out.append(str(int(value)))
        else:
            # JSON numbers are IEEE 754 doubles. json.loads makes an int of a literal such as
            # 123456789012345680000 (the canonical form of the double 1.2345678901234568e+20);
            # like JSON.parse, take the nearest double.
            try:
                out.append(es_number(float(value)))
            except OverflowError:
                raise CanonicalizationError(f"integer {value} is beyond the range of JSON numbers") from None
    elif isinstance(value, float):
        out.append(es_number(value))
    elif isinstance(value, str):
        out.append('"' + value.translate(_STRING_ESCAPES) + '"')
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _jcs(item, out)
        out.append("]")
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise CanonicalizationError("object member names must be strings")
        # Sorted by UTF-16 code units: big-endian UTF-16 bytes compare in exactly that order.
        keys = sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
        out.append("{")
        for i, key in enumerate(keys):
            if i:
                out.append(",")
            out.append('"' + key.translate(_STRING_ESCAPES) + '":')
            _jcs(value[key], out)
        out.append("}")
    else:
        raise CanonicalizationError(f"{type(value).__name__} is not a JSON value")


def es_number(x: float) -> str:
    """ECMAScript Number::toString for a finite double (ECMA-262 7.1.12.1, RFC 8785 3.2.2.3).

    ``repr`` gives the shortest digit string that round-trips, as ECMAScript
    requires; only its layout (where the point goes, when to use an exponent)
    differs, and is redone here.
    """
    if math.isnan(x) or math.isinf(x):
        raise CanonicalizationError(f"{x} is not representable in JSON")
    if x == 0:
        return "0"  # also -0
    if x < 0:
        return "-" + es_number(-x)
    mantissa, _, exp = repr(x).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    # x = int(digits) * 10 ** (exponent - len(fraction)); strip the trailing zeros of the digits.
    n = (int(exp) if exp else 0) - len(fraction) + len(digits)  # x = 0.DIGITS * 10**n
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    sign = "+" if e >= 0 else "-"
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{head}e{sign}{abs(e)}"


# --------------------------------------------------------------------------------------------------
# Strict JSON: what a reader parses must be exactly what was hashed


class JSONProblem(ValueError):
    """JSON that strict reading refuses: a duplicate member name, NaN or Infinity, a lone surrogate,
    a number outside the safe range, bytes that are not the value's RFC 8785 form."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JSONProblem(f"member {key!r} appears twice in one object (a reader may see either value)")
            seen.add(key)
    return obj


def _no_constant(name: str) -> Any:
    raise JSONProblem(f"{name} is not a JSON value")


def strict_loads(data: bytes | str) -> Any:
    """``json.loads`` refusing duplicate member names at any depth and NaN/Infinity (JSONProblem);
    ValueError for text that is not JSON. The other strict checks are ``json_problem``'s."""
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise JSONProblem("nested too deeply") from None


def _unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_problem(value: Any, where: str = "") -> str | None:
    """The first thing in ``value`` strict JSON refuses, named by its member path; None if nothing.

    Lone surrogates (in strings and member names), integers outside +-(2**53 - 1) (JSON numbers
    are doubles: beyond that, parsers disagree on the value) and non-finite numbers.
    """
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        kind = type(item)
        if kind is str:
            if not _unicode(item):
                return f"{path or 'a string'}: a lone surrogate (not Unicode)"
        elif kind is int:
            if not -_INT_LIMIT <= item <= _INT_LIMIT:
                return f"{path or 'a number'}: the integer {item} is outside +-(2^53 - 1)"
        elif kind is float:
            if math.isnan(item) or math.isinf(item):
                return f"{path or 'a number'}: {item} is not a JSON number"
        elif kind is dict:
            for key, member in item.items():
                if not _unicode(key):
                    return f"{path or 'an object'}: a member name with a lone surrogate"
                stack.append((member, f"{path}.{key}" if path else key))
        elif kind is list:
            stack.extend((member, f"{path}[{i}]") for i, member in enumerate(item))
    return None


def exact_json_problem(raw: bytes, where: str = "") -> str | None:
    """Why ``raw`` is not exactly the RFC 8785 form of a strict JSON value; None when it is."""
    try:
        value = strict_loads(raw)
    except JSONProblem as exc:
        return f"{where}: {exc}" if where else str(exc)
    except ValueError as exc:
        return f"{where}: not JSON ({exc})" if where else f"not JSON ({exc})"
    problem = json_problem(value, where)
    if problem is not None:
        return problem
    try:
        canonical = canonicalize(value)
    except CanonicalizationError as exc:
        return f"{where}: {exc}" if where else str(exc)
    if canonical != raw:
        return f"{where + ': ' if where else ''}the bytes are not the value's RFC 8785 canonical form"
    return None


class _Unusual:
    """Stands for a number the fast check leaves to ``exact_json_problem`` (the encoder refuses it)."""

    __slots__ = ()

    def __init__(self, text: str) -> None:
        pass


def _safe_int(text: str) -> Any:
    value = int(text)
    return value if -_INT_LIMIT <= value <= _INT_LIMIT and text != "-0" else _Unusual(text)


def _plain_float(text: str) -> Any:
    """A float literal the encoder writes back as the same text only when that text is its ECMAScript form:
    ``repr`` and ECMAScript agree on the digits, and on the layout outside exponent forms and "x.0"."""
    value = float(text)
    if "e" in text or "E" in text or text.endswith(".0") or repr(value) != text:
        return _Unusual(text)
    return value


_fast_scan: Any = json.scanner.make_scanner(
    json.JSONDecoder(parse_float=_plain_float, parse_int=_safe_int, parse_constant=_Unusual))  # type: ignore[arg-type]
_fast_encode = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, None, json.encoder.encode_basestring, None, ":", ",", True, False, False
) if json.encoder.c_make_encoder is not None else None  # type: ignore[attr-defined]


def is_exact_json(raw: bytes) -> bool:
    """Whether ``raw`` is exactly the RFC 8785 form of a strict JSON value: the fast check.

    Parsed by the standard library's C scanner and written back by its C encoder with sorted
    member names, no spaces, JCS's escapes: equal bytes mean no duplicate member (it would have
    been dropped), no other spacing or escaping. Numbers other than safe integers, and member
    names where code-point order can differ from UTF-16 order (characters from U+E000 on), are
    left to ``exact_json_problem`` (False here means "not shown canonical this way", not "bad").
    """
    if _fast_encode is None:
        return exact_json_problem(raw) is None
    try:
        text = raw.decode("ascii") if raw.isascii() else raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return is_exact_json_text(text)


def is_exact_json_text(text: str) -> bool:
    """``is_exact_json`` for text already decoded (a stored payload)."""
    try:
        if not text.isascii() and max(text) >= "\ue000":
            return False
        value, end = _fast_scan(text, 0)
        return end == len(text) and "".join(_fast_encode(value, 0)) == text  # type: ignore[misc]
    except Exception:  # not JSON, an _Unusual number, too deep, no C encoder...: the exact check decides
        return False


_PLAIN = rb'"[^"\\\x00-\x1f]*"'  # a string with nothing to escape: its canonical form is itself
_BODY_HEAD = re.compile(rb'\{"actor":\{"id":' + _PLAIN + rb',"type":' + _PLAIN + rb'\},"event_type":' + _PLAIN)
# The members after the payload in their canonical layout; the groups are what ``Entry`` keeps.
_BODY_TAIL = re.compile(
    rb',"prev_hash":"([0-9a-f]{64})"(?:,"request_id":"[A-Za-z0-9._:-]{1,64}")?,"seq":(0|[1-9][0-9]{0,15}),'
    rb'"subject":\{"id":(' + _PLAIN + rb',"type":' + _PLAIN + rb'\}),"subject_prev":(null|0|[1-9][0-9]{0,15}),'
    rb'"timestamp":"([^"\\\x00-\x1f]{27})"\}')


def fast_entry(raw: bytes, entry_hash: bytes, check: bool = True) -> Entry | None:
    """The fields of an entry body whose members after the payload are in their exact canonical layout
    (None if they are not: the caller parses the body). ``check``: also ``is_exact_rest``, so that
    the whole body is shown exactly canonical strict JSON; without it the caller must have that
    checked (the proof worker does, for every other body).

    Only for bytes that hashed to the entry's hash. The same fields as ``fields_of_canonical``, by one
    regular expression that also checks what the layout leaves open (hex, no leading zeros, strings
    with nothing to escape).
    """
    end = raw.rfind(b',"prev_hash":"')
    match = _BODY_TAIL.fullmatch(raw, end) if end > 0 else None
    if match is None or (check and not is_exact_rest(raw, end)):
        return None
    prev_hash, seq, subject, subject_prev, timestamp = match.groups()
    return Entry(int(seq), prev_hash, subject, None if subject_prev == b"null" else int(subject_prev), timestamp,
                 entry_hash, raw)


def is_exact_rest(raw: bytes, end: int | None = None) -> bool:
    """Whether the body up to its members after the payload (at ``end``) is exactly canonical strict JSON:
    the actor and event type in their layout, the payload by ``is_exact_json``, valid UTF-8 throughout.
    False means "not shown this way": ``exact_json_problem`` decides."""
    if end is None:
        end = raw.rfind(b',"prev_hash":"')
    start = raw.find(b',"payload":')
    if start < 0 or end < start + 13 or raw[start + 11] != 0x7B or _BODY_HEAD.fullmatch(raw, 0, start) is None:
        return False
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return is_exact_json(raw[start + 11 : end])


# A whole line of entries.jsonl in the exporter's layout with its body's fields in their exact canonical layout
# (what ``fast_entry`` matches, for every line of a block at once). The groups: body, event type, payload,
# prev_hash, seq, subject key, subject_prev, timestamp, entry_hash. The payload ends at the first
# ',"prev_hash":"', found comma by comma (a payload of any length costs a step per comma, not per byte, when
# backtracking); a payload holding that text itself leaves its line to the line-by-line code.
_PAGE_LINE = re.compile(
    rb'^\{"body":(\{"actor":\{"id":' + _PLAIN + rb',"type":' + _PLAIN + rb'\},"event_type":"([^"\\\x00-\x1f]*)",'
    rb'"payload":(\{(?:[^,\n]*,(?!"prev_hash":"))*[^,\n]*),"prev_hash":"([0-9a-f]{64})"(?:,"request_id":"[A-Za-z0-9._:-]{1,64}")?,'
    rb'"seq":(0|[1-9][0-9]{0,15}),"subject":\{"id":(' + _PLAIN + rb',"type":' + _PLAIN + rb'\}),'
    rb'"subject_prev":(null|0|[1-9][0-9]{0,15}),"timestamp":"([^"\\\x00-\x1f]{27})"\}),'
    rb'"entry_hash":"([0-9a-f]{64})"\}\n', re.MULTILINE)


class Page:
    """The entry lines of one block of entries.jsonl, every one shown exactly canonical strict JSON in the
    exporter's layout and hashing to its entry_hash: the fields as columns (``page_of``)."""

    __slots__ = ("bodies", "entry_hashes", "event_types", "leaves", "prev_hashes", "seqs", "subject_prevs",
                 "subjects", "timestamps")

    def __init__(self, columns: list[tuple[bytes, ...]], leaves: list[bytes], seqs: list[int],
                 subject_prevs: list[int | None]) -> None:
        (self.bodies, self.event_types, _, self.prev_hashes, _, self.subjects, _, self.timestamps,
         self.entry_hashes) = columns
        self.leaves = leaves
        self.seqs = seqs
        self.subject_prevs = subject_prevs

    def entry(self, i: int) -> Entry:
        return Entry(self.seqs[i], self.prev_hashes[i], self.subjects[i], self.subject_prevs[i], self.timestamps[i],
                     self.entry_hashes[i], self.bodies[i])


def page_of(block: bytes, count: int, hashed: bool = True) -> Page | None:
    """The ``count`` lines of ``block`` (each ending with a newline) as a ``Page``, when every one is what the
    inlined fast case of ``_check_entries`` accepts (``fast_entry`` with its full check, the hash equal to
    entry_hash); None as soon as one is not shown so ("not this way", not "bad": the caller takes the block
    line by line).

    One regular-expression pass over the block takes every line apart (a match is a whole line, so
    ``count`` matches are all the lines); the bodies are hashed in one comprehension and compared with the
    entry hashes as one string (unless ``hashed`` is False: then the caller has them checked, and ``leaves``
    is empty); the payloads are decoded at once and each scanned by the C scanner (a
    complete object on its own) and all written back by one call of the C encoder, compared with the
    payloads as one string: equal, each payload is its own canonical form (each is a complete value, so the
    comma-joined texts can only split one way).
    """
    if _fast_encode is None:
        return None
    found = _PAGE_LINE.findall(block)
    if len(found) != count or not count:
        return None
    if not block.isascii():
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            return None
    columns: list[tuple[bytes, ...]] = list(zip(*found))
    bodies, payloads, entry_hashes = columns[0], columns[2], columns[8]
    if hashed:
        sha256 = hashlib.sha256
        leaves = [sha256(b"\x00" + body).digest() for body in bodies]
        if binascii.hexlify(b"".join(leaves)) != b"".join(entry_hashes):
            return None
    else:
        leaves = []  # the proof worker hashes the bodies (``_ProofWorker.add_page``)
    joined = b"\n".join(payloads)
    text = joined.decode("ascii") if joined.isascii() else joined.decode("utf-8")
    if not text.isascii() and max(text) >= "\ue000":
        return None  # member names whose code-point order may differ from UTF-16 order: ``is_exact_json`` too
    parts = text.split("\n")
    scan = _fast_scan
    try:
        scanned = [scan(part, 0) for part in parts]
        if [end for _, end in scanned] != [len(part) for part in parts]:
            return None
        if "".join(_fast_encode([value for value, _ in scanned], 0)) != "[" + ",".join(parts) + "]":
            return None
    except Exception:  # not JSON, an _Unusual number, too deep...: line by line, the careful code decides
        return None
    seqs = [int(seq) for seq in columns[4]]
    subject_prevs = [None if sp == b"null" else int(sp) for sp in columns[6]]
    return Page(columns, leaves, seqs, subject_prevs)


def is_exact_body(raw: bytes) -> bool:
    """The fast check of a whole entry body: exactly canonical strict JSON with the members of an entry."""
    end = raw.rfind(b',"prev_hash":"')
    return end > 0 and _BODY_TAIL.fullmatch(raw, end) is not None and is_exact_rest(raw, end)


def json_check(raw: bytes, where: str = "") -> str | None:
    """None when ``raw`` is exactly canonical strict JSON, else what is wrong with it."""
    if is_exact_json(raw):
        return None
    return exact_json_problem(raw, where)


# --------------------------------------------------------------------------------------------------
# RFC 9162 Merkle tree hashes and proofs


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(index: int, size: int, leaf: bytes, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: does ``path`` lead from leaf ``index`` to ``root`` of a tree of ``size``?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2: is the tree of ``new_size`` an append-only extension of ``old_size``?"""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size & (old_size - 1) == 0:
        proof = [old_root, *proof]
    if not proof:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


# --------------------------------------------------------------------------------------------------
# C2SP tlog-tiles (c2sp.org/tlog-tiles): the tree as static tiles, for --tiles URL

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # hashes in a full tile
HASH_SIZE = 32
_MAX_CHECKPOINT_BYTES = 1 << 16  # a signed note with a few dozen cosignatures is a few KB
_TILE_TIMEOUT = 30.0


def tile_path(level: int | str, index: int, width: int = TILE_WIDTH) -> str:
    """The tile's path below the log's prefix: ``tile/<L>/<N>[.p/<W>]``, ``level`` ``"entries"`` for an entry
    bundle. ``N`` in zero-padded groups of three digits, all but the last prefixed with ``x`` (1234067 →
    ``x001/x234/067``); ``.p/<W>`` only for a partial tile (1 ≤ W ≤ 255)."""
    if index < 0 or not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"no tile {index} of width {width}")
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    path = f"tile/{level}/" + "/".join(reversed(groups))
    return path if width == TILE_WIDTH else f"{path}.p/{width}"


class TileMismatch(ValueError):
    """A tile the log served is not what its checkpoint requires (wrong length): a failure, not a read error."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: the token (``--tiles-token-file``) would go along to wherever they point."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None  # urllib then raises HTTPError for the 3xx, reported as unreadable


class TileClient:
    """GETs of a tiled log's checkpoint and tiles under ``prefix`` (http or https), with an optional bearer
    token. Every read failure (network, HTTP status other than 200, a redirect, an oversized answer) is a
    ``VerifyError``: the tiles cannot be read, so nothing can be said about them (exit status 2)."""

    def __init__(self, prefix: str, token: str | None = None, timeout: float = _TILE_TIMEOUT) -> None:
        split = urllib.parse.urlsplit(prefix)
        if split.scheme not in ("http", "https") or not split.hostname or split.query or split.fragment:
            raise VerifyError(f"--tiles {prefix!r}: an http(s) URL without query or fragment is needed")
        if token is not None and split.scheme == "http" and split.hostname not in ("127.0.0.1", "::1", "localhost"):
            raise VerifyError(f"--tiles {prefix!r}: the token is only sent over https (or to this machine)")
        self.prefix = prefix.rstrip("/") + "/"
        self.token = token
        self.timeout = timeout
        self.fetched = 0
        self._open = urllib.request.build_opener(_NoRedirect()).open

    def get(self, path: str, max_bytes: int, *, missing_ok: bool = False) -> bytes | None:
        """The body at ``prefix + path`` (at most ``max_bytes``); None for a 404 when ``missing_ok``."""
        url = self.prefix + path
        # (the scheme was checked to be http or https in __init__)
        request = urllib.request.Request(url, headers={"Accept": "*/*", "User-Agent": "verify.py"})  # noqa: S310
        if self.token is not None:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with self._open(request, timeout=self.timeout) as answer:
                data: bytes = answer.read(max_bytes + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and missing_ok:
                return None
            hint = " (give a token with ledger:read: --tiles-token-file)" if exc.code in (401, 403) else ""
            raise VerifyError(f"cannot read {url}: HTTP {exc.code}{hint}") from None
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise VerifyError(f"cannot read {url}: {exc}") from None
        if len(data) > max_bytes:
            raise VerifyError(f"cannot read {url}: the answer is larger than {max_bytes} bytes")
        self.fetched += 1
        return data

    def checkpoint(self) -> str:
        data = self.get("checkpoint", _MAX_CHECKPOINT_BYTES)
        assert data is not None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise VerifyError(f"{self.prefix}checkpoint is not UTF-8 text") from None


class TileTree:
    """MTH of any range of the tree of ``size`` leaves, computed from the hash tiles a ``TileClient`` serves.

    Nothing here is trusted: the hashes it returns are only as good as the checks they then pass
    (``verify_inclusion`` / ``verify_consistency`` against a checkpoint verified with trusted keys). A tile of
    the wrong length raises ``TileMismatch``. Each tile is fetched once; each node is computed once.
    """

    def __init__(self, client: TileClient, size: int) -> None:
        self.client = client
        self.size = size
        self.tiles: dict[tuple[int, int], bytes] = {}
        self.nodes: dict[tuple[int, int], bytes] = {}

    def tile(self, level: int, index: int) -> bytes:
        """Tile ``index`` at tile level ``level``, as wide as the tree of ``size`` makes it."""
        key = (level, index)
        if key in self.tiles:
            return self.tiles[key]
        width = min(TILE_WIDTH, (self.size >> (TILE_HEIGHT * level)) - index * TILE_WIDTH)
        if width <= 0:
            raise TileMismatch(f"tile {level}/{index} is beyond the tree of size {self.size}")
        data = self.client.get(tile_path(level, index, width), TILE_WIDTH * HASH_SIZE, missing_ok=width < TILE_WIDTH)
        if data is None:  # a partial tile the log no longer keeps: the full one starts with the same hashes
            full = self.client.get(tile_path(level, index), TILE_WIDTH * HASH_SIZE)
            data = (full or b"")[: width * HASH_SIZE]
        if len(data) != width * HASH_SIZE:
            raise TileMismatch(f"tile {tile_path(level, index, width)} has {len(data)} bytes, not {width * HASH_SIZE}")
        self.tiles[key] = data
        return data

    def node(self, level: int, index: int) -> bytes:
        """The perfect subtree of 2**level leaves starting at leaf ``index << level``."""
        key = (level, index)
        found = self.nodes.get(key)
        if found is not None:
            return found
        tile_level, rest = divmod(level, TILE_HEIGHT)
        if rest == 0:
            first = index
            data = self.tile(tile_level, first // TILE_WIDTH)
            at = (first % TILE_WIDTH) * HASH_SIZE
            value = data[at: at + HASH_SIZE]
        else:
            value = node_hash(self.node(level - 1, 2 * index), self.node(level - 1, 2 * index + 1))
        self.nodes[key] = value
        return value

    def mth(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a range as RFC 9162's recursion produces them (``start`` aligned)."""
        n = end - start
        if n & (n - 1) == 0:
            level = n.bit_length() - 1
            return self.node(level, start >> level)
        k = 1 << ((n - 1).bit_length() - 1)
        return node_hash(self.mth(start, start + k), self.mth(start + k, end))

    def inclusion(self, index: int) -> list[bytes]:
        """PATH(index, D[0:size]) (RFC 9162 2.1.3.1), leaf to root."""
        path: list[bytes] = []
        start, end = 0, self.size
        while end - start > 1:
            k = 1 << ((end - start - 1).bit_length() - 1)
            if index < start + k:
                path.append(self.mth(start + k, end))
                end = start + k
            else:
                path.append(self.mth(start, start + k))
                start += k
        path.reverse()
        return path

    def consistency(self, old_size: int) -> list[bytes]:
        """PROOF(old_size, D[0:size]) (RFC 9162 2.1.4.1), for 0 < old_size < size."""
        proof: list[bytes] = []
        m, start, end, complete = old_size, 0, self.size, True
        while True:
            n = end - start
            if m == n:
                if not complete:
                    proof.append(self.mth(start, end))
                break
            k = 1 << ((n - 1).bit_length() - 1)
            if m <= k:
                proof.append(self.mth(start + k, end))
                end = start + k
            else:
                proof.append(self.mth(start, start + k))
                start, m, complete = start + k, m - k, False
        proof.reverse()
        return proof


class InclusionChecker:
    """RFC 9162 inclusion verification against one root, remembering the previous proof.

    Proofs of neighbouring leaves share their upper part. After each step of the
    algorithm the state is ``(fn, sn, r)``; when that state and every remaining
    path element equal those of the previous proof (which reached the root), the
    rest of the computation is the same, so this proof reaches the root too. The
    result is always exactly that of ``verify_inclusion``; only the work differs
    (about two hashes per proof for consecutive leaves instead of ~log2(size)).
    """

    def __init__(self, size: int, root: bytes) -> None:
        self.size = size
        self.root = root
        self._path: list[bytes] = []
        # The previous proof's state after each step, indexed by the number of path elements left.
        self._states: list[tuple[int, int, bytes]] = []
        self._line = b""
        self._line_states: list[tuple[int, int, bytes]] = []
        self._middle = b',"tree_size":%d,"inclusion":["' % size

    def check(self, index: int, leaf: bytes, path: list[bytes]) -> bool:
        """``path`` is the proof's hashes in hex (as bytes), leaf to root."""
        if not 0 <= index < self.size:
            return False
        prev_path, prev_states = self._path, self._states
        total = len(path)
        states: list[tuple[int, int, bytes]] = [(0, 0, b"")] * total
        fn, sn, r = index, self.size - 1, leaf
        unhex = binascii.unhexlify
        for step, token in enumerate(path):
            if sn == 0 or len(token) != 64:
                return False
            try:
                p = unhex(token)
            except (ValueError, binascii.Error):
                return False
            if fn & 1 or fn == sn:
                r = node_hash(p, r)
                if not fn & 1:
                    while fn & 1 == 0 and fn != 0:
                        fn >>= 1
                        sn >>= 1
            else:
                r = node_hash(r, p)
            fn >>= 1
            sn >>= 1
            left = total - step - 1
            state = (fn, sn, r)
            states[left] = state
            if (
                left < len(prev_states)
                and prev_states[left] == state
                and path[step + 1 :] == prev_path[len(prev_path) - left :]
            ):
                # Same state, same remaining path as a proof that reached the root.
                states[:left] = prev_states[:left]
                self._path, self._states = path, states
                return True
        if sn == 0 and r == self.root:
            self._path, self._states = path, states
            return True
        return False

    def check_line(self, index: int, leaf: bytes, line: bytes) -> bool | None:
        """``check`` straight from a proofs.jsonl line in the exporter's exact layout; None for any other.

        That layout is ``{"seq":N,"tree_size":S,"inclusion":["H","H",...,"H"]}`` with every
        hash 64 hex digits: each hash sits 67 bytes after the previous one, and the part
        of the line after a hash is the rest of the path. So only the hashes the
        algorithm consumes are read, and "the remaining path equals the previous
        proof's" is one comparison of the lines' tails. The previous line was itself
        fully checked (every hash read) or shared its tail with one that was.
        """
        prefix = b'{"seq":%d' % index + self._middle
        start = len(prefix)
        k, extra = divmod(len(line) - start, 67)
        if extra or k == 0 or not line.startswith(prefix) or line[-3:] != b'"]}':
            return None
        if not 0 <= index < self.size:
            return False
        prev_line, states = self._line, self._line_states
        # The states are updated in place; a failure forgets them (so they never describe a bad proof).
        if len(states) != k:
            states = [(0, 0, b"")] * k
            prev_line = b""
        self._line = b""
        self._line_states = []
        fn, sn, r = index, self.size - 1, leaf
        unhex, sha256 = binascii.unhexlify, hashlib.sha256
        pos = start
        left = k
        while left:
            left -= 1
            if sn == 0:
                return False
            try:
                p = unhex(line[pos : pos + 64])
            except (ValueError, binascii.Error):
                return False
            if line[pos + 64 : pos + 67] != (b'","' if left else b'"]}'):
                return False
            if fn & 1 or fn == sn:
                r = sha256(b"\x01" + p + r).digest()
                if not fn & 1:
                    while fn & 1 == 0 and fn != 0:
                        fn >>= 1
                        sn >>= 1
            else:
                r = sha256(b"\x01" + r + p).digest()
            fn >>= 1
            sn >>= 1
            state = (fn, sn, r)
            if prev_line and states[left] == state and line[-67 * left - 3 :] == prev_line[-67 * left - 3 :]:
                # Same state and same remaining path as the previous proof, which reached the root.
                self._line, self._line_states = line, states
                return True
            states[left] = state
            pos += 67
        if sn == 0 and r == self.root:
            self._line, self._line_states = line, states
            return True
        return False


    def problem(self, n: int, seq: int, leaf: bytes, line: bytes | None) -> str | None:
        """Why ``line`` (line ``n`` of proofs.jsonl; None past its end) does not prove that ``leaf`` is entry
        ``seq`` of this tree, in verify.py's words; None when it does. Both processes use it."""
        if line is None:
            return f"proof seq {seq}: proofs.jsonl has no line for this entry"
        verdict = self.check_line(seq, leaf, line)
        if verdict is None:  # not the exporter's exact layout
            try:
                p_seq, p_size, path = parse_proof_line(line)
            except ValueError as exc:
                return f"proof seq {seq}: line {n} of proofs.jsonl is malformed ({exc})"
            if p_seq != seq:
                return f"proof seq {seq}: line {n} of proofs.jsonl is for seq {p_seq}"
            if p_size != self.size:
                return f"proof seq {seq}: it is for tree size {p_size}, checkpoint.txt has {self.size}"
            verdict = self.check(seq, leaf, path)
        if verdict:
            return None
        return f"proof seq {seq}: the inclusion proof does not lead to the root of checkpoint.txt"

_SIBLINGS = [[(t >> level) ^ 1 for t in range(TILE_WIDTH)] for level in range(TILE_HEIGHT)]


class ProofPages:
    """The inclusion proofs of runs of entries, many at once: True only when every one of them verifies
    (exactly ``verify_inclusion``'s verdict for each; False says only "not all": the caller redoes the
    entries with the per-line code, which finds and words each failure).

    Each full tile (``TILE_WIDTH`` consecutive leaves from a multiple of it, all in the tree) is a perfect
    subtree: the first ``TILE_HEIGHT`` hashes of each of its leaves' proofs are the siblings inside it and
    the rest is the same for all of them. So the tile's hashes are computed level by level (one
    comprehension a level), every line is compared with the line those siblings and the first line's rest
    make, and only the first line is verified up to the root (``InclusionChecker.check_line``: a proof
    starting from the same leaves' true subtree root with the same rest reaches the same root). Leaves
    outside full tiles are checked one by one.
    """

    def __init__(self, size: int, root: bytes) -> None:
        self.size = size
        self.checker = InclusionChecker(size, root)
        self._middle = b',"tree_size":%d,"inclusion":["' % size
        self._fmt = b'{"seq":%d' + self._middle.replace(b"%", b"%%") + b'","'.join([b"%s"] * TILE_HEIGHT) + b"%s"
        self.seqs: list[int] = []
        self.leaves: list[bytes] = []
        self.lines: list[bytes] = []

    def add(self, seqs: list[int], leaves: list[bytes], lines: list[bytes]) -> bool:
        """Queue entries (their seq, leaf hash and proofs.jsonl line; any order, fastest in runs of consecutive
        seq) and check what full tiles are complete; False when a proof failed (nothing more is to be asked)."""
        if self.seqs and seqs and seqs[0] != self.seqs[-1] + 1 and not self.flush():
            return False
        self.seqs += seqs
        self.leaves += leaves
        self.lines += lines
        first = self.seqs[0] if self.seqs else 0
        start = -first % TILE_WIDTH  # the first leaf of a tile
        done = start + (len(self.seqs) - start) // TILE_WIDTH * TILE_WIDTH
        if done <= start:
            return True
        check = self.checker.check_line
        if not all(check(q, leaf, line) is True
                   for q, leaf, line in zip(self.seqs[:start], self.leaves[:start], self.lines[:start])):
            return False
        for at in range(start, done, TILE_WIDTH):
            if not self._tile(at):
                return False
        del self.seqs[:done], self.leaves[:done], self.lines[:done]
        return True

    def flush(self) -> bool:
        """Check what is queued, one by one."""
        check = self.checker.check_line
        ok = all(check(q, leaf, line) is True for q, leaf, line in zip(self.seqs, self.leaves, self.lines))
        self.seqs, self.leaves, self.lines = [], [], []
        return ok

    def _tile(self, at: int) -> bool:
        seq0 = self.seqs[at]
        end = at + TILE_WIDTH
        leaves, lines = self.leaves[at:end], self.lines[at:end]
        check = self.checker.check_line
        seqs = self.seqs[at:end]
        if seq0 % TILE_WIDTH or seq0 + TILE_WIDTH > self.size or seqs != list(range(seq0, seq0 + TILE_WIDTH)):
            return all(check(q, leaf, line) is True for q, leaf, line in zip(seqs, leaves, lines))
        first = lines[0]
        cut = len(b'{"seq":%d' % seq0) + len(self._middle) + TILE_HEIGHT * 67 - 3  # after the tile's hashes
        if len(first) < cut + 3 or check(seq0, leaves[0], first) is not True:
            return False
        sha256, hexlify = hashlib.sha256, binascii.hexlify
        columns = []
        level = leaves
        for siblings in _SIBLINGS:
            columns.append(list(map([hexlify(node) for node in level].__getitem__, siblings)))
            level = [sha256(b"\x01" + left + right).digest() for left, right in zip(level[::2], level[1::2])]
        rest = [first[cut:]] * TILE_WIDTH
        fmt = self._fmt
        return [fmt % parts for parts in zip(range(seq0, seq0 + TILE_WIDTH), *columns, rest)] == lines


# --------------------------------------------------------------------------------------------------
# C2SP signed notes, checkpoints and verifier keys


class NoteError(ValueError):
    pass


SIG_PREFIX = "\u2014 "  # em dash, space


def key_id(name: str, public: bytes) -> bytes:
    """signed-note key ID: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n\x01" + public).digest()[:4]


def _parse_vkey(vkey: str, key_type: bytes) -> tuple[str, bytes, Ed25519PublicKey]:
    """(name, key ID, public key) of a signed-note verifier key ``name+hexid+base64(type || key)``."""
    text = vkey.strip()
    try:
        name, hex_id, b64 = text.split("+", 2)
        raw = base64.b64decode(b64, validate=True)
        kid = bytes.fromhex(hex_id)
    except (ValueError, binascii.Error):
        raise NoteError(f"malformed verifier key {text!r}") from None
    if not name or len(kid) != 4 or len(raw) != 33 or raw[:1] != key_type:
        kind = "an Ed25519 cosigner (type 0x04)" if key_type == b"\x04" else "an Ed25519 (type 0x01)"
        raise NoteError(f"malformed verifier key, or not {kind} key: {text!r}")
    if hashlib.sha256(name.encode("utf-8") + b"\n" + raw).digest()[:4] != kid:
        raise NoteError(f"verifier key {text!r} has a key ID that does not match its key")
    return name, kid, Ed25519PublicKey.from_public_bytes(raw[1:])


class Verifier:
    """A signed-note verifier key ``name+hexid+base64(0x01 || 32-byte Ed25519 key)``."""

    def __init__(self, vkey: str) -> None:
        self.name, self.key_id, self.public = _parse_vkey(vkey, b"\x01")
        self.text = vkey.strip()

    def __repr__(self) -> str:
        return self.text


def open_note(note: str, verifiers: list[Verifier]) -> tuple[str, list[Verifier], int]:
    """Verify a signed note: (text, the known keys that signed it, number of unknown signatures).

    As the signed-note spec requires, signatures by unknown keys are ignored and
    a bad signature by a known key rejects the note; at least one known key
    must have signed.
    """
    if "\n\n" not in note or not note.endswith("\n"):
        raise NoteError("not a signed note (no blank line before the signatures)")
    if any(c < " " and c != "\n" for c in note):
        raise NoteError("control characters other than newline in a signed note")
    split = note.rindex("\n\n")
    text, block = note[: split + 1], note[split + 2 :]
    known = {(v.name, v.key_id): v for v in verifiers}
    signed_by: list[Verifier] = []
    seen: set[tuple[str, bytes]] = set()
    unknown: set[str] = set()
    for line in block.splitlines():
        if not line.startswith(SIG_PREFIX):
            raise NoteError(f"malformed signature line {line!r}")
        try:
            name, b64 = line[len(SIG_PREFIX) :].split(" ")
            blob = base64.b64decode(b64, validate=True)
        except (ValueError, binascii.Error):
            raise NoteError(f"malformed signature line {line!r}") from None
        if len(blob) < 5:
            raise NoteError(f"malformed signature line {line!r}")
        verifier = known.get((name, blob[:4]))
        if verifier is None:
            unknown.add(line)
            continue
        if (name, blob[:4]) in seen:
            continue
        seen.add((name, blob[:4]))
        try:
            verifier.public.verify(blob[4:], text.encode("utf-8"))
        except InvalidSignature:
            raise NoteError(f"the signature by {name}+{blob[:4].hex()} does not verify") from None
        signed_by.append(verifier)
    if not signed_by:
        raise NoteError(f"no signature by a trusted key ({len(unknown)} by unknown keys)")
    return text, signed_by, len(unknown)


def parse_checkpoint(text: str) -> tuple[str, int, bytes]:
    """C2SP tlog-checkpoint body: (origin, tree size, root hash); extension lines are ignored."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("a checkpoint needs an origin, a tree size and a root hash, each on its own line")
    origin, size, root = lines[0], lines[1], lines[2]
    if not origin or not (size.isascii() and size.isdigit()) or (size != "0" and size.startswith("0")):
        raise NoteError("malformed checkpoint origin or tree size")
    try:
        root_hash = base64.b64decode(root, validate=True)
    except (ValueError, binascii.Error):
        raise NoteError("the checkpoint root hash is not base64") from None
    if len(root_hash) != 32:
        raise NoteError("the checkpoint root hash is not 32 bytes")
    return origin, int(size), root_hash


def signers_of(note: str) -> list[str]:
    """``name+hexid`` of every signature line of a note, without verifying anything."""
    out = []
    if "\n\n" in note:
        for line in note[note.rindex("\n\n") + 2 :].splitlines():
            try:
                name, b64 = line[len(SIG_PREFIX) :].split(" ")
                out.append(f"{name}+{base64.b64decode(b64)[:4].hex()}")
            except (ValueError, binascii.Error):
                continue
    return out


# --------------------------------------------------------------------------------------------------
# trust anchors: trusted keys with their lifetimes, witnesses (cosigners)


def parse_trusted_key_line(line: str) -> tuple[str, int, int | None] | None:
    """One trusted-key line: ``<vkey>[ from=<N>][ until=<M>]`` as (vkey, N, M); None for a blank or ``#`` line.

    The key is valid for checkpoints whose tree size S satisfies N <= S <= M (no ``until``:
    no upper bound; no ``from``: 0). Raises ValueError, with a message, for anything else.
    The same format is used by --trusted-key, --trusted-keys-file, the bundle's keys.txt and
    the ledger's configuration (docs/verifying.md).
    """
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    vkey, *options = text.split()
    start: int | None = None
    until: int | None = None
    for option in options:
        name, sep, value = option.partition("=")
        if not sep or name not in ("from", "until") or not (value.isascii() and value.isdigit()):
            raise ValueError(f"{option!r} in trusted-key line {text!r}: expected from=N or until=M")
        if (start if name == "from" else until) is not None:
            raise ValueError(f"{name}= appears twice in trusted-key line {text!r}")
        if name == "from":
            start = int(value)
        else:
            until = int(value)
    Verifier(vkey)  # a NoteError (a ValueError) names what is wrong with the key
    if start is not None and until is not None and until < start:
        raise ValueError(f"trusted-key line {text!r}: until={until} is before from={start}")
    return vkey, start or 0, until


class TrustedKey:
    """A verifier key and the tree sizes it may sign: ``valid_from`` <= size <= ``valid_until``."""

    def __init__(self, vkey: str, valid_from: int = 0, valid_until: int | None = None) -> None:
        self.verifier = Verifier(vkey)
        self.valid_from = valid_from
        self.valid_until = valid_until

    @classmethod
    def parse(cls, line: str) -> TrustedKey | None:
        parsed = parse_trusted_key_line(line)
        return None if parsed is None else cls(*parsed)

    def valid_for(self, size: int) -> bool:
        return self.valid_from <= size and (self.valid_until is None or size <= self.valid_until)

    def line(self) -> str:
        out = self.verifier.text
        if self.valid_from:
            out += f" from={self.valid_from}"
        if self.valid_until is not None:
            out += f" until={self.valid_until}"
        return out

    def validity(self) -> str:
        return f"valid for tree sizes {self.valid_from}..{'' if self.valid_until is None else self.valid_until}"


def key_validity_problem(
    name: str, size: int, signers: list[Verifier], keys: list[TrustedKey]
) -> tuple[str, str] | None:
    """(reason, message) when no key that signed the checkpoint (of tree ``size``) is valid for that size.

    A key listed more than once is valid where any of its lines says so. ``retired_key`` when a
    signer's lifetime ended before ``size`` (a retired key signing a larger tree: a rewritten history);
    ``bad_signature`` when the signers' lifetimes all start after ``size``.
    """
    by_key: dict[str, list[TrustedKey]] = {}
    for key in keys:
        by_key.setdefault(key.verifier.text, []).append(key)
    if any(k.valid_for(size) for v in signers for k in by_key.get(v.text, [])):
        return None
    lines = [k for v in signers for k in by_key.get(v.text, [])]
    retired = [k for k in lines if k.valid_until is not None and k.valid_until < size]
    if retired:
        return RETIRED_KEY, (
            f"checkpoint {name} (tree size {size:,}) is signed only by "
            + ", ".join(f"{k.verifier.text} (retired: until={k.valid_until})" for k in retired)
            + "; a key retired before this size cannot vouch for it (a history rewritten with an old key)")
    return BAD_SIGNATURE, (
        f"checkpoint {name} (tree size {size:,}) is signed only by key(s) not valid for that size: "
        + ", ".join(f"{k.verifier.text} (from={k.valid_from})" for k in lines))


class Cosigner:
    """A witness's cosigner key ``name+hexid+base64(0x04 || 32-byte Ed25519 key)`` (c2sp.org/tlog-cosignature)."""

    def __init__(self, vkey: str) -> None:
        self.name, self.key_id, self.public = _parse_vkey(vkey, b"\x04")
        self.text = vkey.strip()

    def __repr__(self) -> str:
        return self.text


def parse_witness_line(line: str) -> str | None:
    """A witnesses-file line: a cosigner vkey, or a c2sp.org/tlog-policy ``witness <name> <vkey> [<url>]`` line.

    None for blank and ``#`` lines and for the other tlog-policy lines (``log``, ``group``, ``quorum``:
    the quorum is --quorum here). Raises ValueError for anything else.
    """
    parts = line.split()
    if not parts or parts[0].startswith("#") or parts[0] in ("log", "group", "quorum"):
        return None
    if parts[0] == "witness":
        if len(parts) not in (3, 4):
            raise ValueError(f"witness line {line.strip()!r}: expected 'witness <name> <vkey> [<url>]'")
        return parts[2]
    if len(parts) != 1:
        raise ValueError(f"witnesses-file line {line.strip()!r}: expected one cosigner verifier key")
    return parts[0]


COSIGNATURE_SKEW = 300  # seconds a cosignature's timestamp may be ahead of this machine's clock


def check_cosignatures(note: str, cosigners: list[Cosigner], now: float) -> tuple[dict[str, int], list[str]]:
    """The cosignature/v1 lines of ``note`` by the given cosigners: ({cosigner vkey: timestamp}, problems).

    Lines by other keys are ignored (the log's own signature among them). A line by a given cosigner
    that does not verify, or whose timestamp is more than ``COSIGNATURE_SKEW`` seconds in the future,
    is a problem and does not count. The signed message is ``cosignature/v1\\ntime <T>\\n`` followed by
    the note's text (c2sp.org/tlog-cosignature).
    """
    valid: dict[str, int] = {}
    problems: list[str] = []
    if "\n\n" not in note:
        return valid, ["not a signed note"]
    split = note.rindex("\n\n")
    text, block = note[: split + 1], note[split + 2 :]
    known = {(c.name, c.key_id): c for c in cosigners}
    for line in block.splitlines():
        try:
            name, b64 = line[len(SIG_PREFIX) :].split(" ")
            blob = base64.b64decode(b64, validate=True)
        except (ValueError, binascii.Error):
            continue
        cosigner = known.get((name, blob[:4]))
        if cosigner is None:
            continue
        if len(blob) != 4 + 8 + 64:
            problems.append(f"the cosignature line of {cosigner.text} is not a cosignature/v1 Ed25519 line")
            continue
        (timestamp,) = struct.unpack(">Q", blob[4:12])
        message = f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode("utf-8")
        try:
            if timestamp >= 2**63:
                raise InvalidSignature
            cosigner.public.verify(blob[12:], message)
        except InvalidSignature:
            problems.append(f"the cosignature by {cosigner.text} does not verify (forged or for another checkpoint)")
            continue
        if timestamp > now + COSIGNATURE_SKEW:
            problems.append(f"the cosignature by {cosigner.text} is dated {timestamp}, in the future "
                            f"(this machine's clock says {int(now)})")
            continue
        valid[cosigner.text] = max(timestamp, valid.get(cosigner.text, 0))
    return valid, problems


# --------------------------------------------------------------------------------------------------
# the bundle


def subject_key(subject_type: str, subject_id: str) -> bytes:
    """How verify.py keys a subject: its part of the canonical body, ``"<id>","type":"<type>"}``."""
    return canonicalize(subject_id) + b',"type":' + canonicalize(subject_type) + b"}"


def subject_label(key: bytes | None) -> str:
    if key is None:
        return "the ledger"
    try:
        subject = json.loads(b'{"id":' + key)
        return f"{subject['type']}:{subject['id']}"
    except (ValueError, KeyError, TypeError):
        return repr(key)


class Entry:
    """What the checks need of one entry, as bytes: the hashes and the timestamp in their ASCII form, the
    subject as its key (``subject_key``)."""

    __slots__ = ("_event_type", "entry_hash", "prev_hash", "raw", "seq", "subject", "subject_prev", "timestamp")

    def __init__(
        self,
        seq: int,
        prev_hash: bytes,
        subject: bytes,
        subject_prev: int | None,
        timestamp: bytes,
        entry_hash: bytes,
        raw: bytes | None = None,
        event_type: str | None = None,
    ) -> None:
        self.seq = seq
        self.prev_hash = prev_hash
        self.subject = subject
        self.subject_prev = subject_prev
        self.timestamp = timestamp
        self.entry_hash = entry_hash
        self.raw = raw
        self._event_type = event_type

    @classmethod
    def from_body(cls, body: dict[str, Any], entry_hash: bytes) -> Entry:
        subject = body["subject"]
        return cls(body["seq"], body["prev_hash"].encode(), subject_key(subject["type"], subject["id"]),
                   body["subject_prev"], body["timestamp"].encode(), entry_hash, event_type=body["event_type"])

    @property
    def event_type(self) -> str:
        if self._event_type is None:
            value = json.loads(self.raw or b"{}").get("event_type")
            self._event_type = value if isinstance(value, str) else ""
        return self._event_type


_TIMESTAMP = b',"timestamp":"'
_SUBJECT_PREV = b',"subject_prev":'
_SUBJECT = b',"subject":{"id":'
_SEQ = b',"seq":'
_PREV_HASH = b',"prev_hash":"'
_REQUEST_ID = b',"request_id":"'


def fields_of_canonical(raw: bytes, entry_hash: bytes) -> Entry | None:
    """The fields of an entry body from its canonical bytes, by their fixed layout (None if it does not fit).

    Only for bytes that hashed to the entry's hash, i.e. the ledger's own RFC 8785
    output. Its members come in a known order (actor, event_type, payload,
    prev_hash, [request_id,] seq, subject, subject_prev, timestamp), the timestamp is 27
    characters and prev_hash 64, and no string can contain an unescaped quote, so
    each marker below (each has a bare ``"``) is found, searching back from the
    end, exactly where its member is. This gives what ``json.loads`` gives, in the
    form ``Entry`` keeps, several times faster; anything unexpected returns None
    and the caller parses the body with ``json.loads``.
    """
    n = len(raw)
    if raw[n - 43 : n - 29] != _TIMESTAMP or raw[n - 2 :] != b'"}':
        return None
    sp = raw.rfind(_SUBJECT_PREV, 0, n - 43)
    si = raw.rfind(_SUBJECT, 0, sp)
    sq = raw.rfind(_SEQ, 0, si)
    ph = sq  # where prev_hash's member ends: at seq, or at request_id when the entry has one
    if sq < 79 or raw[sq - 1 : sq] != b'"':
        return None
    if raw[sq - 79 : sq - 65] != _PREV_HASH:
        ph = raw.rfind(_REQUEST_ID, 0, sq)
        if ph < 79 or raw[ph - 79 : ph - 65] != _PREV_HASH or raw[ph - 1 : ph] != b'"' \
                or not _valid_request_id(raw[ph + 15 : sq - 1].decode("ascii", "replace")):
            return None
    seq_text, prev_text = raw[sq + 7 : si], raw[sp + 16 : n - 43]
    if not seq_text.isdigit() or not (prev_text == b"null" or prev_text.isdigit()):
        return None
    return Entry(int(seq_text), raw[ph - 65 : ph - 1], raw[si + 17 : sp],
                 None if prev_text == b"null" else int(prev_text), raw[n - 29 : n - 2], entry_hash, raw)


_BODY_MEMBERS = frozenset(
    {"seq", "timestamp", "event_type", "actor", "subject", "payload", "prev_hash", "subject_prev"})
# Entries written while serving a request also carry its id (optional, so older entries keep their bytes).
_BODY_MEMBERS_WITH_REQUEST = _BODY_MEMBERS | {"request_id"}
_REQUEST_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")


def _valid_request_id(value: str) -> bool:
    return 0 < len(value) <= 64 and set(value) <= _REQUEST_ID_CHARS


def _check_body_shape(body: Any) -> None:
    if not isinstance(body, dict):
        raise ValueError("the body is not a JSON object")
    members = set(body)
    if members != _BODY_MEMBERS and members != _BODY_MEMBERS_WITH_REQUEST:
        raise ValueError("the body does not have exactly the members of an entry")
    if "request_id" in body and not (isinstance(body["request_id"], str) and _valid_request_id(body["request_id"])):
        raise ValueError("request_id is not 1 to 64 characters of letters, digits and . _ : -")
    seq, sp = body["seq"], body["subject_prev"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ValueError("seq is not a non-negative integer")
    if sp is not None and (not isinstance(sp, int) or isinstance(sp, bool) or not 0 <= sp < seq):
        raise ValueError("subject_prev is neither null nor an earlier seq")
    subject = body["subject"]
    if not (isinstance(subject, dict) and set(subject) == {"type", "id"}
            and all(isinstance(v, str) for v in subject.values())):
        raise ValueError("subject is not {type, id}")
    if not isinstance(body["prev_hash"], str) or not isinstance(body["timestamp"], str):
        raise ValueError("prev_hash or timestamp is not a string")


class Report:
    """The outcome: facts about the bundle and the failures found (empty when it verifies)."""

    def __init__(self, path: str) -> None:
        self.bundle = path
        self.failures: list[str] = []
        self.failure_count = 0
        self.notes: list[str] = []
        self.entries = 0
        self.first_seq: int | None = None
        self.last_seq: int | None = None
        self.subjects = 0
        self.checkpoints = 0
        self.tree_size: int | None = None
        self.root_hash: str | None = None
        self.origin: str | None = None
        self.signatures: dict[str, list[str]] = {}
        self.keys_source = "bundle"
        self.keys: list[str] = []
        self.key_comments: list[str] = []
        self.export_id: Any = None
        self.export_seq: int | None = None
        self.exporter: Any = None
        self.scope: Any = None
        self.completeness = "none"
        self.complete_subjects = 0
        self.files_checked = 0
        self.reasons: list[str] = []
        self.warnings: list[str] = []
        self.anchored = False
        self.anchors: list[str] = []
        self.witnesses: dict[str, int] = {}
        self.quorum = 0
        # --tiles URL: what the log serves there (None without --tiles)
        self.tiles: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """No check failed (``anchored`` says whether anything outside the bundle backs them)."""
        return self.failure_count == 0

    @property
    def verified(self) -> bool:
        return self.ok and self.anchored

    @property
    def exit_code(self) -> int:
        if not self.ok:
            return EXIT_FAILED
        return EXIT_VERIFIED if self.anchored else EXIT_UNANCHORED

    @property
    def verdict(self) -> str:
        if not self.ok:
            return "FAILED"
        return "VERIFIED" if self.anchored else "NOT ANCHORED"

    def fail(self, message: str, reason: str = FAILED) -> None:
        self.failure_count += 1
        if reason not in self.reasons:
            self.reasons.append(reason)
        if len(self.failures) < MAX_LISTED_FAILURES:
            self.failures.append(message if reason == FAILED else f"{reason}: {message}")

    def warn(self, message: str) -> None:
        if len(self.warnings) < MAX_LISTED_FAILURES:
            self.warnings.append(message)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "verdict": self.verdict,
            "anchored": self.anchored,
            "anchors": self.anchors,
            "exit_code": self.exit_code,
            "reasons": self.reasons,
            "warnings": self.warnings,
            "witnesses": self.witnesses,
            "quorum": self.quorum,
            "bundle": self.bundle,
            "failures": self.failures,
            "failure_count": self.failure_count,
            "notes": self.notes,
            "entries": self.entries,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "subjects": self.subjects,
            "checkpoints": self.checkpoints,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "origin": self.origin,
            "signatures": self.signatures,
            "keys_source": self.keys_source,
            "keys": self.keys,
            "export_id": self.export_id,
            "export_seq": self.export_seq,
            "exporter": self.exporter,
            "scope": self.scope,
            "completeness": self.completeness,
            "complete_subjects": self.complete_subjects,
            "files_checked": self.files_checked,
            "tiles": self.tiles,
        }

    def summary(self) -> str:
        lines = [f"bundle: {self.bundle}"]
        if self.export_id is not None:
            who = self.exporter if not isinstance(self.exporter, dict) else (
                f"{self.exporter.get('type')}:{self.exporter.get('id')}")
            lines.append(f"export #{self.export_id} by {who}, recorded in the ledger at seq {self.export_seq}")
        if self.scope is not None:
            lines.append(f"scope: {scope_text(self.scope)}")
        rng = "" if self.first_seq is None else f", seq {self.first_seq}..{self.last_seq}"
        lines.append(f"entries: {self.entries:,}{rng}; subjects: {self.subjects:,}")
        if self.tree_size is not None:
            lines.append(
                f"anchored to: checkpoint of {self.origin}, tree size {self.tree_size:,}, root {self.root_hash}")
        signer = "a key you supplied" if self.keys_source == "supplied" else "a key listed in keys.txt"
        lines.append(f"checkpoints: {self.checkpoints} with a valid signature by {signer}; consistency "
                     "checked between consecutive ones")
        for name, signers in self.signatures.items():
            lines.append(f"  {name}: signed by {', '.join(signers) if signers else 'no trusted key'}")
        source = (
            "supplied with --trusted-key / --trusted-keys-file"
            if self.keys_source == "supplied"
            else "taken from the bundle's keys.txt: NOTHING ANCHORS THEM"
        )
        lines.append(f"keys: {len(self.keys)} {source}")
        lines.extend(f"  {k}" for k in self.keys)
        lines.extend(f"  {c}" for c in self.key_comments)
        if self.quorum:
            lines.append(
                f"witnesses: {len(self.witnesses)} valid cosignature(s) on checkpoint.txt, quorum {self.quorum}")
            lines.extend(f"  {w}: cosigned at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(t))} (POSIX {t})"
                         for w, t in self.witnesses.items())
        lines.append(f"completeness: {_completeness_text(self)}")
        lines.append(f"files: {self.files_checked} checked against manifest.json")
        if self.tiles is not None:
            t = self.tiles
            size = "?" if t.get("tree_size") is None else f"{t['tree_size']:,}"
            lines.append(f"tiles: {t['url']}: checkpoint of tree size {size}; {t['entries_proven']:,} entr"
                         f"{'y' if t['entries_proven'] == 1 else 'ies'} proven from its tiles; "
                         f"{'extends checkpoint.txt' if t['extends_bundle'] else 'NOT shown to extend checkpoint.txt'}"
                         f" ({t['tiles_fetched']} tile(s) fetched)")
        lines.extend(f"note: {n}" for n in self.notes)
        lines.extend(f"warning: {w}" for w in self.warnings)
        if self.ok and self.anchored:
            lines.append("anchored by: " + "; ".join(self.anchors))
            if not any(a.startswith(("witness", "known checkpoint")) for a in self.anchors):
                lines.append(
                    "  (a witness (--witness-key) or a checkpoint you kept (--known-checkpoint) would also show that "
                    "this is the history everyone else sees, and that no retired key rewrote a smaller one)")
            lines.append("verdict: VERIFIED")
        elif self.ok:
            lines.append(
                "NOTHING ANCHORS IT: every check above passed, but only against keys taken from the bundle itself. "
                "A bundle forged by anyone, signed with a key of their own listed in its keys.txt, passes these "
                "checks too.")
            lines.append(
                "  Run again with the ledger's keys obtained from a channel you trust: --trusted-key 'VKEY from=N "
                "until=M' (repeatable) or --trusted-keys-file FILE; add --witness-key / --known-checkpoint if you "
                "have them.")
            lines.append("verdict: NOT ANCHORED (exit status 3)")
        else:
            lines.append(f"verdict: FAILED ({self.failure_count} problem{'s' if self.failure_count != 1 else ''})")
            lines.extend(f"  FAILED: {f}" for f in self.failures)
            if self.failure_count > len(self.failures):
                lines.append(f"  ... and {self.failure_count - len(self.failures)} more")
        return "\n".join(lines)


def scope_text(scope: dict[str, Any]) -> str:
    parts = []
    if scope.get("since"):
        parts.append(f"since {scope['since']}")
    if scope.get("until"):
        parts.append(f"until {scope['until']}")
    if scope.get("model"):
        parts.append(f"model {scope['model']}")
    if scope.get("dataset"):
        parts.append(f"dataset {scope['dataset']}")
    if scope.get("event_types"):
        parts.append("event types " + ", ".join(scope["event_types"]))
    subjects = scope.get("subjects") or []
    if subjects:
        parts.append(f"{len(subjects)} subject(s)")
    return "; ".join(parts) or "the whole ledger"


def _completeness_text(report: Report) -> str:
    if report.completeness == "subjects":
        return (f"complete for {report.complete_subjects} subject(s): every entry of each in the scope is present "
                "(shown by subject_prev links, the boundary entries and the subject heads the ledger signed)")
    if report.completeness == "ledger":
        return ("complete for the range: every entry of the ledger between the boundaries is present "
                "(shown by seq, prev_hash links and the boundary entries)")
    return "not claimed (a filtered export: only that each entry is authentic and in the ledger)"


class _File:
    """Reads a member of the bundle in chunks, hashing every byte, for the manifest check."""

    def __init__(self, bundle: BundleVerifier, name: str) -> None:
        self.bundle = bundle
        self.name = name

    def chunks(self) -> Iterator[bytes]:
        """The member's bytes. Stored and deflated members are read straight from the zip (their SHA-256
        against the manifest is the integrity check, stronger than the zip's CRC); others through zipfile."""
        info = self.bundle.zip.getinfo(self.name)
        if info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) and not info.flag_bits & 1:
            with open(self.bundle.path, "rb") as fh:
                fh.seek(info.header_offset)
                header = fh.read(30)
                if len(header) == 30 and header[:4] == b"PK\x03\x04":
                    name_length, extra_length = struct.unpack("<HH", header[26:30])
                    fh.seek(info.header_offset + 30 + name_length + extra_length)
                    inflate = zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
                    left = info.compress_size
                    while left > 0:
                        data = fh.read(min(_CHUNK, left))
                        if not data:
                            raise VerifyError(f"{self.name} is cut short in the zip")
                        left -= len(data)
                        yield inflate.decompress(data) if inflate is not None else data
                    if inflate is not None:
                        yield inflate.flush()
                    return
        with self.bundle.zip.open(self.name) as member:
            while chunk := member.read(_CHUNK):
                yield chunk

    def lines(self) -> Iterator[bytes]:
        """The member's lines without their newline; the hash is checked once all were read."""
        for _, lines in self.blocks():
            yield from lines

    def blocks(self) -> Iterator[tuple[bytes, list[bytes]]]:
        """The member as blocks of whole lines: (the block's bytes, its lines without their newline).

        Every block but perhaps the last ends with a newline; the last holds the bytes after the last
        newline when the member does not end with one. The lines, in order, are exactly those of
        ``lines``. The hash is checked once all were read.
        """
        digest = hashlib.sha256()
        size = 0
        rest = b""
        for whole in self.chunks():
            if not whole:
                continue
            digest.update(whole)
            size += len(whole)
            # (a deflated chunk inflates to several MB: blocks of about _BLOCK bytes keep pages short)
            pieces = [whole] if len(whole) <= _BLOCK else [whole[i : i + _BLOCK] for i in range(0, len(whole), _BLOCK)]
            for chunk in pieces:
                cut = chunk.rfind(b"\n") + 1
                if not cut:
                    rest += chunk
                    continue
                block = rest + chunk[:cut] if rest else chunk[:cut]
                rest = chunk[cut:]
                parts = block.split(b"\n")
                parts.pop()
                yield block, parts
        if rest:
            yield rest, [rest]
        self.bundle.file_read(self.name, digest.hexdigest(), size)

    def read(self) -> bytes:
        with self.bundle.zip.open(self.name) as fh:
            data = fh.read()
        self.bundle.file_read(self.name, hashlib.sha256(data).hexdigest(), len(data))
        return data


def _hex32(value: Any) -> bytes:
    if isinstance(value, str) and len(value) == 64:
        try:
            return binascii.unhexlify(value)
        except (ValueError, binascii.Error):
            pass
    raise ValueError(f"{str(value)[:80]!r} is not a hex SHA-256 hash")


def _hash_list(value: Any) -> list[bytes]:
    if not isinstance(value, list):
        raise ValueError("a proof is not a list of hashes")
    return [_hex32(h) for h in value]


def parse_proof_line(line: bytes) -> tuple[int, int, list[bytes]]:
    """``{"seq":n,"tree_size":N,"inclusion":[hex,...]}`` as (seq, tree size, the hashes as hex bytes).

    The exporter's exact layout is taken apart with one split; anything else (other
    spacing, member order...) goes through ``json.loads``. The hashes stay hex until
    ``InclusionChecker`` uses them, which is where a malformed one is refused.
    """
    t = line.split(b'"')
    n = len(t)
    if n >= 7 and t[0] == b"{" and t[1] == b"seq" and t[3] == b"tree_size" and t[5] == b"inclusion":
        a, b = t[2], t[4]
        if a[:1] == b":" and a[-1:] == b"," and b[:1] == b":" and b[-1:] == b"," and a[1:-1].isdigit() \
                and b[1:-1].isdigit():
            if n == 7 and t[6] == b":[]}":
                return int(a[1:-1]), int(b[1:-1]), []
            if n & 1 and t[6] == b":[" and t[-1] == b"]}" and t[8:-1:2].count(b",") == (n - 9) // 2:
                return int(a[1:-1]), int(b[1:-1]), t[7:-1:2]
    obj = json.loads(line)
    if not isinstance(obj, dict) or not isinstance(obj.get("seq"), int) or not isinstance(obj.get("tree_size"), int):
        raise ValueError("not a proof line {seq, tree_size, inclusion}")
    return obj["seq"], obj["tree_size"], [h.hex().encode() for h in _hash_list(obj.get("inclusion"))]


class _Chain:
    """One completeness chain: a subject's entries (or the ledger's) plus its boundary entries."""

    __slots__ = ("after", "before", "broken", "count", "first", "last")

    def __init__(self) -> None:
        self.before: Entry | None = None
        self.after: Entry | None = None
        self.first: Entry | None = None
        self.last: Entry | None = None
        self.count = 0
        self.broken = False


class _Scope:
    """What the export's signed scope holds the entries to (``BundleVerifier._export_scope``).

    ``kind``: the completeness it lets the bundle prove (``completeness_kind``); ``ledger_size``: every
    entry's seq is below it; ``subjects``, ``types``, ``since``/``until``: what the entries must be
    about (empty or None: anything); ``complete``/``heads``: for a subjects export, each subject's
    completeness chain and the seq of its last entry when the export was made; ``ledger``: the chain
    of a ledger-range export.
    """

    __slots__ = ("complete", "heads", "kind", "ledger", "ledger_size", "since", "subjects", "types", "until")

    def __init__(self, kind: str, ledger_size: int) -> None:
        self.kind = kind
        self.ledger_size = ledger_size
        self.subjects: set[bytes] = set()
        self.heads: dict[bytes, int | None] = {}
        self.complete: dict[bytes, _Chain] = {}
        self.ledger = _Chain()  # a ledger-range export's one chain
        self.types: set[str] = set()
        self.since: bytes | None = None
        self.until: bytes | None = None


class BundleVerifier:
    # Whether the entries may be taken by pages (``page_of``, ``ProofPages``) before the line-by-line code;
    # False: that code alone (the reference the pages are tested against).
    pages = True

    def __init__(
        self,
        path: str,
        trusted_keys: list[str] | None = None,
        strict: bool = False,
        jobs: int | None = None,
        *,
        witness_keys: list[str] | None = None,
        quorum: int | None = None,
        known_checkpoints: list[tuple[str, str]] | None = None,
        lenient: bool = False,
        now: float | None = None,
        tiles: TileClient | None = None,
    ) -> None:
        self.path = path
        self.tiles = tiles  # --tiles URL: the entries are also proven from the tiles the log serves there
        self.jobs = jobs  # processes for the entries: 1, 2 (more are not used), None: 2 for big bundles
        self.report = Report(path)
        # Each a trusted-key line: "VKEY", "VKEY from=N", "VKEY until=M", "VKEY from=N until=M".
        self.trusted_keys = trusted_keys or []
        # strict: every body re-canonicalised in Python (no fast path); lenient: JSON problems are warnings.
        self.strict = strict and not lenient
        self.lenient = lenient
        self.witness_keys = witness_keys or []
        self.quorum = quorum
        self.known_checkpoints = known_checkpoints or []  # (where it came from, the signed note)
        self.now = time.time() if now is None else now
        self.keys: list[TrustedKey] = []
        self.zip: zipfile.ZipFile
        self.manifest: dict[str, Any] = {}
        self.read_files: set[str] = set()
        self.opened: dict[str, tuple[int, bytes] | None] = {}
        self.consistency_lines: list[dict[str, Any]] = []

    # --- files and the manifest ---------------------------------------------------------------

    def file_read(self, name: str, sha256: str, size: int) -> None:
        self.read_files.add(name)
        self.report.files_checked += 1
        listed = self.manifest.get("files", {}).get(name)
        if not isinstance(listed, dict):
            self.report.fail(f"manifest: {name} is in the bundle but not listed in manifest.json")
        elif listed.get("sha256") != sha256:
            self.report.fail(f"manifest: {name} does not match its SHA-256 in manifest.json (the file was changed)")
        elif listed.get("bytes") not in (None, size):
            self.report.fail(f"manifest: {name} has {size} bytes, manifest.json says {listed.get('bytes')}")

    def _check_file_list(self) -> None:
        # Directory entries ("name/") are what zip tools add when a bundle is unzipped and zipped again:
        # they hold no bytes, so they are ignored; any other file must be listed.
        names = {n for n in self.zip.namelist() if not n.endswith("/")} - {"manifest.json"}
        listed = set(self.manifest.get("files", {}))
        for name in sorted(listed - names):
            self.report.fail(f"manifest: {name} is listed in manifest.json but missing from the bundle")
        for name in sorted(names - self.read_files):
            _File(self, name).read()

    # --- the run ------------------------------------------------------------------------------

    def run(self) -> Report:
        """Every check, in this order: the bundle's manifest and files, the keys, the checkpoints and
        their consistency, the checkpoints the reader kept, the witnesses, the export's own entry,
        the entries with their proofs and completeness, and last the files nobody read.

        Returns the report; raises VerifyError when the bundle cannot be read at all.
        """
        try:
            self.zip = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise VerifyError(f"{self.path} is not a readable zip file: {exc}") from None
        with self.zip:
            if self._load_manifest():
                verifiers = self._keys()
                head = self._checkpoints(verifiers)
                if head is not None:
                    self._known_checkpoints(verifiers, head)
                    self._witnesses()
                    self._export_entry(head)
                    self._entries(head)
                    if self.tiles is not None:
                        self._against_tiles(verifiers, head, self.tiles)
            self._check_file_list()
        return self.report

    def _load_manifest(self) -> bool:
        """Read manifest.json into ``self.manifest`` and the report; False when a required file is missing
        (reported: nothing else can be checked). Raises VerifyError when there is no export manifest."""
        try:
            manifest = json.loads(self.zip.read("manifest.json"))
        except KeyError:
            raise VerifyError("the bundle has no manifest.json") from None
        except ValueError as exc:
            raise VerifyError(f"manifest.json is not JSON: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise VerifyError(f"manifest.json is not an {FORMAT} manifest")
        self.manifest = manifest
        self.report.export_id = manifest.get("export_id")
        self.report.exporter = manifest.get("exporter")
        self.report.origin = manifest.get("origin")
        names = set(self.zip.namelist())
        for required in ("checkpoint.txt", "keys.txt", "entries.jsonl", "proofs.jsonl", "export-entry.json"):
            if required not in names:
                self.report.fail(f"bundle: {required} is missing")
        return self.report.ok

    # --- keys and checkpoints -----------------------------------------------------------------

    def _keys(self) -> list[Verifier]:
        """The keys checkpoints are verified with: those supplied (the only anchor), else keys.txt's."""
        bundle_keys = self._bundle_keys()
        keys = self._supplied_keys(bundle_keys) if self.trusted_keys else bundle_keys
        self.keys = keys
        self.report.keys = [k.line() for k in keys]
        return list({k.verifier.text: k.verifier for k in keys}.values())

    def _bundle_keys(self) -> list[TrustedKey]:
        """keys.txt's key lines (information only: they anchor nothing); its "name+keyid: ..." comments go
        to the report, a malformed line is a failure."""
        bundle_keys: list[TrustedKey] = []
        for raw in _File(self, "keys.txt").read().decode("utf-8", "replace").splitlines():
            line = raw.strip()
            if line.startswith("#"):
                comment = line.lstrip("# ")
                if "+" in comment.split(" ", 1)[0]:  # "name+keyid: valid from ... to ..."
                    self.report.key_comments.append(comment)
                continue
            try:
                key = TrustedKey.parse(line)
            except ValueError as exc:
                self.report.fail(f"keys.txt: {exc}")
                continue
            if key is not None:
                bundle_keys.append(key)
        return bundle_keys

    def _supplied_keys(self, bundle_keys: list[TrustedKey]) -> list[TrustedKey]:
        """The trusted-key lines the reader gave: they anchor the report when at least one parses; a note
        names the keys of keys.txt that are not among them."""
        self.report.keys_source = "supplied"
        keys = []
        for text in self.trusted_keys:
            try:
                key = TrustedKey.parse(text)
            except ValueError as exc:
                self.report.fail(f"--trusted-key: {exc}")
                continue
            if key is not None:
                keys.append(key)
        supplied = {k.verifier.text for k in keys}
        extra = [k.verifier.text for k in bundle_keys if k.verifier.text not in supplied]
        if extra:
            self.report.notes.append(
                f"keys.txt lists {len(extra)} key(s) you did not supply (not trusted): {', '.join(extra)}")
        if keys:
            self.report.anchored = True
            self.report.anchors.append(f"{len(keys)} trusted key line(s) you supplied")
        return keys

    def _open_checkpoint(self, name: str, note: str, verifiers: list[Verifier]) -> tuple[int, bytes] | None:
        self.report.signatures[name] = []
        try:
            text, signed_by, unknown = open_note(note, verifiers)
            origin, size, root = parse_checkpoint(text)
        except NoteError as exc:
            self.report.fail(f"checkpoint {name}: {exc}", BAD_SIGNATURE)
            return None
        self.report.signatures[name] = [v.text.split("+")[0] + "+" + v.key_id.hex() for v in signed_by]
        problem = key_validity_problem(name, size, signed_by, self.keys)
        if problem is not None:
            self.report.fail(problem[1], problem[0])
            return None
        expected = self.manifest.get("origin")
        if origin != expected:
            self.report.fail(f"checkpoint {name}: origin {origin!r} is not the bundle's origin {expected!r}")
            return None
        if any(v.name != origin for v in signed_by):
            self.report.fail(f"checkpoint {name}: signed by a key for another origin")
            return None
        if unknown:
            self.report.notes.append(
                f"{name} also carries {unknown} signature line(s) by other keys: witness cosignatures (those of "
                "checkpoint.txt are checked against --witness-key) or keys not trusted here; ignored as signatures")
        self.report.checkpoints += 1
        return size, root

    def _checkpoints(self, verifiers: list[Verifier]) -> tuple[int, bytes] | None:
        """checkpoint.txt and the earlier checkpoints/*.txt, each opened with ``verifiers``, and the
        consistency proof from each to the next. Returns checkpoint.txt's (tree size, root), None when
        it does not verify (reported: then no entry can be checked)."""
        head_note = _File(self, "checkpoint.txt").read().decode("utf-8", "replace")
        head = self._open_checkpoint("checkpoint.txt", head_note, verifiers)
        if head is not None:
            self.report.tree_size, self.report.root_hash = head[0], head[1].hex()
        earlier = sorted(n for n in self.zip.namelist() if n.startswith("checkpoints/") and n.endswith(".txt"))
        opened: dict[str, tuple[int, bytes] | None] = {}
        for name in earlier:
            opened[name] = self._open_checkpoint(name, _File(self, name).read().decode("utf-8", "replace"), verifiers)
        opened["checkpoint.txt"] = head
        self.opened = opened
        proofs = self._consistency_proofs(bool(earlier))
        order = [*earlier, "checkpoint.txt"]
        for i in range(1, len(order)):  # (itertools.pairwise needs Python 3.10)
            self._check_consistency(order[i - 1], order[i], proofs.get((order[i - 1], order[i])))
        self.consistency_lines = list(proofs.values())
        return head

    def _consistency_proofs(self, needed: bool) -> dict[tuple[str, str], dict[str, Any]]:
        """checkpoints/consistency.jsonl's proofs by (from, to); a malformed line is a failure, and so is a
        missing file when the bundle has earlier checkpoints (``needed``)."""
        proofs: dict[tuple[str, str], dict[str, Any]] = {}
        if "checkpoints/consistency.jsonl" in self.zip.namelist():
            for n, line in enumerate(_File(self, "checkpoints/consistency.jsonl").lines(), 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    proofs[(obj["from"], obj["to"])] = obj
                except (ValueError, KeyError, TypeError):
                    self.report.fail(f"checkpoints/consistency.jsonl line {n}: not a consistency proof line")
        elif needed:
            self.report.fail("checkpoints/consistency.jsonl is missing")
        return proofs

    def _check_consistency(self, old: str, new: str, obj: dict[str, Any] | None) -> None:
        """The proof ``obj`` that checkpoint ``new`` extends checkpoint ``old`` (both opened already; nothing
        to check when either did not verify). A missing or failing proof is a failure (``forked``)."""
        a, b = self.opened.get(old), self.opened.get(new)
        if a is None or b is None:
            return
        if obj is None:
            self.report.fail(f"consistency: no proof from {old} to {new}")
            return
        try:
            path = _hash_list(obj.get("consistency"))
        except ValueError as exc:
            self.report.fail(f"consistency {old} -> {new}: {exc}")
            return
        if (obj.get("old_size"), obj.get("new_size")) != (a[0], b[0]):
            self.report.fail(f"consistency {old} -> {new}: the proof is for other tree sizes")
        elif a[0] > b[0] or not verify_consistency(a[0], b[0], a[1], b[1], path):
            self.report.fail(
                f"consistency {old} (size {a[0]}) -> {new} (size {b[0]}): the proof does not verify; "
                "the later tree does not extend the earlier one", FORKED)

    def _known_checkpoints(self, verifiers: list[Verifier], head: tuple[int, bytes]) -> None:
        """Each checkpoint the reader kept must be one the bundle's history extends (docs/verifying.md).

        Same size as a checkpoint of the bundle: the same root, else ``forked``. Larger than
        checkpoint.txt: ``truncated``. Smaller: a consistency proof from it to a checkpoint of the
        bundle (a line of checkpoints/consistency.jsonl with that old_size, checked against the kept
        root; every checkpoint of the bundle is consistent with checkpoint.txt by the proofs above).
        """
        for source, note in self.known_checkpoints:
            label = f"known checkpoint {source}"
            try:
                text, signed_by, _ = open_note(note, verifiers)
                origin, size, root = parse_checkpoint(text)
            except NoteError as exc:
                self.report.fail(f"{label}: {exc}", BAD_SIGNATURE)
                continue
            problem = key_validity_problem(label, size, signed_by, self.keys)
            if problem is not None:
                self.report.fail(problem[1], problem[0])
                continue
            if origin != self.manifest.get("origin"):
                self.report.fail(f"{label}: it is for origin {origin!r}, not the bundle's", FAILED)
                continue
            same = [(n, c) for n, c in self.opened.items() if c is not None and c[0] == size]
            if any(c[1] != root for _, c in same):
                self.report.fail(f"{label} (tree size {size:,}) has another root than the bundle's checkpoint of "
                                 "that size: two different histories were signed", FORKED)
                continue
            if same:
                self.report.anchors.append(f"known checkpoint {source} (tree size {size:,})")
                continue
            if size > head[0]:
                self.report.fail(f"{label} has tree size {size:,}; the bundle's checkpoint.txt only {head[0]:,}: "
                                 "entries you have seen before are gone from this history", TRUNCATED)
                continue
            consistent = self._consistent_with(size, root)
            if consistent:
                self.report.anchors.append(f"known checkpoint {source} (tree size {size:,})")
            elif consistent is False:
                self.report.fail(f"{label} (tree size {size:,}): the bundle has no consistency proof from it to "
                                 "its checkpoints (docs/verifying.md says what it must carry)", UNPROVEN)

    def _consistent_with(self, size: int, root: bytes) -> bool | None:
        """A consistency.jsonl proof from (size, root) to a checkpoint of the bundle; FORKED is reported here."""
        sizes = {c[0]: c[1] for c in self.opened.values() if c is not None}
        for obj in self.consistency_lines:
            new_size = obj.get("new_size")
            if obj.get("old_size") != size or new_size not in sizes:
                continue
            try:
                path = _hash_list(obj.get("consistency"))
            except ValueError:
                continue
            if verify_consistency(size, new_size, root, sizes[new_size], path):
                return True
            self.report.fail(f"known checkpoint of tree size {size:,}: the bundle's tree of size {new_size:,} does "
                             "not extend it (the consistency proof from it fails): two different histories", FORKED)
            return None
        return False

    def _witnesses(self) -> None:
        """checkpoint.txt must carry cosignatures by at least ``quorum`` of the given witnesses."""
        if not self.witness_keys:
            return
        cosigners = []
        for text in self.witness_keys:
            try:
                cosigners.append(Cosigner(text))
            except NoteError as exc:
                self.report.fail(f"--witness-key: {exc}", WITNESS_QUORUM)
        quorum = self.quorum if self.quorum is not None else len(cosigners)
        self.report.quorum = quorum
        note = self.zip.read("checkpoint.txt").decode("utf-8", "replace")
        valid, problems = check_cosignatures(note, cosigners, self.now)
        self.report.witnesses = {k.split("+")[0]: t for k, t in valid.items()}
        for problem in problems:
            self.report.fail(f"checkpoint.txt: {problem}", WITNESS_QUORUM)
        if len(valid) < quorum:
            missing = [c.text for c in cosigners if c.text not in valid]
            self.report.fail(f"checkpoint.txt carries {len(valid)} valid cosignature(s) by the witnesses you gave, "
                             f"{quorum} needed; none from: {', '.join(missing)}", WITNESS_QUORUM)
        elif not problems:
            self.report.anchors.append(f"witness quorum {len(valid)} of {len(cosigners)} (needed {quorum}): "
                                       + ", ".join(self.report.witnesses))

    # --- --tiles URL: the same entries, proven from the tiles the log serves (c2sp.org/tlog-tiles) -------

    def _against_tiles(self, verifiers: list[Verifier], head: tuple[int, bytes], client: TileClient) -> None:
        """The log's checkpoint at ``client``'s URL, verified like the bundle's (trusted keys and their
        lifetimes, the origin, cosignatures by the named witnesses), must extend checkpoint.txt (a consistency
        proof computed from its tiles, else ``forked``; smaller: ``truncated``), and every entry of the bundle
        (and the export entry) must be included in it by a path computed from its tiles: in addition to the
        bundle's own proofs, never instead of them.

        A witness quorum is not required of that checkpoint (it may be seconds old, not yet cosigned:
        checkpoint.txt carries the quorum); a line by a named witness that does not verify is a failure.
        Raises VerifyError when the checkpoint or a tile cannot be read.
        """
        report = self.report
        info: dict[str, Any] = {"url": client.prefix, "tree_size": None, "root_hash": None, "entries_proven": 0,
                                "extends_bundle": False, "witnesses": {}, "tiles_fetched": 0}
        report.tiles = info
        note = client.checkpoint()
        label = f"the log's checkpoint at {client.prefix}checkpoint"
        try:
            text, signed_by, _ = open_note(note, verifiers)
            origin, size, root = parse_checkpoint(text)
        except NoteError as exc:
            report.fail(f"{label}: {exc}", BAD_SIGNATURE)
            return
        problem = key_validity_problem(label, size, signed_by, self.keys)
        if problem is not None:
            report.fail(problem[1], problem[0])
            return
        if origin != self.manifest.get("origin") or any(v.name != origin for v in signed_by):
            report.fail(f"{label}: it is for origin {origin!r}, not the bundle's {self.manifest.get('origin')!r}")
            return
        info["tree_size"], info["root_hash"] = size, root.hex()
        if self.witness_keys:
            cosigners = []
            for vkey in self.witness_keys:
                try:
                    cosigners.append(Cosigner(vkey))
                except NoteError:
                    pass  # reported by the checkpoint.txt check
            valid, problems = check_cosignatures(note, cosigners, self.now)
            info["witnesses"] = {k.split("+")[0]: t for k, t in valid.items()}
            for problem_text in problems:
                report.fail(f"{label}: {problem_text}", WITNESS_QUORUM)
        if size < head[0]:
            report.fail(f"{label} has tree size {size:,}, the bundle's checkpoint.txt {head[0]:,}: the log serves a "
                        "history without entries the bundle proves", TRUNCATED)
            return
        tree = TileTree(client, size)
        try:
            if size == head[0]:
                info["extends_bundle"] = root == head[1]
            else:
                info["extends_bundle"] = verify_consistency(head[0], size, head[1], root, tree.consistency(head[0]))
            if not info["extends_bundle"]:
                report.fail(f"{label} (tree size {size:,}) does not extend the bundle's checkpoint.txt (tree size "
                            f"{head[0]:,}): two different histories were signed", FORKED)
            proven = 0
            for seq, leaf in self._bundle_leaves():
                if not 0 <= seq < size or not verify_inclusion(seq, size, leaf, tree.inclusion(seq), root):
                    report.fail(f"entry seq {seq}: its inclusion in {label} (tree size {size:,}) does not verify "
                                "from the log's tiles")
                else:
                    proven += 1
            info["entries_proven"] = proven
        except TileMismatch as exc:
            report.fail(f"tiles: {exc}")
        finally:
            info["tiles_fetched"] = client.fetched - 1  # (the checkpoint was the first fetch)

    def _bundle_leaves(self) -> Iterator[tuple[int, bytes]]:
        """(seq, entry_hash) of export-entry.json and of every line of entries.jsonl that has them. Their
        hashes against their bodies were checked by the entries pass (a mismatch is reported there)."""
        names = [("export-entry.json", True), ("entries.jsonl", False)]
        for name, whole in names:
            with self.zip.open(name) as fh:
                lines = [fh.read()] if whole else fh
                for line in lines:
                    try:
                        obj = json.loads(line)
                        seq, leaf = obj["body"]["seq"], _hex32(obj["entry_hash"])
                    except (ValueError, KeyError, TypeError):
                        continue  # a malformed line is reported by the entries pass
                    if isinstance(seq, int) and not isinstance(seq, bool):
                        yield seq, leaf

    # --- the export's own entry: the signed scope ---------------------------------------------------

    def _entry_hash(self, body: Any, raw: bytes | None, claimed: bytes) -> bytes | None:
        """The verified leaf hash of ``body``, or None when it does not match ``claimed``.

        The body as written is hashed first; when those bytes are not exactly its
        canonical form (re-serialised, edited) the body is canonicalised here
        (RFC 8785) and hashed again. ``--strict`` requires the canonical bytes.
        """
        if raw is not None and not self.strict:
            leaf = leaf_hash(raw)
            if leaf == claimed:
                return leaf
        canonical = canonicalize(body)
        if self.strict and raw is not None and canonical != raw:
            return None
        leaf = leaf_hash(canonical)
        return leaf if leaf == claimed else None

    def _export_entry(self, head: tuple[int, bytes]) -> None:
        """export-entry.json: the ledger's ``ledger.exported`` entry for this export, proven in the tree of
        checkpoint.txt. Its scope becomes the report's (``export_seq``, ``scope``, ``exporter``), and the
        manifest must say the same; any failure leaves the report without a scope."""
        body = self._proven_export_body(head)
        if body is None:
            return
        payload = body.get("payload")
        if body.get("event_type") != EXPORT_EVENT or not isinstance(payload, dict):
            self.report.fail(f"export entry: it is not a {EXPORT_EVENT} entry")
            return
        self.report.export_seq = body["seq"]
        self.report.scope = payload.get("scope")
        self.report.exporter = body.get("actor")
        if payload.get("export_id") != self.manifest.get("export_id"):
            self.report.fail("export entry: it records another export than the manifest's export_id")
        if payload.get("format") != "bundle":
            self.report.fail("export entry: the ledger recorded this export as another format than a bundle")
        if payload.get("scope") != self.manifest.get("scope"):
            self.report.fail("manifest: its scope differs from the scope the ledger recorded for this export")
        if body.get("actor") != self.manifest.get("exporter"):
            self.report.fail("manifest: its exporter differs from the actor the ledger recorded for this export")

    def _proven_export_body(self, head: tuple[int, bytes]) -> dict[str, Any] | None:
        """export-entry.json's body when it is strict JSON, hashes to its entry_hash and its inclusion proof
        leads to ``head``'s root; None otherwise (reported)."""
        data = _File(self, "export-entry.json").read()
        if self._json_problem("export-entry.json", data) is not None:
            return None
        try:
            obj = json.loads(data)
            body: dict[str, Any] = obj["body"]
            _check_body_shape(body)
            claimed = _hex32(obj["entry_hash"])
            path = _hash_list(obj["inclusion"])
        except (ValueError, KeyError, TypeError) as exc:
            self.report.fail(f"export entry: export-entry.json is malformed ({exc})")
            return None
        try:
            leaf = self._entry_hash(body, None, claimed)
        except CanonicalizationError as exc:
            self.report.fail(f"export entry: {exc}")
            return None
        if leaf is None:
            self.report.fail("export entry: its entry_hash does not match its body (the scope was edited)")
            return None
        if obj.get("tree_size") != head[0] or not verify_inclusion(body["seq"], head[0], leaf, path, head[1]):
            self.report.fail("export entry: its inclusion proof does not lead to the root of checkpoint.txt")
            return None
        return body

    # --- entries, proofs, links and completeness ---------------------------------------------------

    def _json_problem(self, where: str, data: bytes) -> str | None:
        """Strict JSON for a file holding an entry body (export-entry.json, a boundaries.jsonl line).

        No duplicate member, lone surrogate or unsafe number anywhere, and the body written exactly
        in its RFC 8785 form. A failure (``malformed_json``) is returned, a warning with --lenient
        (then None: the file is read as before).
        """
        try:
            obj = strict_loads(data)
            problem = json_problem(obj)
            if problem is None and isinstance(obj, dict) and "body" in obj:
                canonical = canonicalize(obj["body"])
                at = data.find(b'"body":')
                if at < 0 or data[at + 7 : at + 7 + len(canonical)] != canonical:
                    problem = "the body is not written in its RFC 8785 canonical form"
        except (JSONProblem, CanonicalizationError) as exc:
            problem = str(exc)
        except ValueError:
            return None  # not JSON at all: the caller says so
        if problem is None:
            return None
        if self.lenient:
            self.report.warn(f"{where}: {problem}")
            return None
        self.report.fail(f"{where}: {problem}", MALFORMED_JSON)
        return problem

    def _entry_line(self, line: bytes) -> tuple[Entry, bytes] | tuple[str, str]:
        """Parse and hash-check one line of entries.jsonl: (entry, leaf hash) or (reason, why it fails).

        The exporter writes ``{"body":BODY,"entry_hash":"HEX"}`` with BODY the canonical
        bytes: the whole line is then its own RFC 8785 form, which strict reading requires
        (no duplicate member, no lone surrogate, no unsafe number, no other spacing or escaping).
        Those bytes are hashed as they are. A line that breaks those rules is a ``malformed_json``
        failure (a warning with --lenient) and, as before, is parsed, its body hashed as written or
        canonicalised here (RFC 8785), and checked like any other.
        Either way the hash is SHA-256(0x00 || JCS(body)), compared with the entry's ``entry_hash``.
        """
        if not self.strict and line[:8] == b'{"body":' and line[-81:-66] == b',"entry_hash":"' \
                and line[-2:] == b'"}':
            raw = line[8:-81]
            leaf = hashlib.sha256(b"\x00" + raw).digest()
            entry_hash = binascii.hexlify(leaf)
            if entry_hash == line[-66:-2]:
                fast = fast_entry(raw, entry_hash)
                if fast is not None:
                    return fast, leaf
        try:
            obj = json.loads(line)
            body = obj["body"]
            claimed = _hex32(obj["entry_hash"])
        except (ValueError, KeyError, TypeError):
            return FAILED, "not an entry line {body, entry_hash}"
        seq = body.get("seq") if isinstance(body, dict) else None
        problem = json_check(line)
        if problem is not None:  # named; the entry is still checked as written, so nothing else is blamed on it
            if self.lenient:
                self.report.warn(f"entry seq {seq}: {problem}")
            else:
                self.report.fail(f"entries.jsonl: seq {seq}: {problem}", MALFORMED_JSON)
        raw_body = line[8:-81] if line[:8] == b'{"body":' and line[-81:-66] == b',"entry_hash":"' else None
        try:
            verified = self._entry_hash(body, raw_body, claimed)
        except CanonicalizationError as exc:
            return FAILED, f"the body has no canonical form: {exc}"
        if verified is None:
            return FAILED, f"seq {seq}: its entry_hash does not match its body (the entry was edited)"
        # Only the ledger's own bodies hash to a leaf, so this holds unless the ledger wrote a malformed one.
        try:
            _check_body_shape(body)
        except ValueError as exc:
            return FAILED, str(exc)
        return Entry.from_body(body, claimed.hex().encode()), verified

    def _entries(self, head: tuple[int, bytes]) -> None:
        """Check every entry, its proof, the links and completeness: in one process, or in two when
        ``jobs`` allows it and the bundle is big enough to repay starting a second process.

        The second process (``_ProofWorker``) verifies the inclusion proofs while this one parses
        the entries and checks the links. It only ever answers "every proof verified and the files
        pair up" or "something did not": in the second case (or if it cannot run at all) the report
        is put back as it was and the whole pass is redone in one process, so failures are found
        and reported by exactly the same code, in the same order, whatever ``jobs`` is.

        Either way the entries are first taken by pages (``page_of``; in one process their proofs by
        ``ProofPages``), which only ever take what the line-by-line code would pass without a word;
        a proof they cannot show verified redoes the pass with that code alone, the same way. A crash
        in between leaves nothing behind: the report is only the finished pass's.
        """
        pages = self.pages and not self.strict
        if self._wants_worker():
            saved = self._snapshot()
            worker = None
            try:
                worker = _ProofWorker(self.path, self.strict, head)
                self._entries_pass(head, worker, pages=pages)
                return
            except (_Fallback, VerifyError):
                pass  # (a VerifyError is raised again, by the careful pass, as it would have been)
            finally:
                if worker is not None:
                    worker.close()
            self._restore(saved)
        elif pages:
            # Pages (``page_of``, ``ProofPages``) in one process; any proof they cannot show verified sends
            # the whole pass to the careful line-by-line code, as the worker's answer does.
            saved = self._snapshot()
            try:
                self._entries_pass(head, None, pages=True)
                return
            except (_Fallback, VerifyError):
                pass
            self._restore(saved)
        self._entries_pass(head, None)

    def _snapshot(self) -> tuple[dict[str, Any], set[str]]:
        return copy.deepcopy(vars(self.report)), set(self.read_files)

    def _restore(self, saved: tuple[dict[str, Any], set[str]]) -> None:
        """The report as it was before a pass that is to be redone (``_entries``)."""
        state, read_files = saved
        self.report.__dict__.clear()
        self.report.__dict__.update(state)
        self.read_files = read_files

    def _wants_worker(self) -> bool:
        if self.jobs is not None:
            return self.jobs > 1
        # fork() from a process with other threads (a server) copies locks they may hold: not on our own.
        if _usable_cpus() < 2 or threading.active_count() > 1:
            return False
        try:
            return self.zip.getinfo("entries.jsonl").file_size >= _PARALLEL_MIN_BYTES
        except KeyError:
            return False

    def _entries_pass(self, head: tuple[int, bytes], worker: _ProofWorker | None, pages: bool = False) -> None:
        """One pass over the entries: the scope they are held to, every entry line, then completeness.

        Reports every failure, in the order of the lines; sets the report's entry counts. With a
        ``worker``, raises ``_Fallback`` when it did not verify every proof (the caller reruns the pass).
        """
        scope = self._export_scope()
        self._check_entries(head, scope, worker, pages)
        if self.report.completeness == "none" or self.report.export_seq is None:
            return
        self._completeness(head, scope)

    def _export_scope(self) -> _Scope:
        """What the export's signed scope (the export entry's, never the manifest's) holds the entries to.

        Reports a scope without a valid ``ledger_size`` and malformed subjects, and sets
        ``report.completeness``. Without a verified export entry nothing limits the entries.
        """
        report = self.report
        scope = report.scope if isinstance(report.scope, dict) else {}
        export_seq = report.export_seq
        ledger_size = scope.get("ledger_size")
        if export_seq is None:
            ledger_size = 2**63  # the export entry did not verify (reported): no scope to hold entries to
        elif not isinstance(ledger_size, int) or not 0 <= ledger_size <= export_seq:
            ledger_size = export_seq
            report.fail("export entry: its scope does not say how many entries the ledger had")
        kind = completeness_kind(scope)
        report.completeness = kind if export_seq is not None else "none"
        limits = _Scope(kind, ledger_size)
        for item in scope.get("subjects", []):
            try:
                key = subject_key(str(item[0]), str(item[1]))
            except (IndexError, TypeError, CanonicalizationError):
                report.fail("export entry: its scope lists a malformed subject")
                continue
            limits.subjects.add(key)
            if kind == "subjects":
                limits.heads[key] = item[2] if len(item) > 2 else None
                limits.complete[key] = _Chain()
        limits.types = set(scope.get("event_types") or [])
        limits.since = str(scope["since"]).encode() if scope.get("since") else None
        limits.until = str(scope["until"]).encode() if scope.get("until") else None
        return limits

    def _check_entries(
        self, head: tuple[int, bytes], scope: _Scope, worker: _ProofWorker | None, pages: bool = False
    ) -> None:
        """Every line of entries.jsonl, in order: its hash, its inclusion proof, the hash chain, the subject
        chain, the signed scope, and its place in the completeness chains (kept in ``scope``).

        Each line is one entry (``_entry_line``; its first case, the exporter's own layout, is inlined
        here because this loop is verify.py's hot path). Its proof is the same line of proofs.jsonl,
        checked here (``InclusionChecker.problem``) or, with a ``worker``, sent to the worker, which
        pairs the lines the same way and checks every other body's JSON. With ``pages``, each block of
        lines is first offered to ``page_of``: a page that follows ``prev`` and whose links and scope
        hold as columns is taken whole (its proofs to ``ProofPages`` or the worker, which raise or
        answer ``_Fallback`` if one fails); any other block is read line by line. What is rare (a failure, a
        gap, the first entry) is handled by the named steps below, so the common path stays short.
        """
        report = self.report
        fail = report.fail
        ledger_size, in_scope, types = scope.ledger_size, scope.subjects, scope.types
        since, until = scope.since, scope.until
        check_time = scope.kind == "none" and bool(since or until)
        collect = {"ledger": self._collect_range, "subjects": self._collect_subject}.get(scope.kind)
        slow_entry, seq_link, subject_link = self._slow_entry, self._seq_link, self._subject_link
        sha256, hexlify, fast_fields = hashlib.sha256, binascii.hexlify, fast_entry
        fast_path = not self.strict
        every_body = worker is None
        prove = InclusionChecker(*head).problem
        proofs = _File(self, "proofs.jsonl").lines() if worker is None else iter(())
        to_worker = worker.add if worker is not None else None
        last_of: dict[bytes, int] = {}
        prev: Entry | None = None
        contiguous_from = 0
        count = 0
        n = 0
        # Pages (``page_of``) need the exporter's layout, ``prev`` to link to, and nothing per entry but the
        # chain of a ledger-range export (its last entry is ``prev``).
        pages = pages and fast_path and scope.kind in ("none", "ledger") and _fast_encode is not None
        # Without a worker, the pages' proofs are checked here, many at once, after the page was taken.
        pager = ProofPages(*head) if pages and worker is None else None
        for block, lines in _File(self, "entries.jsonl").blocks():
            k = len(lines)
            # This block's proof lines, one per non-empty entry line (the line-by-line code takes them in order).
            proof_lines = list(islice(proofs, k - lines.count(b""))) if worker is None else []
            if pages and prev is not None and (page := page_of(block, k, worker is None)) is not None:
                seqs, leaves = page.seqs, page.leaves
                first = prev.seq + 1
                chain_ok = (
                    seqs[0] == first and seqs[-1] < ledger_size and seqs == list(range(first, first + k))
                    and page.prev_hashes[0] == prev.entry_hash and page.prev_hashes[1:] == page.entry_hashes[:-1]
                    and (not in_scope or in_scope.issuperset(page.subjects))
                    and (not types or types.issuperset(e.decode("utf-8") for e in page.event_types))
                    and not (check_time and ((since and min(page.timestamps) < since)
                                             or (until and max(page.timestamps) > until)))
                    and (collect is None or scope.ledger.last is prev)
                    and (pager is None or len(proof_lines) == k)
                )
                if chain_ok:
                    # subject_prev must be the seq of the subject's previous entry; last_of is only changed
                    # once the whole page is shown linked (else the block is taken line by line).
                    get = last_of.get
                    linked: dict[bytes, int] = {}
                    for subject, sp, seq in zip(page.subjects, page.subject_prevs, seqs):
                        if linked.get(subject, get(subject)) != sp:
                            break
                        linked[subject] = seq
                    else:
                        last_of.update(linked)
                        if worker is not None:
                            worker.add_page(seqs[0], page.entry_hashes, page.bodies)
                        elif pager is not None and not pager.add(seqs, leaves, proof_lines):
                            raise _Fallback  # a proof failed: the careful pass finds and words it
                        prev = page.entry(k - 1)
                        if collect is not None:
                            scope.ledger.last = prev
                            scope.ledger.count += k
                        count += k
                        n += k
                        continue
            # Line by line: the fast case of one line, else the careful code (which finds and words failures).
            block_proofs = iter(proof_lines)
            for line in lines:
                n += 1
                if not line:
                    continue
                proof_line = next(block_proofs, None)
                entry = None
                body_raw = b""
                # (_entry_line's first case, inlined: the exporter's layout, hashed as written, and whether the
                # body is exactly canonical strict JSON)
                if fast_path and line[:8] == b'{"body":' and line[-81:-66] == b',"entry_hash":"' and line[-2:] == b'"}':
                    raw = line[8:-81]
                    leaf = sha256(b"\x00" + raw).digest()
                    entry_hash = hexlify(leaf)
                    if entry_hash == line[-66:-2]:
                        # With a proof worker, it checks every other body: the two processes share the work.
                        here = every_body or n & 1 == 1
                        entry = fast_fields(raw, entry_hash, here)
                        if entry is not None and not here:
                            body_raw = raw
                if entry is None:
                    parsed = slow_entry(n, line, worker)
                    if parsed is None:
                        continue
                    entry, leaf = parsed
                seq = entry.seq
                count += 1
                # its inclusion proof
                if to_worker is not None:
                    to_worker(seq, leaf, body_raw)
                elif (problem := prove(n, seq, leaf, proof_line)) is not None:
                    fail(problem)
                if seq >= ledger_size:
                    fail(f"entry seq {seq}: the ledger had only {ledger_size} entries when the export was made")
                # seq order and the hash chain between consecutive seq
                if prev is None or seq != prev.seq + 1 or entry.prev_hash != prev.entry_hash:
                    start = seq_link(entry, prev, contiguous_from)
                    if start is None:
                        continue
                    contiguous_from = start
                # the subject chain: subject_prev must point at the subject's previous entry
                subject = entry.subject
                last = last_of.get(subject)
                if entry.subject_prev != last:
                    subject_link(entry, last, contiguous_from)
                last_of[subject] = seq
                # the signed scope
                if in_scope and subject not in in_scope:
                    fail(f"entry seq {seq}: its subject {subject_label(subject)} is not in the export's scope")
                if types and entry.event_type not in types:
                    fail(f"entry seq {seq}: its event type {entry.event_type} is not in the export's scope")
                if check_time and ((since and entry.timestamp < since) or (until and entry.timestamp > until)):
                    fail(f"entry seq {seq}: its timestamp is outside the export's time range")
                if collect is not None:
                    collect(scope, entry)
                prev = entry
        if pager is not None and not pager.flush():
            raise _Fallback
        if worker is not None:
            # Every proof verified and the line counts match (else _Fallback: the single-process pass reruns).
            self.file_read("proofs.jsonl", *worker.finish())
        elif extra := sum(1 for line in proofs if line):
            fail(f"proofs.jsonl has {extra} more line(s) than entries.jsonl")
        report.entries = count
        report.last_seq = prev.seq if prev is not None else None
        report.subjects = len(last_of)

    def _slow_entry(self, n: int, line: bytes, worker: _ProofWorker | None) -> tuple[Entry, bytes] | None:
        """Line ``n`` of entries.jsonl when the inlined fast case did not take it: (entry, leaf hash) by
        ``_entry_line``, or None when it is no valid entry (reported; the worker skips its proof line)."""
        parsed = self._entry_line(line)
        if isinstance(parsed[0], str):
            self.report.fail(f"entry on line {n} of entries.jsonl: {parsed[1]}", parsed[0])
            if worker is not None:
                worker.add_no_entry()
            return None
        return parsed

    def _seq_link(self, entry: Entry, prev: Entry | None, contiguous_from: int) -> int | None:
        """An entry that does not simply follow ``prev`` (seq + 1, prev_hash its hash): the first one, a gap,
        a broken hash link or a seq out of order.

        Reports the failure; returns the seq where the run of consecutive entries now starts, or None
        when the entry is out of order (it is then not checked further).
        """
        seq = entry.seq
        if prev is None:
            contiguous_from = seq
            self.report.first_seq = seq
        elif seq == prev.seq + 1:
            self.report.fail(f"chain: entry seq {seq}'s prev_hash is not the hash of entry seq {prev.seq}")
        elif seq <= prev.seq:
            self.report.fail(f"entry seq {seq}: entries are not in increasing seq order (after seq {prev.seq})")
            return None
        else:
            contiguous_from = seq
        if seq == 0 and entry.prev_hash != ZERO_HASH:
            self.report.fail("chain: entry seq 0 has a prev_hash other than zeros")
        return contiguous_from

    def _subject_link(self, entry: Entry, last: int | None, contiguous_from: int) -> None:
        """An entry whose subject_prev is not ``last``, the seq of its subject's previous entry in the bundle.

        A failure when the bundle shows it wrong: ``last`` is in the run of consecutive entries (or
        after the entry's subject_prev), or subject_prev points into that run at another subject's entry.
        """
        subject, seq, sp = entry.subject, entry.seq, entry.subject_prev
        if last is not None and (sp is None or sp < last or last >= contiguous_from):
            self.report.fail(f"subject {subject_label(subject)}: entry seq {seq}'s subject_prev is {sp}, "
                             f"but the subject's previous entry in the bundle is seq {last}")
        elif sp is not None and sp >= contiguous_from:
            self.report.fail(f"subject {subject_label(subject)}: entry seq {seq}'s subject_prev points at seq {sp}, "
                             "which is in the bundle but about another subject")

    def _collect_range(self, scope: _Scope, entry: Entry) -> None:
        """A ledger-range export: ``entry`` joins the range's chain; a gap in seq is reported."""
        chain = scope.ledger
        if chain.last is None or entry.seq == chain.last.seq + 1:  # (the hash chain was checked already)
            if chain.first is None:
                chain.first = entry
            chain.last = entry
            chain.count += 1
        else:
            self._extend(chain, entry, None)

    def _collect_subject(self, scope: _Scope, entry: Entry) -> None:
        """A subjects export: ``entry`` joins its subject's chain when the export claims that subject."""
        chain = scope.complete.get(entry.subject)
        if chain is not None:
            self._extend(chain, entry, entry.subject)

    def _completeness(self, head: tuple[int, bytes], scope: _Scope) -> None:
        """For an export that claims completeness: its boundary entries, then the ends of each complete chain
        (every subject of the scope, or the ledger's range). Reports every gap."""
        self._boundaries(head, scope.complete, scope.ledger, scope.kind, scope.ledger_size)
        if scope.kind == "subjects":
            self.report.complete_subjects = len(scope.complete)
            for subject, chain in scope.complete.items():
                self._close(chain, subject, scope.heads.get(subject), scope.since, scope.until)
        else:
            head_seq = scope.ledger_size - 1 if scope.ledger_size > 0 else None
            self._close(scope.ledger, None, head_seq, scope.since, scope.until)

    def _extend(self, chain: _Chain, entry: Entry, subject: bytes | None) -> None:
        if chain.last is not None and not _linked(chain.last, entry, subject):
            chain.broken = True
            self.report.fail(
                f"completeness of {subject_label(subject)}: entries are missing between seq {chain.last.seq} "
                f"and seq {entry.seq} (seq {entry.seq} links to "
                f"{entry.subject_prev if subject is not None else entry.seq - 1})")
        if chain.first is None:
            chain.first = entry
        chain.last = entry
        chain.count += 1

    def _boundaries(
        self,
        head: tuple[int, bytes],
        complete: dict[bytes, _Chain],
        ledger_chain: _Chain,
        kind: str,
        ledger_size: int,
    ) -> None:
        if "boundaries.jsonl" not in self.zip.namelist():
            self.report.fail("completeness: boundaries.jsonl is missing")
            return
        size, root = head
        for n, line in enumerate(_File(self, "boundaries.jsonl").lines(), 1):
            if not line.strip():
                continue
            if self._json_problem(f"boundaries.jsonl line {n}", line) is not None:
                continue
            try:
                obj = json.loads(line)
                body, role = obj["body"], obj["role"]
                _check_body_shape(body)
                claimed = _hex32(obj["entry_hash"])
                path = _hash_list(obj["inclusion"])
            except (ValueError, KeyError, TypeError) as exc:
                self.report.fail(f"boundaries.jsonl line {n}: malformed ({exc})")
                continue
            try:
                leaf = self._entry_hash(body, None, claimed)
            except CanonicalizationError as exc:
                self.report.fail(f"boundary entry on line {n}: {exc}")
                continue
            if leaf is None:
                self.report.fail(f"boundary entry seq {body['seq']}: its entry_hash does not match its body")
                continue
            if obj.get("tree_size") != size or not verify_inclusion(body["seq"], size, leaf, path, root):
                self.report.fail(f"boundary entry seq {body['seq']}: its inclusion proof does not verify")
                continue
            entry = Entry.from_body(body, claimed.hex().encode())
            chain = complete.get(entry.subject) if kind == "subjects" else ledger_chain
            if chain is None or role not in ("before", "after") or entry.seq >= ledger_size:
                self.report.fail(f"boundary entry seq {entry.seq}: not a boundary of anything in the scope")
                continue
            if getattr(chain, role) is not None:
                self.report.fail(f"boundary entry seq {entry.seq}: a second '{role}' boundary")
                continue
            setattr(chain, role, entry)

    def _close(
        self, chain: _Chain, subject: bytes | None, head: int | None, since: bytes | None, until: bytes | None
    ) -> None:
        """The ends of a complete chain: nothing before the first entry or after the last was left out.

        ``head``: the seq of the scope's last entry when the export was made (None: it had none).
        """
        label = subject_label(subject)
        fail = self.report.fail
        if chain.first is not None and since and chain.first.timestamp < since:
            fail(f"completeness of {label}: its first entry (seq {chain.first.seq}) is before the scope's start")
        if chain.last is not None and until and chain.last.timestamp > until:
            fail(f"completeness of {label}: its last entry (seq {chain.last.seq}) is after the scope's end")
        self._close_start(chain, subject, label, head, since)
        self._close_end(chain, subject, label, head, until)

    def _close_start(
        self, chain: _Chain, subject: bytes | None, label: str, head: int | None, since: bytes | None
    ) -> None:
        """The start of a complete chain: its 'before' boundary (the last entry before the range) links to
        its first entry, or without one, its first entry is where the subject (or the ledger) begins."""
        fail = self.report.fail
        before, after = chain.before, chain.after
        first = chain.first or after
        if before is not None:
            if not since or before.timestamp >= since:
                fail(f"completeness of {label}: the entry before the range (seq {before.seq}) is itself in the range")
            if first is not None and not _linked(before, first, subject):
                fail(f"completeness of {label}: entries are missing between seq {before.seq} and seq {first.seq}")
            elif first is None and before.seq != head:
                fail(f"completeness of {label}: entries after seq {before.seq} are missing")
        elif first is not None and not _starts(first, subject):
            fail(f"completeness of {label}: entries before seq {first.seq} (it links to "
                 f"{first.subject_prev if subject is not None else first.seq - 1}) are missing")

    def _close_end(
        self, chain: _Chain, subject: bytes | None, label: str, head: int | None, until: bytes | None
    ) -> None:
        """The end of a complete chain: its last entry links to its 'after' boundary (the first entry after
        the range), or without one, it is ``head``, the last one the ledger recorded in the scope."""
        fail = self.report.fail
        before, after = chain.before, chain.after
        last = chain.last or before
        if after is not None:
            if not until or after.timestamp <= until:
                fail(f"completeness of {label}: the entry after the range (seq {after.seq}) is itself in the range")
            if last is not None and chain.last is not None and not _linked(last, after, subject):
                fail(f"completeness of {label}: entries are missing between seq {last.seq} and seq {after.seq}")
        elif last is not None:
            if last.seq != head:
                fail(f"completeness of {label}: entries after seq {last.seq} are missing (the ledger recorded "
                     f"seq {head} as the last one in the scope)")
        elif head is not None:
            fail(f"completeness of {label}: the bundle has none of its entries, but the ledger recorded seq {head}")


def _linked(a: Entry, b: Entry, subject: bytes | None) -> bool:
    if subject is None:
        return b.seq == a.seq + 1 and b.prev_hash == a.entry_hash
    return b.subject == a.subject == subject and b.subject_prev == a.seq


def _starts(entry: Entry, subject: bytes | None) -> bool:
    if subject is None:
        return entry.seq == 0
    return entry.subject_prev is None


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may run on (Linux)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class _Fallback(Exception):
    """The proof worker found something (or could not run): redo the entries in one process."""


class _ProofWorker:
    """A second process that verifies every inclusion proof against the head checkpoint.

    It reads proofs.jsonl itself and gets from the entries process, in batches through a pipe,
    each entry line's seq and leaf hash (40 bytes; no line crosses). It answers once, at the
    end: the SHA-256 and size of proofs.jsonl when every proof verified and every entry line
    had its proof line and no line was left over, nothing otherwise (then the entries process
    redoes everything alone, which finds and words the failures). Standard library only;
    ``fork`` where the platform has it (no re-import), else the platform's default.
    """

    def __init__(self, path: str, strict: bool, head: tuple[int, bytes]) -> None:
        self._batch = bytearray()
        self._pack = _LEAF_RECORD.pack
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        leaves_out, self._leaves = context.Pipe(duplex=False)
        self._answer, answer_in = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_proof_worker_main, args=(leaves_out, answer_in, self._leaves, path, head), daemon=True)
        try:
            self._process.start()
        except Exception:  # no processes on this platform / in this sandbox: one process it is
            self._leaves.close()
            self._answer.close()
            raise _Fallback from None
        finally:
            # Only the worker holds these ends now: if it stops, sending fails instead of blocking.
            leaves_out.close()
            answer_in.close()

    def add(self, seq: int, leaf: bytes, body: bytes) -> None:
        """Queue one entry line's record for the worker: seq + 1 (0: not an entry), leaf hash, and the body
        when the worker is to check its JSON (else b""); sends the batch once it is big enough."""
        batch = self._batch
        if seq < _SEQ_LIMIT:
            batch += self._pack(seq + 1, leaf, len(body))
            batch += body
        else:
            batch += _BAD_LEAF
        if len(batch) >= _BATCH_BYTES:
            self.send(batch)
            del batch[:]

    def add_page(self, first: int, entry_hashes: tuple[bytes, ...], bodies: tuple[bytes, ...]) -> None:
        """Queue a page (``page_of`` without hashing) for the worker: its entries' seq from ``first``, their
        bodies, which it hashes and compares with their entry hashes before it checks their proofs (one record
        with ``_PAGE`` set in its length: the count, the entry hashes as 32 bytes each, the bodies)."""
        blob = _COUNT.pack(len(bodies)) + binascii.unhexlify(b"".join(entry_hashes)) + b"\n".join(bodies)
        batch = self._batch
        batch += self._pack(first + 1, bytes(32), len(blob) | _PAGE)
        batch += blob
        if len(batch) >= _BATCH_BYTES:
            self.send(batch)
            del batch[:]

    def add_no_entry(self) -> None:
        """Queue a line of entries.jsonl that is not an entry (reported here): its proof line is skipped."""
        self._batch += _NO_LEAF

    def finish(self) -> tuple[str, int]:
        """Send what is queued and wait for the answer: proofs.jsonl's SHA-256 and size (``result``)."""
        self.send(self._batch)
        return self.result()

    def send(self, batch: bytearray) -> None:
        try:
            self._leaves.send_bytes(batch)
        except OSError:  # the worker stopped: it found something, or died
            raise _Fallback from None

    def result(self) -> tuple[str, int]:
        try:
            self._leaves.send_bytes(b"")  # the end
            answer = self._answer.recv()
        except (EOFError, OSError):
            raise _Fallback from None
        if not (isinstance(answer, tuple) and len(answer) == 2):
            raise _Fallback
        return answer[0], answer[1]

    def close(self) -> None:
        self._leaves.close()
        self._answer.close()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()


def _proof_worker_main(leaves: Any, answer: Any, parents_end: Any, path: str, head: tuple[int, bytes]) -> None:
    # The copy of the parent's sending end that fork() gave us: closed, so that if the parent dies
    # we read the end of the pipe instead of waiting for ever.
    parents_end.close()
    try:
        result: tuple[str, int] | None = _ProofChecker(path).check_proofs(head, leaves)
    except BaseException:  # any problem at all: the parent redoes everything in one process
        result = None
    try:
        leaves.close()  # first, so that a parent still sending stops (and falls back) at once
        answer.send(result)
    finally:
        answer.close()


class _ProofChecker(BundleVerifier):
    """The proof worker's half of ``_entries_pass``: the same pairing of lines and the same checks of
    the proofs. None as soon as anything fails."""

    def __init__(self, path: str) -> None:
        super().__init__(path, jobs=1)
        self.digests: dict[str, tuple[str, int]] = {}

    def file_read(self, name: str, sha256: str, size: int) -> None:
        self.digests[name] = (sha256, size)

    def check_proofs(self, head: tuple[int, bytes], leaves: Any) -> tuple[str, int] | None:
        """Pair the records from ``leaves`` with the lines of proofs.jsonl and check each proof (and each
        body sent along); proofs.jsonl's (SHA-256, size) when all is well and no line is left over."""
        with zipfile.ZipFile(self.path) as self.zip:
            pages = ProofPages(*head)
            proofs = _File(self, "proofs.jsonl").lines()
            unpack, record, exact_json = _LEAF_RECORD.unpack_from, _LEAF_RECORD.size, is_exact_rest
            while batch := leaves.recv_bytes():
                pos, end = 0, len(batch)
                seqs: list[int] = []
                hashes: list[bytes] = []
                lines: list[bytes] = []
                while pos < end:
                    seq1, leaf, length = unpack(batch, pos)
                    pos += record
                    if length & _PAGE:
                        length ^= _PAGE
                        pos += length
                        page = self._page(batch[pos - length : pos], seq1 - 1, proofs)
                        if page is None:
                            return None  # the entries process redoes it all line by line
                        seqs += page[0]
                        hashes += page[1]
                        lines += page[2]
                        continue
                    if length:
                        pos += length
                        body = batch[pos - length : pos]
                        if not exact_json(body) and exact_json_problem(body) is not None:
                            return None  # the entries process finds and words it
                    proof_line = next(proofs, None)
                    if not seq1:
                        continue  # not an entry line: the parent reports it; its proof is never looked at
                    if seq1 > _SEQ_LIMIT or proof_line is None:
                        return None  # the entries process words it
                    seqs.append(seq1 - 1)
                    hashes.append(leaf)
                    lines.append(proof_line)
                if not pages.add(seqs, hashes, lines):
                    return None
            if not pages.flush() or any(line for line in proofs):
                return None
        return self.digests.get("proofs.jsonl")

    @staticmethod
    def _page(blob: bytes, first: int, proofs: Iterator[bytes]) -> tuple[list[int], list[bytes], list[bytes]] | None:
        """A page record's (seqs, leaf hashes, proof lines) when every body hashes to its entry hash and every
        entry has its proof line; None otherwise."""
        (count,) = _COUNT.unpack_from(blob)
        claimed = blob[4 : 4 + 32 * count]
        bodies = blob[4 + 32 * count :].split(b"\n")
        sha256 = hashlib.sha256
        leaves = [sha256(b"\x00" + body).digest() for body in bodies]
        if len(bodies) != count or b"".join(leaves) != claimed:
            return None
        lines = list(islice(proofs, count))
        if len(lines) != count:
            return None
        return list(range(first, first + count)), leaves, lines


def completeness_kind(scope: dict[str, Any]) -> str:
    """What the export's scope lets a bundle prove: derived from the signed scope, never from the manifest."""
    if scope.get("event_types"):
        return "none"
    if scope.get("subjects"):
        return "subjects"
    if scope.get("model") or scope.get("dataset"):
        return "subjects"  # a model or dataset whose subjects list is empty: nothing to show
    return "ledger"


def verify_bundle(
    path: str,
    trusted_keys: list[str] | None = None,
    strict: bool = False,
    jobs: int | None = None,
    *,
    witness_keys: list[str] | None = None,
    quorum: int | None = None,
    known_checkpoints: list[tuple[str, str]] | None = None,
    lenient: bool = False,
    now: float | None = None,
    tiles: TileClient | None = None,
) -> Report:
    """Verify the bundle at ``path``; raises VerifyError when it cannot be read at all (or ``tiles`` cannot).

    ``trusted_keys``: trusted-key lines (``VKEY[ from=N][ until=M]``); without any, the report is
    at best NOT ANCHORED. ``witness_keys``: cosigner vkeys whose cosignatures checkpoint.txt must
    carry, at least ``quorum`` of them (default: all). ``known_checkpoints``: (label, signed note)
    of checkpoints the reader kept, which the bundle's history must extend. ``lenient``: JSON that
    strict reading refuses is a warning instead of a failure. ``jobs``: 1 checks everything in
    this process; 2 verifies the inclusion proofs in a second process; None (the default) uses
    two for a big bundle on a machine with two or more CPUs. The report is the same either way.
    ``tiles``: a tiled log (``--tiles URL``) whose checkpoint must extend the bundle's and whose tiles must
    prove every entry again (``BundleVerifier._against_tiles``).
    """
    return BundleVerifier(
        path, trusted_keys, strict, jobs, witness_keys=witness_keys, quorum=quorum,
        known_checkpoints=known_checkpoints, lenient=lenient, now=now, tiles=tiles,
    ).run()


def _read_lines(path: str, what: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise VerifyError(f"cannot read the {what} {path}: {exc}") from None


def _anchors(args: argparse.Namespace) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """(trusted-key lines, witness vkeys, known checkpoints) from the command line; VerifyError when unreadable."""
    keys = list(args.trusted_key)
    for path in args.trusted_keys_file:
        for n, line in enumerate(_read_lines(path, "trusted-keys file"), 1):
            try:
                if parse_trusted_key_line(line) is not None:
                    keys.append(line.strip())
            except ValueError as exc:
                raise VerifyError(f"{path} line {n}: {exc}") from None
    witnesses = list(args.witness_key)
    for path in args.witnesses_file:
        for n, line in enumerate(_read_lines(path, "witnesses file"), 1):
            try:
                vkey = parse_witness_line(line)
            except ValueError as exc:
                raise VerifyError(f"{path} line {n}: {exc}") from None
            if vkey is not None:
                witnesses.append(vkey)
    known = [(path, "\n".join(_read_lines(path, "known checkpoint")) + "\n") for path in args.known_checkpoint]
    return keys, list(dict.fromkeys(witnesses)), known


def _parser() -> argparse.ArgumentParser:
    """verify.py's command line (its --help is the reference; README.txt in a bundle quotes it)."""
    parser = argparse.ArgumentParser(
        prog="verify.py",
        description="Verify an audit-ledger export bundle offline (see README.txt in the bundle). Exit status: "
        "0 verified and anchored by keys you supplied; 1 a check failed; 2 the bundle or an anchor file cannot "
        "be read; 3 consistent, but nothing outside the bundle anchors it (no --trusted-key).",
    )
    parser.add_argument("bundle", help="the export bundle (.zip)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument(
        "--trusted-key", action="append", default=[], metavar="'VKEY[ from=N][ until=M]'",
        help="a ledger verifier key you trust, from a channel other than the bundle, with the tree sizes it may "
        "sign (quote it when it has from=/until=); repeatable. Only these keys are trusted, never keys.txt.",
    )
    parser.add_argument(
        "--trusted-keys-file", action="append", default=[], metavar="FILE",
        help="trusted-key lines, one per line ('#' comments); repeatable, adds to --trusted-key",
    )
    parser.add_argument(
        "--witness-key", action="append", default=[], metavar="VKEY",
        help="a witness's cosigner key (name+id+base64(0x04 || key), c2sp.org/tlog-cosignature); repeatable",
    )
    parser.add_argument(
        "--witnesses-file", action="append", default=[], metavar="FILE",
        help="cosigner keys, one per line, or c2sp.org/tlog-policy 'witness NAME VKEY [URL]' lines",
    )
    parser.add_argument(
        "--quorum", type=int, metavar="K",
        help="how many of the witnesses must have cosigned checkpoint.txt (default: all of them)",
    )
    parser.add_argument(
        "--known-checkpoint", action="append", default=[], metavar="FILE",
        help="a signed checkpoint you kept earlier: the bundle must show its history extends it; repeatable",
    )
    parser.add_argument(
        "--lenient", action="store_true",
        help="forensic reading: JSON that strict reading refuses (duplicate members, non-canonical bytes, lone "
        "surrogates, unsafe numbers) is reported as a warning, and the entry is hashed as written",
    )
    parser.add_argument(
        "--strict", action="store_true",
        help="re-canonicalise every entry body in Python (RFC 8785) instead of the fast check (strict JSON is "
        "the default either way)",
    )
    parser.add_argument(
        "--tiles", metavar="URL",
        help="the log's tiles (c2sp.org/tlog-tiles prefix, e.g. https://ledger.example/tlog/): its checkpoint, "
        "verified with the same keys, must extend checkpoint.txt and every entry is proven again from its tiles "
        "(network access, opt-in)",
    )
    parser.add_argument(
        "--tiles-token-file", metavar="FILE",
        help="a file holding an API token with ledger:read, sent as a bearer token to --tiles (needed unless the "
        "log publishes its tiles)",
    )
    parser.add_argument(
        "--jobs", type=int, choices=(1, 2), default=None,
        help="processes to use: 1, or 2 (the inclusion proofs in a second one); default 2 for a big bundle "
        "when there are two or more CPUs. The result is the same.",
    )
    return parser


def _verify(args: argparse.Namespace) -> Report:
    """The anchors named on the command line, then the bundle checked against them; VerifyError when the
    bundle or an anchor file cannot be read, or --quorum asks for more witnesses than were given."""
    keys, witnesses, known = _anchors(args)
    if args.quorum is not None and not 1 <= args.quorum <= len(witnesses):
        raise VerifyError(f"--quorum {args.quorum}: needs 1 to {len(witnesses)} (the witness keys given)")
    if args.tiles_token_file and not args.tiles:
        raise VerifyError("--tiles-token-file needs --tiles URL")
    tiles = None
    if args.tiles:
        token = None
        if args.tiles_token_file:
            lines = [line.strip() for line in _read_lines(args.tiles_token_file, "tiles token file") if line.strip()]
            if len(lines) != 1 or any(c.isspace() for c in lines[0]):
                raise VerifyError(f"{args.tiles_token_file}: must hold exactly one token")
            token = lines[0]
        tiles = TileClient(args.tiles, token)
    return verify_bundle(
        args.bundle, keys, args.strict, args.jobs, witness_keys=witnesses, quorum=args.quorum,
        known_checkpoints=known, lenient=args.lenient, tiles=tiles,
    )


def main(argv: list[str] | None = None) -> int:
    """verify.py: print the report (a summary, or one JSON object with --json) and return the exit status:
    0 verified and anchored, 1 a check failed, 2 unreadable (the message on stderr, or as JSON), 3 not
    anchored (``Report.exit_code``)."""
    args = _parser().parse_args(argv)
    try:
        report = _verify(args)
    except VerifyError as exc:
        if args.json:
            print(json.dumps({"ok": False, "verdict": "UNREADABLE", "exit_code": EXIT_UNREADABLE,
                              "failures": [str(exc)]}))
        else:
            print(f"verify.py: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    if args.json:
        print(json.dumps(report.as_dict(), sort_keys=True))
    else:
        print(report.summary())
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
