#!/usr/bin/env python3
"""Check a deployment receipt offline: ``python -m audit.receipt_verify RECEIPT.json --trusted-keys-file K``.

    python -m audit.receipt_verify RECEIPT.json --trusted-keys-file KEYS
        [--witnesses-file W [--quorum N]]
        [--model M --version V --environment E --artifact sha256:... --promotion P]

A serving platform runs this at start-up (an init container) before it serves a model: no receipt,
no deploy. It needs the standard library, ``cryptography`` and ``audit.offline_verify`` (the
``verify.py`` of every export, which holds the signed-note, checkpoint, Merkle-proof, RFC 8785 and
cosignature code), nothing else: no network, no database, no Django. The format is in
docs/receipts.md; ``GET /api/v1/promotions/{id}/receipt`` serves it.

It checks that

* the receipt note is signed by a trusted key valid for the note's ``tree-size`` (trusted-key lines
  as ``verify.py --trusted-keys-file`` reads them: ``<vkey> [from=N] [until=M]``);
* the checkpoint is signed by a trusted key valid for its tree size, names the same log (origin) as
  the note and, with witnesses given, carries cosignatures by at least ``quorum`` of them;
* ``entry`` is the approval entry the note names: its RFC 8785 leaf hash is ``approval-hash``, its
  ``seq`` is ``approval-seq`` (which is its leaf index), its event type is ``approval-event``, its
  subject is the promotion and its payload names the note's model, version and environment;
* the inclusion proof leads from that leaf to the checkpoint's root (RFC 9162 section 2.1.3.2);
* every claim the caller expects (``--model``, ``--version``, ...) is the note's.

Exit 0 when all of it holds, 1 naming the first failure, 2 when a file cannot be read.
"""
from __future__ import annotations

import argparse
import binascii
import json
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from audit.offline_verify import (
    RETIRED_KEY,
    CanonicalizationError,
    Cosigner,
    JSONProblem,
    NoteError,
    TrustedKey,
    _check_body_shape,
    canonicalize,
    check_cosignatures,
    key_validity_problem,
    leaf_hash,
    open_note,
    parse_checkpoint,
    parse_witness_line,
    strict_loads,
    verify_inclusion,
)

FORMAT = "deployment-receipt/v1"
HEADER = "deployment-receipt v1"
#: The claim lines of a receipt note, in their order (after the origin and the header line).
CLAIM_KEYS = ("promotion", "model", "version", "environment", "artifact", "approval-event", "approval-seq",
              "approval-hash", "tree-size", "issued")
