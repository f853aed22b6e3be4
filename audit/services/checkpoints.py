"""Signing checkpoints (signed tree heads)."""
from __future__ import annotations

import base64
import hashlib

from django.db import transaction
from django.utils import timezone

from audit.ledger import Actor, Subject, integrate, record
from audit.lock_objects import ledger_head_lock
from audit.models import Checkpoint, LedgerHead, SigningKey
from audit.note import CheckpointBody, key_id, public_bytes, sign_note, verifier_key
from audit.selectors import tree_root
from audit.services.witnessing import witness_schedule
from audit.signing import key_name, signing_key


def signing_key_register(name: str | None = None, public: bytes | None = None) -> SigningKey:
    """Publish a verifier key once (the current key's by default), recording its first use in the ledger.

    The one writer of ``ledger.signing_key_registered``: checkpoints register the current key,
    a rotation the new one (``audit.services.rotation``).
    """
    if name is None or public is None:
        name, public = key_name(), public_bytes(signing_key().public_key())
    vkey = verifier_key(name, public)
    existing = SigningKey.objects.filter(verifier_key=vkey).first()
    if existing is not None:
        return existing
    key = SigningKey.objects.create(
        name=name,
        key_id=key_id(name, public).hex(),
        public_key=base64.b64encode(public).decode(),
        verifier_key=vkey,
    )
    record(
        event_type="ledger.signing_key_registered",
        actor=Actor.system("ledger"),
        subject=Subject("signing_key", f"{name}+{key.key_id}"),
        payload={"verifier_key": vkey, "key_id": key.key_id},
        idempotency_key=f"signing-key:{hashlib.sha256(vkey.encode()).hexdigest()}",
    )
    return key


@transaction.atomic
def checkpoint_create(*, only_if_grown: bool = False) -> Checkpoint | None:
    """Integrate what is pending, then sign a checkpoint of the whole tree, and queue it for the witnesses.

    An unchanged tree is never signed twice: the latest checkpoint is returned instead
    (with ``only_if_grown``, the schedule's call, None). The head's row lock, taken
    first and held until commit, makes checkpoints one at a time. The witnesses are
    asked after commit (``audit.services.witnessing.witness_schedule``); a crash before that
    leaves the checkpoint unwitnessed until the periodic quorum check resubmits it.
    """
    # The head lock first: concurrent checkpointers queue here, including for the
    # first registration of a key (which would otherwise race on its unique row).
    ledger_head_lock()
    signing_key_register()
    integrate()
    head = LedgerHead.objects.get(pk=1)
    last = Checkpoint.objects.order_by("-id").first()
    if only_if_grown and head.tree_size == 0:
        return None
    if last is not None and last.tree_size == head.tree_size:
        # Re-signing an unchanged tree only made identical-size duplicates (issue 14, section 3).
        return None if only_if_grown else last
    root = tree_root(head.tree_size)
    body = CheckpointBody(origin=key_name(), tree_size=head.tree_size, root_hash=root)
    note = sign_note(body.text(), [(key_name(), signing_key())])
    checkpoint = Checkpoint.objects.create(
        tree_size=head.tree_size, root_hash=root.hex(), note=note, created_at=timezone.now()
    )
    witness_schedule(checkpoint)
    return checkpoint
