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
    """The value cannot be represented in canonical JSON (NaN, huge int, non-JSON type...)."""


def canonical_json(value: Any) -> str:
    """RFC 8785 canonical JSON text of ``value``."""
    try:
        return rfc8785.dumps(value).decode("utf-8")
    except (rfc8785.CanonicalizationError, TypeError, ValueError, UnicodeError) as exc:
        raise CanonicalizationError(str(exc) or exc.__class__.__name__) from None


def format_timestamp(value: datetime) -> str:
    """RFC 3339 UTC with microseconds, e.g. ``2026-11-29T06:41:04.123456Z``.

    Fixed width, so the text sorts in time order and range filters work on it.
    """
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
) -> bytes:
    """The JCS bytes of the entry body, keys in their canonical (sorted) order."""
    sp = "null" if subject_prev is None else str(int(subject_prev))
    text = (
        f'{{"actor":{{"id":{_dumps(actor_id)},"type":{_dumps(actor_type)}}},'
        f'"event_type":{_dumps(event_type)},'
        f'"payload":{payload_json},'
        f'"prev_hash":{_dumps(prev_hash)},'
        f'"seq":{int(seq)},'
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
