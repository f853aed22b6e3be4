"""verify_ledger against anchors from outside the database, and key lifetimes.

Without an anchor the database can only be shown consistent with itself (exit 3); a checkpoint kept
elsewhere (a witness's, a regulator's) catches a truncated or rewritten history (``truncated``,
``forked``), and a retired key cannot vouch for a larger tree (``retired_key``).
"""
from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from audit.models import Checkpoint, Entry
from audit.note import CheckpointBody, sign_note
from audit.selectors import tree_root
from audit.services import checkpoints
from audit.services.integrity import verification_run
from audit.signing import current_verifier_key, signing_key
from audit.verification import Anchor, TrustedKey, open_checkpoint, verify_ledger
from tests.audit.integration.helpers import fill, tamper
from tests.audit.integration.test_tampering import attacker_note, rewrite_from, run_command
from tests.audit.verifying.helpers import log_vkey

pytestmark = pytest.mark.django_db


# verify_ledger's exit status and output, as an operator sees them.
run = run_command


@pytest.fixture
def kept(db: None, isolated_key: Path, tmp_path: Path) -> Path:
    """Twelve entries and a checkpoint, whose note a regulator kept in a file."""
    fill(11)
    checkpoint = checkpoints.checkpoint_create()
    assert checkpoint is not None
    path = tmp_path / "kept-checkpoint.txt"
    path.write_text(checkpoint.note)
    return path


# --- anchors ----------------------------------------------------------------------------------------------------


def test_an_intact_ledger_extending_a_kept_checkpoint_is_anchored(kept: Path) -> None:
    fill(4, prefix="after")

    code, out = run("--known-checkpoint", str(kept))

    assert code == 0 and "ledger intact and anchored" in out and "extends known checkpoint" in out
    code, out = run("--json", "--known-checkpoint", str(kept))
    data = json.loads(out)
    assert code == 0 and data["anchored"] is True and data["anchors"][0].startswith("known checkpoint")


def test_without_anchors_the_command_says_nothing_anchors_it(kept: Path) -> None:
    code, out = run()
    assert code == 3 and "NOT ANCHORED" in out and "intact" not in out


def test_deleting_the_checkpoints_and_the_tail_is_caught_by_a_kept_checkpoint(kept: Path) -> None:
    # given: a database owner deletes every checkpoint and the last entries
    tamper("DELETE FROM audit_checkpoint")
    tamper("DELETE FROM audit_entry WHERE seq >= 8")

    # then: consistent with itself (nothing in the database remembers the size)...
    assert verify_ledger().ok and run()[0] == 3
    # ...but not with what a regulator kept
    code, out = run("--json", "--known-checkpoint", str(kept))
    data = json.loads(out)
    assert code == 1 and (data["reason"], data["first_bad_seq"]) == ("truncated", 8)


def test_a_rewritten_history_is_forked_against_a_kept_checkpoint(kept: Path) -> None:
    # given: entry 3 rewritten with every later hash and link recomputed, the checkpoints deleted
    rewrite_from(3, payload_json='{"text":"something else"}')
    tamper("DELETE FROM audit_checkpoint")
    assert verify_ledger().ok

    code, out = run("--json", "--known-checkpoint", str(kept))

    data = json.loads(out)
    assert code == 1 and data["reason"] == "forked" and data["first_bad_seq"] == 0


def test_anchors_larger_than_the_ledger_or_with_another_root(kept: Path) -> None:
    size = Checkpoint.objects.get().tree_size

    larger = verify_ledger(anchors=[Anchor(size=size + 5, root=bytes(32), source="witness w1")])
    other = verify_ledger(anchors=[Anchor(size=5, root=tree_root(4), source="witness w2")])
    same = verify_ledger(anchors=[Anchor(size=5, root=tree_root(5), source="witness w2"),
                                  Anchor(size=0, root=tree_root(0), source="empty")])

    assert (larger.ok, larger.reason, larger.first_bad_seq) == (False, "truncated", size)
    assert "witness w1" in (larger.detail or "")
    assert (other.ok, other.reason) == (False, "forked")
    assert same.ok and same.anchored and len(same.anchors) == 2
    assert verify_ledger().anchored is False  # existing callers: ok, and not anchored


