"""Deployment receipts: the signed note a serving platform verifies offline before it serves a version
("no receipt, no deploy"; docs/receipts.md).

``promotion_receipt_issue`` runs inside ``promotion_alias_applied``'s transaction, once per promotion:
the first alias application (a full rollout's environment alias, or a canary/shadow's candidate
alias) issues it; later ones (the canary's main alias) find it and issue nothing. A rollback does not
withdraw a receipt (a receipt says a version was approved and deployed under a promotion, not that it
is still live: the admission check says that); a re-deployment is a new promotion with its own receipt.

The claims (which promotion, model, version, environment, artifact, and which approval entry) are
governance's; signing and the proof are the ledger's (``audit.receipts``).
"""
from __future__ import annotations

import re

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from audit.ledger import Actor, record
from audit.receipts import StatementRefused, entry_about, ledger_tree_size, sign_statement
from governance.models import DeploymentReceipt, PromotionRequest
from governance.services.common import base_payload, promotion_subject

HEADER = "deployment-receipt v1"
APPROVED, BREAK_GLASS = "promotion.approved", "promotion.break_glass"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def approval_event_of(promotion: PromotionRequest) -> str:
    """The entry that let ``promotion`` deploy: its approval, or its break-glass release."""
    return BREAK_GLASS if promotion.is_break_glass else APPROVED


def artifact_claim(digest: str) -> str:
    """The artifact claim: the digest we computed from the version's bytes, ``none`` when we have none.

    Raises ``StatementRefused`` for anything else (the column only ever holds our own digests)."""
    if not digest:
        return "none"
    if not _DIGEST.fullmatch(digest):
        raise StatementRefused("the version's artifact digest is not sha256:<64 hex digits>")
    return digest


@transaction.atomic
def promotion_receipt_issue(*, actor: Actor, promotion: PromotionRequest) -> DeploymentReceipt | None:
    """Issue ``promotion``'s deployment receipt unless it has one; returns it, or None when it cannot be issued.

    The caller holds the promotion's lock (``promotion_alias_applied``), which makes "once" hold under
    concurrency; the one-to-one column would refuse a second row anyway. Records
    ``promotion.receipt_issued`` (with the note's SHA-256) in the same transaction. When no receipt can
    be issued (no approval entry, a claim with a newline or control character, no key may sign now)
    nothing is stored, ``promotion.receipt_refused`` says why, and the deployment itself stands: a
    serving platform that requires a receipt refuses the version, which fails closed. The approval
    entry is integrated first if the sequencer has not run since it was recorded (``audit.receipts.entry_about``).
    """
    existing = DeploymentReceipt.objects.filter(promotion=promotion).first()
    if existing is not None:
        return existing
    event = approval_event_of(promotion)
    version = promotion.version
    try:
        entry = entry_about(subject=promotion_subject(promotion), event_type=event)
        if entry is None:
            raise StatementRefused(f"the ledger has no {event} entry about promotion #{promotion.pk}")
        artifact = artifact_claim(version.artifact_digest)
        now = timezone.now()
        claims = [
            ("promotion", str(promotion.pk)),
            ("model", version.model.name),
            ("version", str(version.version)),
            ("environment", promotion.environment.name),
            ("artifact", artifact),
            ("approval-event", event),
            ("approval-seq", str(entry.seq)),
            ("approval-hash", entry.entry_hash),
            # The size the key signs at: trusted-key lines bound a key's lifetime by tree size, so a
            # retired key's receipts stay valid and a retired key cannot sign a receipt afterwards.
            ("tree-size", str(ledger_tree_size())),
            ("issued", now.strftime("%Y-%m-%dT%H:%M:%SZ")),
        ]
        signed = sign_statement(header=HEADER, claims=claims)
    except StatementRefused as exc:
        _refused(actor, promotion, str(exc))
        return None
    except ImproperlyConfigured:  # KeyRetired among them: the same state in which no checkpoint is signed
        _refused(actor, promotion, "the ledger's signing key may not sign now (rotated out and not yet replaced)")
        return None
    receipt = DeploymentReceipt.objects.create(
        promotion=promotion, note=signed.note, note_sha256=signed.sha256, approval_event=event,
        approval_seq=entry.seq, signer=signed.signer, issued_at=now,
    )
    record(
        event_type="promotion.receipt_issued",
        actor=actor,
        subject=promotion_subject(promotion),
        payload={**base_payload(promotion), "approval_event": event, "approval_seq": entry.seq,
                 "approval_hash": entry.entry_hash, "artifact": artifact, "note_sha256": signed.sha256,
                 "signer": signed.signer.rsplit("+", 1)[0]},
    )
    return receipt


def _refused(actor: Actor, promotion: PromotionRequest, reason: str) -> None:
    record(
        event_type="promotion.receipt_refused",
        actor=actor,
        subject=promotion_subject(promotion),
        payload={**base_payload(promotion), "reason": reason[:500]},
    )
