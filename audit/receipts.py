"""Signed statements about a ledger entry ("receipts"), the ledger's side: find the entry, sign the
statement with the ledger's signing key, and attach the entry's inclusion proof against the newest
checkpoint when someone asks for it.

Which claims a statement makes is the caller's vocabulary (governance's deployment receipt:
``governance/services/receipts.py``); what a statement looks like, and how it is checked offline, is
here and in ``audit/receipt_verify.py`` (docs/receipts.md). A statement is a C2SP signed note whose
text is the ledger's origin, a header line (``deployment-receipt v1``) and one ``key value`` line per
claim, signed by the key that signs the ledger's checkpoints. Its second line is never a decimal
number, so no statement can be read as a checkpoint (``origin / size / root``), nor a checkpoint as a
statement: one key signs both without ambiguity.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from audit import selectors
from audit.ledger import Subject, integrate
from audit.models import Entry, PendingEntry
from audit.note import NoteError, public_bytes, sign_note, verifier_key
from audit.services.witnessing import published_note
from audit.signing import key_name, signing_key

_CLAIM_KEY = re.compile(r"[a-z][a-z0-9-]{0,39}")
_HEADER = re.compile(r"[a-z][a-z0-9-]{0,59} v[1-9][0-9]{0,3}")
MAX_VALUE = 300


class StatementRefused(ValueError):
    """A statement cannot be signed as asked (a value with a newline or control character, an empty value);
    the message says which claim. Nothing is signed."""

    code = "statement_refused"


@dataclass(frozen=True)
class SignedStatement:
    note: str  # the signed note, as served
    sha256: str  # of the note's UTF-8 bytes: what a ledger entry records
    signer: str  # the verifier key that signed it (name+id+key)


def statement_text(*, header: str, claims: Sequence[tuple[str, str]]) -> str:
    """The text of a statement: the ledger's origin, ``header`` and one ``key value`` line per claim.

    Raises ``StatementRefused`` for a value that is empty, longer than ``MAX_VALUE``, has leading or
    trailing spaces, or holds a newline or another control character (each would make the line say
    something else than the claim), and for a malformed key or header (a programming error).
    """
    if not _HEADER.fullmatch(header):
        raise StatementRefused(f"malformed statement header {header!r}")
    lines = [str(settings.LEDGER_ORIGIN), header]
    for key, value in claims:
        if not _CLAIM_KEY.fullmatch(key):
            raise StatementRefused(f"malformed claim name {key!r}")
        if not isinstance(value, str) or not value or value != value.strip() or len(value) > MAX_VALUE:
            raise StatementRefused(f"the {key} claim must be 1 to {MAX_VALUE} characters without surrounding spaces")
        if any(c < " " or c == "\x7f" for c in value):
            raise StatementRefused(f"the {key} claim contains a newline or another control character")
        lines.append(f"{key} {value}")
    return "\n".join(lines) + "\n"


def sign_statement(*, header: str, claims: Sequence[tuple[str, str]]) -> SignedStatement:
    """Sign a statement with the ledger's current signing key (``audit.signing.signing_key``).

    Raises ``StatementRefused`` (nothing signed) for bad claims; ``KeyRetired`` or another
    ``ImproperlyConfigured`` when no key may sign now (after a rotation, until the key file is
    replaced), as for checkpoints.
    """
    text = statement_text(header=header, claims=claims)
    key = signing_key()
    try:
        note = sign_note(text, [(key_name(), key)])
    except NoteError as exc:  # (statement_text already refuses what sign_note would)
        raise StatementRefused(str(exc)) from None
    return SignedStatement(
        note=note, sha256=hashlib.sha256(note.encode("utf-8")).hexdigest(),
        signer=verifier_key(key_name(), public_bytes(key.public_key())),
    )


def entry_about(*, subject: Subject, event_type: str) -> Entry | None:
    """The latest integrated entry of ``event_type`` about ``subject``, or None when there is none.

    Statements name an entry by its seq and hash, which exist only once the sequencer has integrated
    it. When the entry is still in the intake queue (the sequencer had not run since it was recorded),
    the queue is integrated first, in the caller's transaction: it then holds the ``LedgerHead`` lock
    (audit, the last in the lock order) until it commits, and a rollback takes the integration back
    with it, leaving the rows queued as before.
    """
    found = _latest(subject, event_type)
    if found is None and PendingEntry.objects.filter(
            subject_type=subject.type, subject_id=subject.id, event_type=event_type).exists():
        integrate()
        found = _latest(subject, event_type)
    return found


def _latest(subject: Subject, event_type: str) -> Entry | None:
    return (Entry.objects.filter(subject_type=subject.type, subject_id=subject.id, event_type=event_type)
            .order_by("-seq").first())


def ledger_tree_size() -> int:
    """The ledger's size now (as committed, or as this transaction integrated it)."""
    return selectors.ledger_size()


class ProofPending(Exception):
    """No checkpoint covers the entry yet: ``retry_after`` seconds until the next one should."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"no signed checkpoint covers the entry yet; retry in {retry_after} s")
        self.retry_after = retry_after


def proven(*, seq: int) -> dict[str, Any]:
    """The entry ``seq`` as hashed, the newest checkpoint (with its cosignatures) and the entry's inclusion
    proof in that checkpoint's tree: what an offline verifier needs besides the statement.

    Raises ``ProofPending`` while no checkpoint covers the entry. Read only; five queries.
    """
    entry = Entry.objects.get(seq=seq)
    checkpoint = selectors.latest_checkpoint()
    if checkpoint is None or checkpoint.tree_size <= seq:
        pending = selectors.checkpoint_pending(entry)
        raise ProofPending(max(1, pending.due_in_seconds or int(pending.interval_seconds)))
    proof = selectors.inclusion_proof(seq=seq, tree_size=checkpoint.tree_size)
    return {
        "entry": entry.body(),
        "checkpoint": published_note(checkpoint),
        "inclusion_proof": {"leaf_index": seq, "tree_size": checkpoint.tree_size,
                            "hashes": [h.hex() for h in proof.path]},
    }