def test_a_kept_checkpoint_must_be_signed_by_a_trusted_key(kept: Path, tmp_path: Path) -> None:
    forged = tmp_path / "forged.txt"
    forged.write_text(attacker_note(5, Ed25519PrivateKey.generate()))

    with pytest.raises(CommandError, match="does not verify"):
        call_command("verify_ledger", "--known-checkpoint", str(forged), stdout=StringIO())


# --- key lifetimes ---------------------------------------------------------------------------------------------


@pytest.fixture
def rotated(kept: Path) -> tuple[Ed25519PrivateKey, int]:
    """A rotation at tree size H = 13: the old key signs the handover checkpoint with the new (current) key.

    The configuration then says: old key until=H, new key from=H. Returns (old key, H).
    """
    old = Ed25519PrivateKey.generate()
    fill(1, prefix="handover")
    size = 13
    body = CheckpointBody(origin=settings.LEDGER_ORIGIN, tree_size=size, root_hash=tree_root(size)).text()
    note = sign_note(body, [(settings.LEDGER_ORIGIN, old), (settings.LEDGER_ORIGIN, signing_key())])
    Checkpoint.objects.create(tree_size=size, root_hash=tree_root(size).hex(), note=note, created_at=timezone.now())
    fill(4, prefix="after the rotation")
    return old, size


def test_a_history_rewritten_with_the_retired_key_fails_retired_key(rotated: tuple[Ed25519PrivateKey, int]) -> None:
    old, handover = rotated
    lines = [f"{log_vkey(old, settings.LEDGER_ORIGIN)} until={handover}", f"{current_verifier_key()} from=0"]
    # before: the same ledger verifies with those lifetimes
    with override_settings(LEDGER_TRUSTED_KEYS=lines):
        assert verify_ledger().ok
        assert verification_run(mode="full").ok  # what the next incremental run resumes from
    # given: the old key's holder signs a larger tree (a rewritten history would be signed the same way)
    size = 16
    Checkpoint.objects.create(tree_size=size, root_hash=tree_root(size).hex(), note=attacker_note(size, old),
                              created_at=timezone.now())

    with override_settings(LEDGER_TRUSTED_KEYS=lines):
        result = verify_ledger()
        code, out = run("--json")

    assert (result.ok, result.reason, result.first_bad_seq) == (False, "retired_key", size - 1)
    assert f"until={handover}" in (result.detail or "")
    assert code == 1 and json.loads(out)["reason"] == "retired_key"
    # the scheduled incremental run refuses the same forgery beyond the size it resumes from
    fill(3, prefix="later")
    later = Entry.objects.count()
    Checkpoint.objects.create(tree_size=later, root_hash=tree_root(later).hex(), note=attacker_note(later, old),
                              created_at=timezone.now())
    with override_settings(LEDGER_TRUSTED_KEYS=lines):
        run_ = verification_run(mode="incremental")
    assert (run_.mode, run_.ok, run_.reason) == ("incremental", False, "retired_key")
    # without lifetimes (every key valid for every size, as before) the same checkpoint passed
    with override_settings(LEDGER_TRUSTED_KEYS=[log_vkey(old, settings.LEDGER_ORIGIN)]):
        assert verify_ledger().ok


def test_lifetimes_given_on_the_command_line(rotated: tuple[Ed25519PrivateKey, int], tmp_path: Path) -> None:
    old, handover = rotated
    size = 16
    Checkpoint.objects.create(tree_size=size, root_hash=tree_root(size).hex(), note=attacker_note(size, old),
                              created_at=timezone.now())
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# after the rotation\n{log_vkey(old, settings.LEDGER_ORIGIN)} until={handover}\n")

    result = verify_ledger(trusted=[TrustedKey(current_verifier_key()),
                                    TrustedKey(log_vkey(old, settings.LEDGER_ORIGIN), 0, handover)])
    code, out = run("--json", "--trusted-keys-file", str(keys))

    assert result.reason == "retired_key"
    # the configured current key is valid everywhere, the file's line limits the old one
    assert code == 1 and json.loads(out)["reason"] == "retired_key"


def test_open_checkpoint_refuses_a_retired_key(rotated: tuple[Ed25519PrivateKey, int]) -> None:
    old, handover = rotated
    note = attacker_note(16, old)
    keys = [TrustedKey(log_vkey(old, settings.LEDGER_ORIGIN), 0, handover)]
    with pytest.raises(ValueError, match="retired"):
        open_checkpoint(note, keys)
    assert open_checkpoint(attacker_note(10, old), keys).size == 10
