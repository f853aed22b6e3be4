"""Replacing the checkpoint signing key.

``signing_key_rotate`` records ``ledger.signing_key_rotated`` and signs a handover
checkpoint with BOTH the old and the new key, in one transaction: anyone who
trusts the old key sees it vouch for the new one over the same tree. Then
``signing_key_install`` makes the new key current for this deployment: the old
verifier key goes into the trusted-keys file (``VAR_DIR/ledger-trusted-keys.txt``,
read by ``audit.verification.trusted_verifiers``), and in the dev setup the new
key replaces the dev key file. In production ``LEDGER_SIGNING_KEY`` must then be
pointed at the new key (and the processes restarted); see docs/export-format.md.
"""
from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.checkpoints import signing_key_register
from audit.ledger import Actor, Subject, integrate, record
from audit.models import Checkpoint, LedgerHead, SigningKey
from audit.note import CheckpointBody, key_id, public_bytes, sign_note, verifier_key
from audit.selectors import tree_root
from audit.signing import key_name, signing_key
from audit.verification import trusted_keys_file


class RotationError(ValueError):
    """The rotation cannot be made as asked (the message says why)."""


def _register(name: str, public: bytes) -> SigningKey:
    """Publish a key's verifier key, exactly as ``signing_key_register`` does for the current key."""
    vkey = verifier_key(name, public)
    existing = SigningKey.objects.filter(verifier_key=vkey).first()
    if existing is not None:
        return existing
    row = SigningKey.objects.create(
        name=name, key_id=key_id(name, public).hex(), public_key=base64.b64encode(public).decode(), verifier_key=vkey
    )
    record(
        event_type="ledger.signing_key_registered",
        actor=Actor.system("ledger"),
        subject=Subject("signing_key", f"{name}+{row.key_id}"),
        payload={"verifier_key": vkey, "key_id": row.key_id},
        idempotency_key=f"signing-key:{hashlib.sha256(vkey.encode()).hexdigest()}",
    )
    return row


@transaction.atomic
def signing_key_rotate(*, new_key: Ed25519PrivateKey, actor: Actor, reason: str) -> Checkpoint:
    """Record the rotation and sign the handover checkpoint with the old and the new key."""
    reason = (reason or "").strip()
    if not reason:
        raise RotationError("a key rotation needs a reason")
    if len(reason) > 500:
        raise RotationError("the reason is longer than 500 characters")
    name = key_name()
    old_key = signing_key()
    old_public, new_public = public_bytes(old_key.public_key()), public_bytes(new_key.public_key())
    if old_public == new_public:
        raise RotationError("the new key is the current signing key")
    # The head lock first, as checkpoint_create takes it: one checkpoint (or rotation) at a time.
    LedgerHead.objects.select_for_update().get(pk=1)
    signing_key_register()
    _register(name, new_public)
    record(
        event_type="ledger.signing_key_rotated",
        actor=actor,
        subject=Subject("ledger", name),
        payload={
            "old_verifier_key": verifier_key(name, old_public),
            "new_verifier_key": verifier_key(name, new_public),
            "reason": reason,
        },
    )
    integrate()
    size = LedgerHead.objects.values_list("tree_size", flat=True).get(pk=1)
    root = tree_root(size)
    body = CheckpointBody(origin=name, tree_size=size, root_hash=root)
    note = sign_note(body.text(), [(name, old_key), (name, new_key)])
    return Checkpoint.objects.create(tree_size=size, root_hash=root.hex(), note=note, created_at=timezone.now())


def _write_private(path: Path, key: Ed25519PrivateKey) -> None:
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.replace(tmp, path)


def signing_key_install(*, new_key: Ed25519PrivateKey, old_verifier_key: str) -> bool:
    """After a rotation committed: trust the old key from now on, and make the new key current.

    Returns True when the new key is now current (the dev setup: the dev key file is
    replaced); False when the deployment's LEDGER_SIGNING_KEY must be changed to it.
    """
    path = trusted_keys_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    if old_verifier_key not in (line.strip() for line in existing):
        with path.open("a", encoding="utf-8") as fh:
            fh.write(old_verifier_key + "\n")
    installed = False
    if settings.LEDGER_SIGNING_KEY_IS_DEV:
        _write_private(Path(settings.LEDGER_SIGNING_KEY), new_key)
        installed = True
    signing_key.cache_clear()
    return installed