#: The entries a receipt may name as the approval: an ordinary approval, or a break-glass release.
APPROVAL_EVENTS = ("promotion.approved", "promotion.break_glass")
PROMOTION_SUBJECT = "promotion_request"
_DIGITS = re.compile(r"0|[1-9][0-9]{0,17}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ARTIFACT = re.compile(r"none|sha256:[0-9a-f]{64}")
_ISSUED = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_MAX_PROOF = 64  # hashes: a tree of 2**64 leaves needs no more


class ReceiptError(Exception):
    """The receipt does not verify; the message says what failed."""


@dataclass(frozen=True)
class ReceiptClaims:
    """What a verified receipt says (``tree_size``: the checkpoint's; ``witnesses``: valid cosignatures
    by the witnesses the caller gave, 0 without any)."""

    promotion: int
    model: str
    version: int
    environment: str
    artifact: str
    approval_event: str
    approval_seq: int
    approval_hash: str
    issued: str
    tree_size: int
    witnesses: int


@dataclass(frozen=True)
class _Note:
    origin: str
    claims: dict[str, str]

    def number(self, key: str) -> int:
        return int(self.claims[key])


def parse_receipt_text(text: str) -> _Note:
    """The origin and claims of a receipt note's text (its signed part), checked line by line."""
    lines = text.split("\n")
    if lines[-1] != "" or len(lines) != len(CLAIM_KEYS) + 3:
        raise ReceiptError(f"the receipt note must have exactly {len(CLAIM_KEYS) + 2} lines: the origin, "
                           f"{HEADER!r} and {', '.join(CLAIM_KEYS)}")
    origin, header, *rest = lines[:-1]
    if not origin:
        raise ReceiptError("the receipt note has no origin line")
    if header != HEADER:
        raise ReceiptError(f"not a deployment receipt: the second line is {header!r}, not {HEADER!r}")
    claims: dict[str, str] = {}
    for expected, line in zip(CLAIM_KEYS, rest, strict=True):
        key, sep, value = line.partition(" ")
        if key != expected or not sep or not value:
            raise ReceiptError(f"receipt line {line!r}: expected '{expected} <value>'")
        claims[key] = value
    for key in ("promotion", "version", "approval-seq", "tree-size"):
        if not _DIGITS.fullmatch(claims[key]):
            raise ReceiptError(f"receipt claim {key} is not a non-negative integer: {claims[key]!r}")
    if not _HEX64.fullmatch(claims["approval-hash"]):
        raise ReceiptError("receipt claim approval-hash is not 64 lowercase hex digits")
    if not _ARTIFACT.fullmatch(claims["artifact"]):
        raise ReceiptError("receipt claim artifact is neither 'none' nor sha256:<64 hex digits>")
    if claims["approval-event"] not in APPROVAL_EVENTS:
        raise ReceiptError(f"receipt claim approval-event {claims['approval-event']!r} is not one of "
                           f"{', '.join(APPROVAL_EVENTS)}")
    if not _ISSUED.fullmatch(claims["issued"]):
        raise ReceiptError("receipt claim issued is not YYYY-MM-DDTHH:MM:SSZ")
    return _Note(origin, claims)


def _trusted(lines: Sequence[str]) -> list[TrustedKey]:
    keys = []
    for number, line in enumerate(lines, 1):
        try:
            key = TrustedKey.parse(line)
        except ValueError as exc:
            raise ReceiptError(f"trusted key {number}: {exc}") from None
        if key is not None:
            keys.append(key)
    if not keys:
        raise ReceiptError("no trusted key given: nothing to verify the receipt against")
    return keys


def _open(what: str, note: str, keys: list[TrustedKey]) -> tuple[str, list[Any]]:
    try:
        text, signers, _ = open_note(note, [k.verifier for k in keys])
    except NoteError as exc:
        raise ReceiptError(f"the {what} does not verify: {exc}") from None
    return text, signers


def _key_valid_for(what: str, size: int, signers: list[Any], keys: list[TrustedKey]) -> None:
    """Refuse unless a key that signed ``what`` is valid for tree ``size`` (a retired key, or one not yet valid)."""
    problem = key_validity_problem(what, size, signers, keys)
    if problem is not None:
        reason = "retired before that size" if problem[0] == RETIRED_KEY else "not valid for that size"
        lines = [k.line() for k in keys if any(k.verifier.text == s.text for s in signers)]
        raise ReceiptError(f"the {what} (tree size {size}) is signed only by a key {reason}: {'; '.join(lines)}")


def _doc_member(doc: Mapping[str, Any], key: str, kind: type) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ReceiptError(f"the receipt's {key!r} is missing or not a JSON {kind.__name__}")
    return value


def _proof(doc: Mapping[str, Any]) -> tuple[int, int, list[bytes]]:
    proof = _doc_member(doc, "inclusion_proof", dict)
    index, size, hashes = proof.get("leaf_index"), proof.get("tree_size"), proof.get("hashes")
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in (index, size)):
        raise ReceiptError("inclusion_proof: leaf_index and tree_size must be non-negative integers")
    if not isinstance(hashes, list) or len(hashes) > _MAX_PROOF:
        raise ReceiptError("inclusion_proof: hashes must be a list of at most 64 hex strings")
    path = [bytes.fromhex(h) for h in hashes if isinstance(h, str) and _HEX64.fullmatch(h)]
    if len(path) != len(hashes):
        raise ReceiptError("inclusion_proof: every hash must be 64 lowercase hex digits")
    return index, size, path


