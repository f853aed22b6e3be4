"""Replacing the checkpoint signing key, and the handover that bounds both keys' lifetimes.

``signing_key_rotate`` records ``ledger.signing_key_rotated``, signs a handover
checkpoint of size H with BOTH the old and the new key, and records
``ledger.signing_key_handover`` (both verifier keys, H, the root at H), in one
transaction: anyone who trusts the old key sees it vouch for the new one over
the same tree. ``signing_key_install`` then writes the lifetimes into the
trusted-keys file (``VAR_DIR/ledger-trusted-keys.txt``): ``<old vkey> until=H``
and ``<new vkey> from=H``; in the dev setup the new key also replaces the dev
key file. In production the operator replaces the file ``LEDGER_SIGNING_KEY``
names (atomically); running processes pick it up without a restart, and until
then refuse to sign with the retired key (``audit.signing.KeyRetired``).

``rotate_and_install`` does both while the head lock is held, so no checkpoint
can be signed between the handover and the new lifetimes by a process that
still holds the old key.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.ledger import Actor, Subject, integrate, record
from audit.lock_objects import ledger_head_lock
from audit.models import Checkpoint, LedgerHead
from audit.note import CheckpointBody, public_bytes, sign_note, verifier_key
from audit.offline_verify import parse_trusted_key_line
from audit.selectors import tree_root
from audit.services.checkpoints import signing_key_register
from audit.services.witnessing import witness_schedule
from audit.signing import (
    KeyLifetime,
    key_lifetimes,
    key_name,
    signing_key,
    trusted_keys_file,
)

FILE_HEADER = [
    "# Checkpoint verifier keys (C2SP signed-note format) and the tree sizes each may sign:",
    "#   <vkey> [from=<N>] [until=<M>]   valid for checkpoints of size S with N <= S <= M",
    "# Written by manage.py rotate_signing_key (docs/ledger.md, key lifetimes). Replace it atomically.",
]


class RotationError(ValueError):
    """The rotation cannot be made as asked (the message says why)."""



@transaction.atomic
def signing_key_rotate(*, new_key: Ed25519PrivateKey, actor: Actor, reason: str) -> Checkpoint:
    """Record the rotation, sign the handover checkpoint with the old and the new key, record the handover.

    Refused (RotationError, nothing written): no reason, the current key again, or a key
    configuration already ended (a key's lifetime is one interval: it is never reused).
    The handover covers the ``ledger.signing_key_rotated`` entry; the
    ``ledger.signing_key_handover`` entry follows it (it names the handover's size).
    """
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
    old_vkey, new_vkey = verifier_key(name, old_public), verifier_key(name, new_public)
    for lifetime in key_lifetimes():
        if lifetime.verifier_key == new_vkey and lifetime.valid_until is not None:
            raise RotationError(f"the new key was rotated out at tree size {lifetime.valid_until}; "
                                "a retired key is never made current again")
    # The head lock first, as checkpoint_create takes it: one checkpoint (or rotation) at a time.
    ledger_head_lock()
    signing_key_register()
    signing_key_register(name, new_public)
    record(
        event_type="ledger.signing_key_rotated",
        actor=actor,
        subject=Subject("ledger", name),
        payload={"old_verifier_key": old_vkey, "new_verifier_key": new_vkey, "reason": reason},
    )
    integrate()
    size = LedgerHead.objects.values_list("tree_size", flat=True).get(pk=1)
    root = tree_root(size)
    body = CheckpointBody(origin=name, tree_size=size, root_hash=root)
    note = sign_note(body.text(), [(name, old_key), (name, new_key)])
    handover = Checkpoint.objects.create(tree_size=size, root_hash=root.hex(), note=note, created_at=timezone.now())
    # Witnesses cosign the handover while they can still check it with the old key (the operator adds the new
    # key to each witness first: docs/witness.md); the next checkpoint, signed by the new key alone, follows it.
    witness_schedule(handover)
    record(
        event_type="ledger.signing_key_handover",
        actor=actor,
        subject=Subject("ledger", name),
        payload={"old_verifier_key": old_vkey, "new_verifier_key": new_vkey, "tree_size": size,
                 "root_hash": root.hex()},
    )
    return handover


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write a sibling temporary file, fsync it, rename it over ``path``: readers see the old or the new file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_private(path: Path, key: Ed25519PrivateKey) -> None:
    _write_atomically(path, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()), 0o600)


def with_lifetimes(lines: list[str], updates: list[KeyLifetime]) -> list[str]:
    """``lines`` (a trusted-keys file) with each updated key's line narrowed to its new bounds.

    A key's existing line is replaced in place (a bare line by the bounded one, a
    ``from=`` line gains the ``until=``), further lines for the same key are dropped
    (one line per key, never two that contradict), keys not yet listed are appended;
    comments and other keys' lines are kept as they are. Raises ValueError when an
    existing line is malformed or contradicts an update.
    """
    wanted = {u.verifier_key: u for u in updates}
    out: list[str] = []
    slot: dict[str, int] = {}  # where each updated key's line goes, filled once all its lines are merged
    for line in lines:
        parsed = parse_trusted_key_line(line)
        if parsed is None or parsed[0] not in wanted:
            out.append(line)
            continue
        vkey = parsed[0]
        wanted[vkey] = wanted[vkey].narrowed(KeyLifetime(*parsed))
        if vkey not in slot:
            slot[vkey] = len(out)
            out.append("")
    for vkey, lifetime in wanted.items():
        if vkey in slot:
            out[slot[vkey]] = lifetime.line()
        else:
            out.append(lifetime.line())
    return out


def signing_key_install(
    *, new_key: Ed25519PrivateKey, old_verifier_key: str, handover_size: int, replace_key_file: bool | None = None
) -> bool:
    """Write ``<old> until=H`` and ``<new> from=H`` into the trusted-keys file; maybe make the new key current.

    ``replace_key_file`` (default: only for the dev key) writes the new key over the file
    LEDGER_SIGNING_KEY names. Returns True when the new key is now current; False when the
    operator must still replace that file. Both files are replaced atomically; a crash
    leaves each either old or new.
    """
    path = trusted_keys_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = path.read_text(encoding="utf-8").splitlines() if path.exists() else list(FILE_HEADER)
    new_vkey = verifier_key(key_name(), public_bytes(new_key.public_key()))
    lines = with_lifetimes(existing, [KeyLifetime(old_verifier_key, 0, handover_size),
                                      KeyLifetime(new_vkey, handover_size, None)])
    _write_atomically(path, ("\n".join(lines) + "\n").encode(), 0o644)
    if replace_key_file is None:
        replace_key_file = bool(settings.LEDGER_SIGNING_KEY_IS_DEV)
    if replace_key_file:
        _write_private(Path(settings.LEDGER_SIGNING_KEY), new_key)
    return replace_key_file


@contextmanager
def _restored_on_error(paths: list[Path]) -> Iterator[None]:
    """Put ``paths`` back as they were if the block fails (the rotation did not commit)."""
    saved = {p: (p.read_bytes(), p.stat().st_mode & 0o777) if p.exists() else None for p in paths}
    try:
        yield
    except BaseException:
        for p, content in saved.items():
            if content is None:
                p.unlink(missing_ok=True)
            else:
                _write_atomically(p, content[0], content[1])
        raise


def rotate_and_install(
    *, new_key: Ed25519PrivateKey, actor: Actor, reason: str, replace_key_file: bool | None = None
) -> tuple[Checkpoint, bool]:
    """``signing_key_rotate`` then ``signing_key_install`` before the head lock is released.

    A checkpointer waiting for the lock reads the key configuration only after the
    new lifetimes are written: it signs with the new key (dev) or refuses the retired
    one (production, until the key file is replaced); never a checkpoint beyond H by
    the old key alone. If the transaction does not commit the files are put back.
    Returns the handover checkpoint and whether the new key is now current.
    """
    old_vkey = verifier_key(key_name(), public_bytes(signing_key().public_key()))
    if replace_key_file is None:
        replace_key_file = bool(settings.LEDGER_SIGNING_KEY_IS_DEV)
    files = [trusted_keys_file(), *([Path(settings.LEDGER_SIGNING_KEY)] if replace_key_file else [])]
    with _restored_on_error(files), transaction.atomic():
        handover = signing_key_rotate(new_key=new_key, actor=actor, reason=reason)
        try:
            installed = signing_key_install(new_key=new_key, old_verifier_key=old_vkey,
                                            handover_size=handover.tree_size, replace_key_file=replace_key_file)
        except ValueError as exc:  # the trusted-keys file is malformed or contradicts the rotation
            raise RotationError(f"{trusted_keys_file()}: {exc}") from None
    return handover, installed
