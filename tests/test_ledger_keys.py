from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import CommandError, call_command
from django.test import override_settings

from audit.note import Verifier, open_note
from audit.offline_verify import parse_trusted_key_line
from audit.services.checkpoints import checkpoint_create
from audit.services.rotation import rotate_and_install
from audit.signing import current_verifier_key, signing_key, trusted_keys_file
from tests.audit.integration.helpers import SYSTEM, fill

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_var(tmp_path: Path) -> object:
    signing_key.cache_clear()
    with override_settings(VAR_DIR=tmp_path, LEDGER_SIGNING_KEY=tmp_path / "dev.pem", LEDGER_SIGNING_KEY_IS_DEV=True,
                           LEDGER_TRUSTED_KEYS=[]):
        yield
    signing_key.cache_clear()


def ledger_keys(*args: str) -> str:
    out = StringIO()
    call_command("ledger_keys", *args, stdout=out)
    return out.getvalue()


def test_ledger_keys_prints_the_key_that_verifies_checkpoints() -> None:
    # given
    checkpoint = checkpoint_create()
    assert checkpoint is not None
    # when
    output = ledger_keys()
    # then every line is a trusted-key line or a comment, and the keys verify the checkpoint
    parsed = [p for p in map(parse_trusted_key_line, output.splitlines()) if p is not None]
    assert parsed == [(current_verifier_key(), 0, None)]
    assert open_note(checkpoint.note, [Verifier.parse(vkey) for vkey, _, _ in parsed]).verified_by
    assert "current signing key" in output and f"#{checkpoint.pk} (size {checkpoint.tree_size}, " in output


def test_after_a_rotation_the_output_is_a_trusted_keys_file_with_each_keys_validity(tmp_path: Path) -> None:
    fill(3)
    first = checkpoint_create()
    old = current_verifier_key()
    handover, _ = rotate_and_install(new_key=Ed25519PrivateKey.generate(), actor=SYSTEM, reason="r")
    fill(3)
    last = checkpoint_create()
    assert first is not None and last is not None
    new, size = current_verifier_key(), handover.tree_size

    output = ledger_keys()

    lines = [ln for ln in output.splitlines() if not ln.startswith("#")]
    assert lines == [f"{old} until={size}", f"{new} from={size}"]
    saved = tmp_path / "keys.txt"
    saved.write_text(output)  # what a reader keeps, then passes with --trusted-keys-file
    assert [p for p in map(parse_trusted_key_line, saved.read_text().splitlines()) if p] == [
        (old, 0, size), (new, size, None)]
    comments = [ln for ln in output.splitlines() if ln.startswith("# ledger")]
    assert "retired; valid for tree sizes 0 to " in comments[0]
    assert f"checkpoints #{first.pk} (size {first.tree_size}, " in comments[0]
    assert f"to #{handover.pk} (size {size}, " in comments[0]
    assert "current signing key; valid for tree sizes " in comments[1]
    assert f"#{handover.pk} (size {size}, " in comments[1] and f"to #{last.pk} (size {last.tree_size}, " in comments[1]
    assert "NOT signed" not in output

    data = json.loads(ledger_keys("--json"))
    assert data["current"] == new
    assert [(k["verifier_key"], k["valid_from"], k["valid_until"], k["current"]) for k in data["keys"]] == [
        (old, 0, size, False), (new, size, None, True)]
    assert data["keys"][0]["last_checkpoint"] == {
        "id": handover.pk, "tree_size": size, "created_at": f"{handover.created_at:%Y-%m-%dT%H:%M:%S.%f}Z",
        "signed_by_this_key": True}
    assert data["keys"][1]["line"] == f"{new} from={size}"


def test_a_checkpoint_in_a_keys_range_it_did_not_sign_is_flagged() -> None:
    fill(2)
    checkpoint_create()
    other = Ed25519PrivateKey.generate()
    from audit.note import public_bytes, verifier_key
    from audit.signing import key_name

    stranger = verifier_key(key_name(), public_bytes(other.public_key()))
    trusted_keys_file().write_text(f"{stranger}\n")
    output = ledger_keys()
    assert "NOT signed by this key" in output.split(stranger)[0].splitlines()[-1]


def test_malformed_key_configuration_is_a_clear_error() -> None:
    trusted_keys_file().write_text("garbage\n")
    with pytest.raises(CommandError, match=r"the key configuration is malformed: .*line 1"):
        ledger_keys()


def test_a_handover_the_configuration_does_not_reflect_is_flagged_not_trusted() -> None:
    """A redeployment lost the trusted-keys file: the ledger's handover entry is shown as a warning, and the keys
    printed are still only the configured ones (the database is never a source of trust)."""
    fill(2)
    old = current_verifier_key()
    handover, _ = rotate_and_install(new_key=Ed25519PrivateKey.generate(), actor=SYSTEM, reason="r")
    from audit import ledger

    ledger.integrate()
    assert "WARNING" not in ledger_keys()
    trusted_keys_file().unlink()

    err = StringIO()
    out = StringIO()
    call_command("ledger_keys", stdout=out, stderr=err)

    assert f"handover at tree size {handover.tree_size}" in err.getvalue()
    assert f"# WARNING: the ledger records a key handover at tree size {handover.tree_size}" in out.getvalue()
    assert [p[0] for p in map(parse_trusted_key_line, out.getvalue().splitlines()) if p] == [current_verifier_key()]
    assert old not in [ln for ln in out.getvalue().splitlines() if not ln.startswith("#")]
    assert json.loads(ledger_keys("--json"))["warnings"]
