"""Canonical bytes of a ledger entry body (RFC 8785, JCS) and its hashes (RFC 9162).

The body has a fixed set of keys, all ASCII, so their JCS order is known in
advance. ``body_bytes`` assembles the canonical form directly from the stored
columns; the payload is kept as its own canonical text, produced once at write
time by the ``rfc8785`` library. Tests check the fast assembly byte for byte
against ``rfc8785.dumps`` of the same object.
"""
from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import rfc8785

ZERO_HASH = "0" * 64
_dumps = json.JSONEncoder(ensure_ascii=False).encode


class CanonicalizationError(ValueError):
    """The value cannot be represented in canonical JSON (NaN, huge int, non-JSON type, nested too deeply...)."""


# The deepest nesting of arrays and objects the ledger takes in a JSON value (a payload, a policy, an
# API body). Canonicalisation, validation and rendering all recurse; without a bound a few kilobytes
# of brackets reach Python's recursion limit and the request ends in a RecursionError (a 500)
# instead of a refusal. Real payloads nest a handful of levels.
MAX_DEPTH = 64
_CONTAINERS = (dict, list, tuple)


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Raise ``CanonicalizationError`` when ``value`` nests more than ``limit`` arrays and objects.

    A scalar has depth 0, ``{}`` and ``[]`` depth 1, ``{"a": [1]}`` depth 2. Iterative, so any
    depth is measured without recursion; stops at the first container deeper than ``limit``.
    """
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, _CONTAINERS) else []
    while stack:
        current, depth = stack.pop()
        if depth > limit:
            raise CanonicalizationError(f"the JSON value nests arrays and objects deeper than {limit} levels")
        children = current.values() if isinstance(current, dict) else current
        stack.extend((child, depth + 1) for child in children if isinstance(child, _CONTAINERS))


def loads(text: str | bytes, *, limit: int = MAX_DEPTH, **kwargs: Any) -> Any:
    """``json.loads`` of untrusted text, refusing a value nested more than ``limit`` levels.

    Raises ``json.JSONDecodeError`` for text that is not JSON and ``CanonicalizationError`` for
    nesting beyond ``limit`` (both are ``ValueError``s), never ``RecursionError``: the decoder
    itself gives up at Python's recursion limit, which is reported as the same depth refusal.
    """
    try:
        value = json.loads(text, **kwargs)
    except RecursionError:
        raise CanonicalizationError(f"the JSON value nests arrays and objects deeper than {limit} levels") from None
    check_depth(value, limit)
    return value


_INT_LIMIT = 2**53 - 1
_sorted_compact = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False, check_circular=False
).encode


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether the standard library's sorted, compact JSON of ``value`` is already its RFC 8785 form.

    False as well for values nested deeper than ``MAX_DEPTH``, which ``canonical_json`` then refuses
    (the recursion here stops at that depth).

    True for strings, booleans, null, integers within +-(2**53 - 1), and lists and objects of
    those with ASCII member names (code-point order is then UTF-16 order). Python's
    encoder escapes strings exactly as JCS does (``\\" \\\\ \\b \\f \\n \\r \\t``, other
    controls as lowercase ``\\u00xx``, the rest literal). Floats qualify only where ``repr`` is
    already their ECMAScript form; the others are left to ``rfc8785``.
    """
    t = type(value)
    if t is str or t is bool or value is None:
        return True
    if t is int:
        return bool(-_INT_LIMIT <= value <= _INT_LIMIT)
    if t is float:
        # repr is the shortest round-trip text, as ECMAScript's Number::toString; they differ only in
        # exponent forms (repr: < 1e-4 or >= 1e16), "x.0" for integral values, and non-finite values.
        r = repr(value)
        return "e" not in r and "n" not in r and not r.endswith(".0")
    if t is dict:
        if depth >= MAX_DEPTH:
            return False
        for k, v in value.items():
            if type(k) is not str or not k.isascii() or not _plain(v, depth + 1):
                return False
        return True
    if t is list:
        return depth < MAX_DEPTH and all(_plain(v, depth + 1) for v in value)
    return False


def canonical_json(value: Any) -> str:
    """RFC 8785 canonical JSON text of ``value``.

    Raises ``CanonicalizationError`` for anything JSON cannot represent, and for values nested
    deeper than ``MAX_DEPTH`` (checked before any recursion, so never a ``RecursionError``).
    """
    if _plain(value):
        text: str = _sorted_compact(value)
        try:
            text.encode("utf-8")  # a lone surrogate has no UTF-8 form: rfc8785 below names the error
        except UnicodeEncodeError:
            pass
        else:
            return text
    check_depth(value)
    try:
        return rfc8785.dumps(value).decode("utf-8")
    except (rfc8785.CanonicalizationError, TypeError, ValueError, UnicodeError) as exc:
        raise CanonicalizationError(str(exc) or exc.__class__.__name__) from None


def format_timestamp(value: datetime) -> str:
    """RFC 3339 UTC with microseconds, e.g. ``2026-11-29T06:41:04.123456Z``.

    Fixed width, so the text sorts in time order and range filters work on it.
    """
    if value.tzinfo is UTC:
        # The commonest case (``timezone.now()``): no conversion, and "+00:00" is always the last 6 characters.
        return value.isoformat(timespec="microseconds")[:-6] + "Z"
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    # isoformat pads the year to four digits, which strftime("%Y") does not before year 1000.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_timestamp(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def body_bytes(
    *,
    seq: int,
    timestamp: str,
    event_type: str,
    actor_type: str,
    actor_id: str,
    subject_type: str,
    subject_id: str,
    payload_json: str,
    prev_hash: str,
    subject_prev: int | None,
    request_id: str | None = None,
) -> bytes:
    """The JCS bytes of the entry body, keys in their canonical (sorted) order.

    ``request_id`` is a member of the body only when there is one, so the bodies of
    entries written before it existed (or outside any request) are unchanged.
    """
    sp = "null" if subject_prev is None else str(int(subject_prev))
    rid = "" if request_id is None else f'"request_id":{_dumps(request_id)},'
    text = (
        f'{{"actor":{{"id":{_dumps(actor_id)},"type":{_dumps(actor_type)}}},'
        f'"event_type":{_dumps(event_type)},'
        f'"payload":{payload_json},'
        f'"prev_hash":{_dumps(prev_hash)},'
        f'{rid}"seq":{int(seq)},'
        f'"subject":{{"id":{_dumps(subject_id)},"type":{_dumps(subject_type)}}},'
        f'"subject_prev":{sp},'
        f'"timestamp":{_dumps(timestamp)}}}'
    )
    return text.encode("utf-8")


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()