def _check_entry(entry: Any, note: _Note) -> bytes:
    """The entry's leaf hash, after checking it is the approval the note names."""
    try:
        _check_body_shape(entry)
        leaf = leaf_hash(canonicalize(entry))
    except (ValueError, CanonicalizationError) as exc:
        raise ReceiptError(f"the approval entry is not a ledger entry body: {exc}") from None
    claims = note.claims
    if leaf.hex() != claims["approval-hash"]:
        raise ReceiptError("the approval entry does not hash to the receipt's approval-hash (another entry, or edited)")
    if entry["seq"] != note.number("approval-seq"):
        raise ReceiptError(f"the approval entry is seq {entry['seq']}, the receipt names {claims['approval-seq']}")
    if entry["event_type"] != claims["approval-event"]:
        raise ReceiptError(f"the approval entry is a {entry['event_type']!r} entry, the receipt names "
                           f"{claims['approval-event']!r}")
    if entry["subject"] != {"type": PROMOTION_SUBJECT, "id": claims["promotion"]}:
        raise ReceiptError(f"the approval entry is about {entry['subject']}, not promotion {claims['promotion']}")
    payload = entry["payload"]
    if not isinstance(payload, dict):
        raise ReceiptError("the approval entry's payload is not an object")
    named = {"model": claims["model"], "version": note.number("version"), "environment": claims["environment"]}
    for key, value in named.items():
        if payload.get(key) != value:
            raise ReceiptError(f"the approval entry's {key} is {payload.get(key)!r}, the receipt says {value!r}")
    return leaf


def _check_cosignatures(note: str, witnesses: Sequence[str], quorum: int | None, now: float) -> int:
    cosigners = []
    for line in witnesses:
        try:
            vkey = parse_witness_line(line)
            if vkey is not None:
                cosigners.append(Cosigner(vkey))
        except ValueError as exc:
            raise ReceiptError(f"witness {line.strip()!r}: {exc}") from None
    if not cosigners:
        if quorum:
            raise ReceiptError(f"a quorum of {quorum} needs witnesses")
        return 0
    needed = len(cosigners) if quorum is None else quorum
    valid, problems = check_cosignatures(note, cosigners, now)
    if problems:
        raise ReceiptError(f"the checkpoint's cosignatures: {'; '.join(problems)}")
    if len(valid) < needed:
        raise ReceiptError(f"the checkpoint carries {len(valid)} valid cosignature(s) by the witnesses given, "
                           f"{needed} needed")
    return len(valid)


def verify_receipt(
    doc: Mapping[str, Any],
    *,
    trusted_keys: Sequence[str],
    witnesses: Sequence[str] = (),
    quorum: int | None = None,
    expect: Mapping[str, str] | None = None,
    now: float | None = None,
) -> ReceiptClaims:
    """Verify a receipt document (as the API serves it); ``ReceiptError`` names the first failure.

    ``trusted_keys``: trusted-key lines of the ledger's signing keys (``manage.py ledger_keys``).
    ``witnesses``: cosigner verifier keys or tlog-policy ``witness`` lines; with them the checkpoint
    needs ``quorum`` valid cosignatures (default: all of them). ``expect``: claims that must be the
    note's, by name (``model``, ``version``, ``environment``, ``artifact``, ``promotion``...), as text.
    """
    if not isinstance(doc, Mapping):
        raise ReceiptError("the receipt is not a JSON object")
    if doc.get("format") != FORMAT:
        raise ReceiptError(f"the receipt's format is {doc.get('format')!r}, not {FORMAT!r}")
    keys = _trusted(trusted_keys)
    now = time.time() if now is None else now
    # 1. The note: signed by a trusted key, valid for the tree size it was signed at.
    text, signers = _open("receipt note", _doc_member(doc, "note", str), keys)
    note = parse_receipt_text(text)
    signed_at = note.number("tree-size")
    if signed_at <= note.number("approval-seq"):
        raise ReceiptError("the receipt's tree-size does not contain its approval entry")
    _key_valid_for("receipt note", signed_at, signers, keys)
    # 2. The checkpoint: the same log, a trusted key valid for its size, the witnesses' quorum.
    checkpoint = _doc_member(doc, "checkpoint", str)
    body, checkpoint_signers = _open("checkpoint", checkpoint, keys)
    try:
        origin, size, root = parse_checkpoint(body)
    except NoteError as exc:
        raise ReceiptError(f"the checkpoint: {exc}") from None
    if origin != note.origin:
        raise ReceiptError(f"the checkpoint is of log {origin!r}, the receipt of {note.origin!r}")
    _key_valid_for("checkpoint", size, checkpoint_signers, keys)
    cosigned = _check_cosignatures(checkpoint, witnesses, quorum, now)
    # 3. The approval entry: the one the note names, included in the checkpoint's tree at its seq.
    leaf = _check_entry(doc.get("entry"), note)
    index, proof_size, path = _proof(doc)
    if index != note.number("approval-seq"):
        raise ReceiptError(f"the inclusion proof is for leaf {index}, the approval entry is seq "
                           f"{note.claims['approval-seq']}")
    if proof_size != size:
        raise ReceiptError(f"the inclusion proof is for a tree of {proof_size}, the checkpoint's has {size}")
    if not verify_inclusion(index, size, leaf, path, root):
        raise ReceiptError("the inclusion proof does not lead from the approval entry to the checkpoint's root")
    claims = ReceiptClaims(
        promotion=note.number("promotion"), model=note.claims["model"], version=note.number("version"),
        environment=note.claims["environment"], artifact=note.claims["artifact"],
        approval_event=note.claims["approval-event"], approval_seq=note.number("approval-seq"),
        approval_hash=note.claims["approval-hash"], issued=note.claims["issued"], tree_size=size, witnesses=cosigned,
    )
    _check_expected(claims, expect or {})
    return claims


