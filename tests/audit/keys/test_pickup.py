"""A running process picks up a replaced signing key file without a restart, and never signs with a retired key."""
from __future__ import annotations

import os
from io import StringIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

from audit import ledger
from audit.models import Checkpoint, Entry
from audit.note import Verifier, open_note, public_bytes, verifier_key
from audit.services.checkpoints import checkpoint_create
from audit.signing import KeyRetired, current_verifier_key, key_name, signing_key, trusted_keys_file
from tests.audit.integration.helpers import fill
from tests.audit.keys.helpers import write_key

pytestmark = pytest.mark.django_db


def vkey(key: Ed25519PrivateKey) -> str:
    return verifier_key(key_name(), public_bytes(key.public_key()))


def signers(cp: Checkpoint, *keys: str) -> list[str]:
    return [str(v) for v in open_note(cp.note, [Verifier.parse(k) for k in keys]).verified_by]


def test_the_key_is_loaded_once_while_its_file_is_unchanged() -> None:
    first = signing_key()
    assert signing_key() is first  # no re-read: the same object, not an equal key loaded again


def test_a_key_file_replaced_by_another_process_is_picked_up_without_a_restart() -> None:
    # given a "running process" that has signed with the key of the file
    path = Path(settings.LEDGER_SIGNING_KEY)
    fill(3)
    first = checkpoint_create()
    old = current_verifier_key()
    assert first is not None and signers(first, old) == [old]
    # when "another process" replaces the file the way rotate_signing_key and operators do (rename over it)
    new_key = write_key(path)
    # then this process signs with the new key, with nothing cleared or restarted
    assert vkey(signing_key()) == vkey(new_key) == current_verifier_key() != old
    fill(2)
    later = checkpoint_create()
    assert later is not None and signers(later, old, vkey(new_key)) == [vkey(new_key)]


def test_an_in_place_rewrite_with_a_new_mtime_is_picked_up_too() -> None:
    path = Path(settings.LEDGER_SIGNING_KEY)
    signing_key()
    inode = path.stat().st_ino
    new_key = Ed25519PrivateKey.generate()
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    path.write_bytes(new_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a coarse clock must not hide it
    assert path.stat().st_ino == inode  # same inode and size: only the mtime tells
    assert current_verifier_key() == vkey(new_key)


def test_pointing_the_setting_at_another_file_switches_keys(tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    key = write_key(other)
    signing_key()
    with override_settings(LEDGER_SIGNING_KEY=other, LEDGER_SIGNING_KEY_IS_DEV=False):
        assert current_verifier_key() == vkey(key)


def test_a_missing_key_file_outside_dev_is_a_configuration_error(tmp_path: Path) -> None:
    with override_settings(LEDGER_SIGNING_KEY=tmp_path / "absent.pem", LEDGER_SIGNING_KEY_IS_DEV=False):
        with pytest.raises(Exception, match="no key file at"):
            signing_key()


def test_after_a_rotation_a_process_still_holding_the_old_key_signs_nothing_until_the_file_is_replaced(
    tmp_path: Path,
) -> None:
    """Attack/accident: the operator rotated (production) but has not replaced the key file yet. A checkpoint of a
    larger tree signed by the retired key alone would be rejected by every verifier; it is never made."""
    path = Path(settings.LEDGER_SIGNING_KEY)
    fill(3)
    checkpoint_create()
    old = current_verifier_key()
    target = tmp_path / "next.pem"
    with override_settings(LEDGER_SIGNING_KEY_IS_DEV=False):
        call_command("rotate_signing_key", "--generate", str(target), stdout=StringIO())
        handover = Checkpoint.objects.order_by("-id").first()
        assert handover is not None and f"{old} until={handover.tree_size}" in trusted_keys_file().read_text()
        fill(2)
        before = Checkpoint.objects.count()
        with pytest.raises(KeyRetired, match=f"rotated out at tree size {handover.tree_size}"):
            checkpoint_create()
        assert Checkpoint.objects.count() == before
        assert current_verifier_key() == old  # still published as what the key file holds
        # the operator replaces the file: the same process signs with the new key at once
        os.replace(target, path)
        later = checkpoint_create()
    assert later is not None and later.tree_size > handover.tree_size
    new = current_verifier_key()
    assert new != old and signers(later, old, new) == [new]
    ledger.integrate()
    assert Entry.objects.filter(event_type="ledger.signing_key_handover").count() == 1
