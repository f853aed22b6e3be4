"""rotate_signing_key: a handover checkpoint signed by both keys, the keys' lifetimes written from then on, and
bundles that span the rotation still verify."""
from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import CommandError, call_command
from django.test import override_settings

from audit import ledger, note
from audit.models import Checkpoint, Entry, SigningKey
from audit.offline_verify import parse_trusted_key_line
from audit.services import checkpoints
from audit.signing import (
    current_verifier_key,
    generate_key_file,
    signing_key,
    trusted_keys_file,
)
from audit.verification import verify_ledger
from tests.audit.export.helpers import Export, members, verify, verify_subprocess
from tests.audit.integration.helpers import fill

pytestmark = pytest.mark.django_db


def rotate(*args: str) -> str:
    out = StringIO()
    call_command("rotate_signing_key", *args, stdout=out)
    return out.getvalue()


def test_rotation_signs_a_handover_with_both_keys_and_makes_the_new_key_current(
    isolated_key: Path, history: None, infosec: object
) -> None:
    old = current_verifier_key()

    output = rotate("--reason", "annual rotation", "--actor", "ines")

    new = current_verifier_key()
    assert new != old and f"old: {old}" in output and f"new: {new}" in output
    handover = Checkpoint.objects.order_by("-id").first()
    assert handover is not None
    assert len(note.open_note(handover.note, [note.Verifier.parse(old)]).verified_by) == 1
    assert len(note.open_note(handover.note, [note.Verifier.parse(new)]).verified_by) == 1
    assert handover.note.count("\n\u2014 ") == 2
    rotated = Entry.objects.get(event_type="ledger.signing_key_rotated")
    assert rotated.payload == {"old_verifier_key": old, "new_verifier_key": new, "reason": "annual rotation"}
    assert rotated.actor == {"type": "user", "id": str(infosec.pk)}  # type: ignore[attr-defined]
    assert handover.tree_size == rotated.seq + 1  # the handover covers the rotation itself
    assert set(SigningKey.objects.values_list("verifier_key", flat=True)) == {old, new}
    # both keys' lifetimes are written (the handover ends the old one and starts the new one), and the dev key
    # file holds the new key
    lines = [ln for ln in trusted_keys_file().read_text().splitlines() if not ln.startswith("#")]
    assert lines == [f"{old} until={handover.tree_size}", f"{new} from={handover.tree_size}"]
    ledger.integrate()
    handed = Entry.objects.get(event_type="ledger.signing_key_handover")
    assert handed.payload == {"old_verifier_key": old, "new_verifier_key": new, "tree_size": handover.tree_size,
                              "root_hash": handover.root_hash}
    assert handed.seq >= handover.tree_size  # recorded after the handover it names
    assert isolated_key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    # new checkpoints are signed by the new key alone, and the whole ledger still verifies
    fill(20)
    later = checkpoints.checkpoint_create()
    assert later is not None and later.note.count("\n\u2014 ") == 1
    assert note.open_note(later.note, [note.Verifier.parse(new)]).verified_by
    result = verify_ledger()
    assert result.ok, result.detail


def test_a_bundle_spanning_a_rotation_verifies_with_both_keys(isolated_key: Path, history: None,
                                                             export: Export) -> None:
    old = current_verifier_key()
    rotate("--reason", "the old key's custodian left")
    new = current_verifier_key()
    fill(30, prefix="after rotation")
    checkpoints.checkpoint_create()

    bundle = export()

    # keys.txt lists both keys as trusted-key lines: bare, or (with h-export's writer) bounded by the handover
    size = Entry.objects.get(event_type="ledger.signing_key_handover").payload["tree_size"]
    lines = [parse_trusted_key_line(line) for line in members(bundle)["keys.txt"].decode().splitlines()]
    keys = {p[0]: p[1:] for p in lines if p is not None}
    assert set(keys) == {old, new}
    assert keys[old] in {(0, None), (0, size)} and keys[new] in {(0, None), (size, None)}
    comments = members(bundle)["keys.txt"].decode()
    assert "(rotated out)" in comments and "the export (the current key)" in comments
    report = verify(bundle)
    assert report.ok, report.failures
    assert any(len(signers) == 2 for signers in report.signatures.values())  # the handover
    result = verify_subprocess(bundle, "--trusted-key", old, "--trusted-key", new)
    assert result.returncode == 0, result.stdout
    # trusting only the new key: the checkpoints only the old key signed fail, and are named
    result = verify_subprocess(bundle, "--trusted-key", new)
    assert result.returncode == 1
    assert "no signature by a trusted key" in result.stdout and "checkpoints/" in result.stdout
    manifest = json.loads(members(bundle)["manifest.json"])
    assert len(manifest["checkpoints"]) >= 3


def test_rotating_to_a_given_key_outside_the_dev_setup(isolated_key: Path, history: None, tmp_path: Path) -> None:
    old = current_verifier_key()
    with override_settings(LEDGER_SIGNING_KEY_IS_DEV=False):
        with pytest.raises(CommandError, match="give --new-key PATH or --generate PATH"):
            rotate()
        target = tmp_path / "next-key.pem"
        output = rotate("--generate", str(target))
    assert target.exists()
    assert f"now replace {isolated_key} with {target} atomically" in output
    assert current_verifier_key() == old  # production switches keys by replacing the key file
    size = Checkpoint.objects.order_by("-id").values_list("tree_size", flat=True).first()
    assert f"{old} until={size}" in trusted_keys_file().read_text().splitlines()
    assert Entry.objects.filter(event_type="ledger.signing_key_rotated").count() == 1


def test_bad_rotations_are_refused_and_record_nothing(isolated_key: Path, history: None, tmp_path: Path,
                                                      auditor: object) -> None:
    signing_key()  # the current key exists
    before = (Entry.objects.count(), Checkpoint.objects.count())
    cases = [
        (["--new-key", str(tmp_path / "missing.pem")], "--new-key: no key file at"),
        (["--new-key", str(isolated_key)], "the new key is the current signing key"),
        (["--actor", "audrey"], "--actor: audrey is not an InfoSec member"),
        (["--actor", "nobody"], "--actor: no user named 'nobody'"),
        (["--reason", "  "], "--reason must not be empty"),
    ]
    not_a_key = tmp_path / "not-a-key.pem"
    not_a_key.write_text("hello")
    cases.append((["--new-key", str(not_a_key)], "is not a PEM private key"))
    existing = tmp_path / "existing.pem"
    generate_key_file(existing)
    cases.append((["--generate", str(existing)], "already exists"))
    for args, message in cases:
        with pytest.raises(CommandError, match=message):
            rotate(*args)
    ledger.integrate()
    assert (Entry.objects.count(), Checkpoint.objects.count()) == before
    assert not trusted_keys_file().exists()


def test_the_service_refuses_the_current_key(isolated_key: Path, history: None) -> None:
    from audit.ledger import Actor
    from audit.services.rotation import RotationError, signing_key_rotate

    with pytest.raises(RotationError, match="current signing key"):
        signing_key_rotate(new_key=signing_key(), actor=Actor.system("tests"), reason="x")
    with pytest.raises(RotationError, match="needs a reason"):
        signing_key_rotate(new_key=Ed25519PrivateKey.generate(), actor=Actor.system("tests"), reason=" ")
