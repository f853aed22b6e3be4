"""A rotation's handover: the event, the trusted-key lines it writes, and the rotations it refuses."""
from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.management import CommandError, call_command

from audit import ledger
from audit.ledger import Actor
from audit.models import Checkpoint, Entry
from audit.note import public_bytes, verifier_key
from audit.services.checkpoints import checkpoint_create
from audit.services.rotation import RotationError, rotate_and_install, with_lifetimes
from audit.signing import KeyLifetime, current_verifier_key, key_lifetimes, key_name, trusted_keys_file
from tests.audit.integration.helpers import fill
from tests.audit.keys.helpers import write_key

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")


def vkey(key: Ed25519PrivateKey) -> str:
    return verifier_key(key_name(), public_bytes(key.public_key()))


def key_lines() -> list[str]:
    return [ln for ln in trusted_keys_file().read_text().splitlines() if ln and not ln.startswith("#")]


def written() -> tuple[int, int, int]:
    ledger.integrate()
    return Entry.objects.count(), Checkpoint.objects.count(), len(ledger_pending())


def ledger_pending() -> list[int]:
    from audit.models import PendingEntry

    return list(PendingEntry.objects.values_list("id", flat=True))


def test_two_rotations_chain_the_lifetimes_and_record_each_handover() -> None:
    fill(5)
    checkpoint_create()
    first = current_verifier_key()
    second_key, third_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()

    h1, installed = rotate_and_install(new_key=second_key, actor=ACTOR, reason="annual")
    fill(4)
    checkpoint_create()
    h2, _ = rotate_and_install(new_key=third_key, actor=ACTOR, reason="custodian left")

    assert installed and current_verifier_key() == vkey(third_key)
    second, third = vkey(second_key), vkey(third_key)
    assert h1.tree_size < h2.tree_size
    assert key_lines() == [f"{first} until={h1.tree_size}", f"{second} from={h1.tree_size} until={h2.tree_size}",
                           f"{third} from={h2.tree_size}"]
    assert key_lifetimes() == [KeyLifetime(first, 0, h1.tree_size), KeyLifetime(second, h1.tree_size, h2.tree_size),
                               KeyLifetime(third, h2.tree_size, None)]
    ledger.integrate()
    handovers = [e.payload for e in Entry.objects.filter(event_type="ledger.signing_key_handover").order_by("seq")]
    assert handovers == [
        {"old_verifier_key": first, "new_verifier_key": second, "tree_size": h1.tree_size, "root_hash": h1.root_hash},
        {"old_verifier_key": second, "new_verifier_key": third, "tree_size": h2.tree_size, "root_hash": h2.root_hash},
    ]
    # no personal data: the payload is keys and tree facts only, the actor a reference
    assert all(set(p) == {"old_verifier_key", "new_verifier_key", "tree_size", "root_hash"} for p in handovers)


def test_a_bare_line_for_the_old_key_is_replaced_not_contradicted() -> None:
    old = current_verifier_key()
    other = vkey(Ed25519PrivateKey.generate())
    trusted_keys_file().write_text(f"# kept\n{old}\n{other} until=1\n{old}\n")  # as rotations before #14 wrote it
    fill(2)
    handover, _ = rotate_and_install(new_key=Ed25519PrivateKey.generate(), actor=ACTOR, reason="r")
    lines = trusted_keys_file().read_text().splitlines()
    assert lines[:3] == ["# kept", f"{old} until={handover.tree_size}", f"{other} until=1"]
    assert len(lines) == 4 and lines[3].endswith(f" from={handover.tree_size}")
    assert sum(ln.startswith(old) for ln in lines) == 1


def test_the_file_is_replaced_atomically_and_stays_readable(var_dir: Path) -> None:
    fill(2)
    rotate_and_install(new_key=Ed25519PrivateKey.generate(), actor=ACTOR, reason="r")
    assert sorted(p.name for p in var_dir.iterdir()) == ["dev-ledger-signing-key.pem", "ledger-trusted-keys.txt"]
    assert trusted_keys_file().stat().st_mode & 0o777 == 0o644
    assert Path(settings.LEDGER_SIGNING_KEY).stat().st_mode & 0o777 == 0o600


def test_rotating_back_to_a_retired_key_is_refused_and_writes_nothing() -> None:
    fill(2)
    first_key = Ed25519PrivateKey.generate()
    write_key(Path(settings.LEDGER_SIGNING_KEY), first_key)
    rotate_and_install(new_key=Ed25519PrivateKey.generate(), actor=ACTOR, reason="r")
    before, text = written(), trusted_keys_file().read_text()
    with pytest.raises(RotationError, match="rotated out at tree size"):
        rotate_and_install(new_key=first_key, actor=ACTOR, reason="back to the old one")
    assert written() == before and trusted_keys_file().read_text() == text


def test_a_rotation_that_cannot_write_consistent_lifetimes_rolls_back_everything() -> None:
    """The trusted-keys file says the current key starts beyond the tree: the rotation's until=H would contradict
    it. Nothing is recorded, the key file and the trusted-keys file are as before."""
    fill(2)
    checkpoint_create()
    old = current_verifier_key()
    key_file = Path(settings.LEDGER_SIGNING_KEY)
    trusted_keys_file().write_text(f"{old} from=10000\n")
    before, key_bytes = written(), key_file.read_bytes()
    with pytest.raises(RotationError, match="leave no valid tree size"):
        rotate_and_install(new_key=Ed25519PrivateKey.generate(), actor=ACTOR, reason="r")
    assert written() == before
    assert trusted_keys_file().read_text() == f"{old} from=10000\n" and key_file.read_bytes() == key_bytes
    assert current_verifier_key() == old


def test_a_malformed_trusted_keys_file_stops_the_command_before_anything_is_written() -> None:
    fill(2)
    trusted_keys_file().write_text("not a key\n")
    before = written()
    with pytest.raises(CommandError, match=r"ledger-trusted-keys.txt, line 1: "):
        call_command("rotate_signing_key", "--reason", "r", stdout=StringIO())
    assert written() == before and trusted_keys_file().read_text() == "not a key\n"


def test_with_lifetimes_keeps_other_lines_and_appends_new_keys() -> None:
    a, b, c = (vkey(Ed25519PrivateKey.generate()) for _ in range(3))
    lines = ["# header", f"{a} from=3", "", f"{b}"]
    out = with_lifetimes(lines, [KeyLifetime(a, 0, 9), KeyLifetime(c, 9, None)])
    assert out == ["# header", f"{a} from=3 until=9", "", f"{b}", f"{c} from=9"]