_EXPECTABLE = {f.name for f in fields(ReceiptClaims)} - {"tree_size", "witnesses"}


def _check_expected(claims: ReceiptClaims, expect: Mapping[str, str]) -> None:
    for name, wanted in expect.items():
        key = name.replace("-", "_")
        if key not in _EXPECTABLE:
            raise ReceiptError(f"cannot expect {name!r}: a receipt claims {', '.join(sorted(_EXPECTABLE))}")
        have = str(getattr(claims, key))
        if have != str(wanted):
            raise ReceiptError(f"the receipt is for {key.replace('_', '-')} {have!r}, expected {wanted!r}")


# --- the command ---------------------------------------------------------------------------------------


def _lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return fh.read().splitlines()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m audit.receipt_verify",
        description="Verify a deployment receipt offline (exit 0 ok, 1 it does not verify, 2 unreadable).")
    parser.add_argument("receipt", help="the receipt JSON (GET /api/v1/promotions/{id}/receipt)")
    parser.add_argument("--trusted-keys-file", required=True, help="trusted-key lines (manage.py ledger_keys)")
    parser.add_argument("--witnesses-file", help="witness cosigner keys or tlog-policy 'witness' lines")
    parser.add_argument("--quorum", type=int, help="cosignatures needed (default: every witness given)")
    for claim in ("promotion", "model", "version", "environment", "artifact"):
        parser.add_argument(f"--{claim}", help=f"the {claim} this deployment must be for")
    parser.add_argument("--json", action="store_true", help="print the verified claims as JSON")
    args = parser.parse_args(argv)
    try:
        with open(args.receipt, "rb") as fh:
            doc = strict_loads(fh.read())
        keys = _lines(args.trusted_keys_file)
        witnesses = _lines(args.witnesses_file) if args.witnesses_file else []
    except (OSError, UnicodeDecodeError, JSONProblem, ValueError, binascii.Error) as exc:
        print(f"receipt_verify: cannot read: {exc}", file=sys.stderr)
        return 2
    expect = {c: getattr(args, c) for c in ("promotion", "model", "version", "environment", "artifact")
              if getattr(args, c) is not None}
    try:
        claims = verify_receipt(doc, trusted_keys=keys, witnesses=witnesses, quorum=args.quorum, expect=expect)
    except ReceiptError as exc:
        print(f"receipt_verify: FAILED: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(asdict(claims), indent=2))
    else:
        print(f"receipt OK: {claims.model} v{claims.version} in {claims.environment}, artifact {claims.artifact}, "
              f"promotion {claims.promotion} approved at seq {claims.approval_seq} ({claims.approval_event}), "
              f"included in the checkpoint of tree size {claims.tree_size}"
              + (f", {claims.witnesses} witness cosignature(s)" if claims.witnesses else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
