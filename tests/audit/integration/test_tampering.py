"""Tampering by someone who can switch the triggers off, caught by verify_ledger.

Every case is checked through ``verify_ledger()`` and through the management
command ``verify_ledger --json`` (exit status 1, JSON naming reason and seq).
"""
from __future__ import annotations

import base64
import json
from io import StringIO
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit import triggers
from audit.canonical import ZERO_HASH, leaf_hash
from audit.models import Checkpoint, Entry
from audit.note import CheckpointBody, public_bytes, sign_note, verifier_key
from audit.selectors import tree_root
from audit.services.checkpoints import checkpoint_create
from audit.verification import VerificationResult, verify_ledger
from tests.audit.integration.helpers import fill, raw, tamper

pytestmark = pytest.mark.django_db

HASHED = (
    "timestamp", "event_type", "actor_type", "actor_id", "subject_type", "subject_id",
    "payload_json", "prev_hash", "subject_prev", "entry_hash",
)


def run_command(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("verify_ledger", *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


def assert_not_intact(reason: str, first_bad_seq: int | None, *args: str) -> VerificationResult:
    extra = [a for a in args if a != "--trusted-key"]
    result = verify_ledger(extra_keys=extra)
    assert (result.ok, result.reason, result.first_bad_seq) == (False, reason, first_bad_seq), result.detail

    code, out = run_command("--json", *args)
    assert code == 1
    data = json.loads(out)
    assert (data["ok"], data["reason"], data["first_bad_seq"]) == (False, reason, first_bad_seq)
    assert data["detail"] == result.detail
    return result


def assert_intact(*args: str) -> VerificationResult:
    extra = [a for a in args if a != "--trusted-key"]
    result = verify_ledger(extra_keys=extra)
    assert result.ok, result.detail
    code, out = run_command("--json", *args)
    assert code == 3  # consistent, but no witness or known checkpoint anchors it
    assert json.loads(out)["ok"] is True and json.loads(out)["anchored"] is False
    return result


def rewrite_from(seq: int, **changes: Any) -> None:
    """Change entry ``seq`` and recompute every later hash and link, as a careful attacker would."""
    prev = Entry.objects.get(seq=seq - 1).entry_hash if seq else ZERO_HASH
    with triggers.disabled(connection):
        for entry in list(Entry.objects.filter(seq__gte=seq).order_by("seq")):
            if entry.seq == seq:
                for name, value in changes.items():
                    setattr(entry, name, value)
            entry.prev_hash = prev
            entry.entry_hash = leaf_hash(entry.canonical_body()).hex()
            raw(
                f"UPDATE audit_entry SET {', '.join(f'{c} = %s' for c in HASHED)} WHERE seq = %s",
                [*(getattr(entry, c) for c in HASHED), entry.seq],
            )
            prev = entry.entry_hash


def attacker_note(size: int, key: Ed25519PrivateKey, root: bytes | None = None) -> str:
    body = CheckpointBody(origin=settings.LEDGER_ORIGIN, tree_size=size, root_hash=root or tree_root(size))
    return sign_note(body.text(), [(settings.LEDGER_ORIGIN, key)])


@pytest.fixture
def ten() -> None:
    """Ten entries (seq 0..9) over three subjects, no checkpoint."""
    fill(10)


@pytest.fixture
def checkpointed() -> Checkpoint:
    """Ten notes, then a checkpoint (its key registration is seq 10): size 11."""
    fill(10)
    checkpoint = checkpoint_create()
    assert checkpoint is not None and checkpoint.tree_size == 11
    return checkpoint


# --- intact ---------------------------------------------------------------------------


def test_intact_ledger_verifies(checkpointed: Checkpoint) -> None:
    fill(4, prefix="after")
    checkpoint_create()

    result = assert_intact()

    assert (result.entries, result.checkpoints, result.tree_size) == (15, 2, 15)
    assert result.root_hash == tree_root(15).hex()
    code, out = run_command()
    assert code == 3
    assert "NOT ANCHORED: 15 entries, 2 checkpoints verified" in out


def test_empty_ledger_verifies() -> None:
    result = assert_intact()
    assert (result.entries, result.checkpoints) == (0, 0)


def test_verification_pages_through_small_chunks(checkpointed: Checkpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    # Keyset pagination and the bounded subject cache give the same answer as one big read.
    from audit import verification

    monkeypatch.setattr(verification, "SUBJECT_CACHE", 2)
    fill(20, subjects=7)
    checkpoint_create()

    assert verify_ledger(chunk=3).ok
    rewrite_from(25, subject_prev=None)
    result = verify_ledger(chunk=3)
    assert (result.reason, result.first_bad_seq) == ("broken_subject_link", 25)


# --- edited entries ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("payload_json", '{"text":"nothing to see"}'),
        ("timestamp", "2020-01-01T00:00:00.000000Z"),
        ("actor_id", "99"),
        ("actor_type", "service"),
        ("event_type", "auth.role_added"),
        ("subject_id", "model/9"),
        ("subject_prev", None),
        ("prev_hash", "f" * 64),
        ("entry_hash", "e" * 64),
    ],
)
def test_edited_column_is_a_changed_entry(ten: None, column: str, value: object) -> None:
    # given: a database owner edits one column of entry 4
    rows = tamper(f"UPDATE audit_entry SET {column} = %s WHERE seq = 4", [value])
    assert rows == 1

    # then
    assert_not_intact("changed_entry", 4)


def test_edited_first_and_last_entries(ten: None) -> None:
    tamper("UPDATE audit_entry SET timestamp = %s WHERE seq = 9", ["2020-01-01T00:00:00.000000Z"])
    assert_not_intact("changed_entry", 9)
    tamper("UPDATE audit_entry SET actor_id = %s WHERE seq = 0", ["mallory"])
    assert_not_intact("changed_entry", 0)


def test_human_output_names_the_problem(ten: None) -> None:
    tamper("UPDATE audit_entry SET payload_json = %s WHERE seq = 4", ['{"text":"x"}'])

    code, out = run_command()

    assert code == 1
    assert "LEDGER NOT INTACT at seq 4: changed_entry" in out


# --- removed and moved entries -----------------------------------------------------------


@pytest.mark.parametrize("seq", [0, 5])
def test_deleted_entry_is_missing(ten: None, seq: int) -> None:
    tamper("DELETE FROM audit_entry WHERE seq = %s", [seq])
    assert_not_intact("missing_entry", seq)


def _swap_seq(k: int) -> None:
    with triggers.disabled(connection):
        raw("UPDATE audit_entry SET seq = 999999 WHERE seq = %s", [k])
        raw("UPDATE audit_entry SET seq = %s WHERE seq = %s", [k, k + 1])
        raw("UPDATE audit_entry SET seq = %s WHERE seq = 999999", [k + 1])


def _swap_columns(k: int) -> None:
    a, b = (Entry.objects.values(*HASHED).get(seq=s) for s in (k, k + 1))
    assignments = ", ".join(f"{c} = %s" for c in HASHED)
    with triggers.disabled(connection):
        raw("UPDATE audit_entry SET entry_hash = %s WHERE seq = %s", ["swap", k])  # unique column
        raw(f"UPDATE audit_entry SET {assignments} WHERE seq = %s", [*(a[c] for c in HASHED), k + 1])
        raw(f"UPDATE audit_entry SET {assignments} WHERE seq = %s", [*(b[c] for c in HASHED), k])


@pytest.mark.parametrize("swap", [_swap_seq, _swap_columns], ids=["seq-values", "hashed-columns"])
@pytest.mark.parametrize("k", [0, 3, 8])
def test_swapped_pair_is_reordered(ten: None, swap: Any, k: int) -> None:
    swap(k)
    assert_not_intact("reordered", k)


def test_tail_removed_under_a_checkpoint_is_truncated(checkpointed: Checkpoint) -> None:
    tamper("DELETE FROM audit_entry WHERE seq >= 8")
    assert_not_intact("truncated", 8)


def test_whole_ledger_removed_under_a_checkpoint_is_truncated(checkpointed: Checkpoint) -> None:
    tamper("DELETE FROM audit_entry")
    assert_not_intact("truncated", 0)


# --- consistent rewrites --------------------------------------------------------------


def test_relinked_entry_is_a_broken_link(ten: None) -> None:
    # given: entry 6's prev_hash is pointed elsewhere and only its own hash recomputed
    entry = Entry.objects.get(seq=6)
    entry.prev_hash = "a" * 64
    tamper(
        "UPDATE audit_entry SET prev_hash = %s, entry_hash = %s WHERE seq = 6",
        [entry.prev_hash, leaf_hash(entry.canonical_body()).hex()],
    )
    assert_not_intact("broken_link", 6)


def test_entry_relinked_to_an_older_one_is_reordered(ten: None) -> None:
    entry = Entry.objects.get(seq=6)
    entry.prev_hash = Entry.objects.get(seq=4).entry_hash
    tamper(
        "UPDATE audit_entry SET prev_hash = %s, entry_hash = %s WHERE seq = 6",
        [entry.prev_hash, leaf_hash(entry.canonical_body()).hex()],
    )
    assert_not_intact("reordered", 6)


def test_rewritten_subject_link_is_a_broken_subject_link(ten: None) -> None:
    rewrite_from(7, subject_prev=1)  # seq 7 is model/1's; its previous entry is seq 4
    assert_not_intact("broken_subject_link", 7)


def test_whole_chain_rewrite_is_caught_only_by_the_checkpoint(checkpointed: Checkpoint) -> None:
    # given: a second checkpoint at 16, then an attacker edits entry 13 and recomputes
    # every later entry_hash and prev_hash so that the chain is self-consistent
    fill(5, prefix="late")
    second = checkpoint_create()
    assert second is not None and second.tree_size == 16
    rewrite_from(13, payload_json='{"text":"rewritten"}')

    # then: every entry matches its hash and link; only the signed root at 16 disagrees,
    # and the first bad seq is bounded by the last good checkpoint (11)
    result = assert_not_intact("checkpoint_mismatch", 11)
    assert "[11, 16)" in (result.detail or "")


def test_whole_chain_rewrite_from_the_start(checkpointed: Checkpoint) -> None:
    rewrite_from(0, actor_id="mallory")
    assert_not_intact("checkpoint_mismatch", 0)


def test_rewrite_after_the_last_checkpoint_goes_unnoticed(checkpointed: Checkpoint) -> None:
    # The limit of tamper evidence: entries no checkpoint covers yet can be rewritten
    # consistently. Checkpoints every few seconds keep this window short.
    fill(3, prefix="late")
    rewrite_from(12, payload_json='{"text":"rewritten"}')
    assert_intact()


# --- forged checkpoints --------------------------------------------------------------


def test_checkpoint_signed_by_another_key_is_bad_signature(checkpointed: Checkpoint) -> None:
    # given: anyone who may INSERT adds a checkpoint signed with their own key under our name
    note = attacker_note(11, Ed25519PrivateKey.generate())
    Checkpoint.objects.create(tree_size=11, root_hash=tree_root(11).hex(), note=note, created_at=timezone.now())

    assert_not_intact("bad_signature", 10)


def test_checkpoint_with_an_altered_root_is_bad_signature(checkpointed: Checkpoint) -> None:
    # given: the root line of a genuine note is replaced; the signature is kept
    fill(3, prefix="late")
    text, signatures = checkpointed.note.split("\n\n", 1)
    origin, size, _root = text.split("\n")
    forged_root = tree_root(12)
    forged = f"{origin}\n{size}\n{base64.b64encode(forged_root).decode()}\n\n{signatures}"
    tamper(
        "UPDATE audit_checkpoint SET note = %s, root_hash = %s WHERE id = %s",
        [forged, forged_root.hex(), checkpointed.pk],
    )

    assert_not_intact("bad_signature", 10)


def test_checkpoint_row_disagreeing_with_its_note_is_a_mismatch(checkpointed: Checkpoint) -> None:
    tamper("UPDATE audit_checkpoint SET root_hash = %s WHERE id = %s", ["0" * 64, checkpointed.pk])
    assert_not_intact("checkpoint_mismatch", 0)


def test_checkpoint_replayed_at_another_size_is_a_mismatch(checkpointed: Checkpoint) -> None:
    # given: a genuine note of size 11 stored as if it covered 13 entries
    fill(2, prefix="late")
    Checkpoint.objects.create(
        tree_size=13, root_hash=checkpointed.root_hash, note=checkpointed.note, created_at=timezone.now()
    )
    assert_not_intact("checkpoint_mismatch", 11)


# --- trusted keys ---------------------------------------------------------------------


@pytest.fixture
def old_key_checkpoint() -> str:
    """Five entries and a checkpoint signed by an earlier (rotated-out) key; returns its verifier key."""
    fill(5)
    old = Ed25519PrivateKey.generate()
    Checkpoint.objects.create(
        tree_size=5, root_hash=tree_root(5).hex(), note=attacker_note(5, old), created_at=timezone.now()
    )
    return verifier_key(settings.LEDGER_ORIGIN, public_bytes(old.public_key()))


def test_old_key_checkpoint_needs_its_key_to_be_trusted(old_key_checkpoint: str) -> None:
    assert_not_intact("bad_signature", 4)


def test_old_key_listed_with_trusted_key_verifies(old_key_checkpoint: str) -> None:
    result = assert_intact("--trusted-key", old_key_checkpoint)
    assert result.checkpoints == 1


def test_old_key_in_settings_verifies(old_key_checkpoint: str, settings: Any) -> None:
    settings.LEDGER_TRUSTED_KEYS = [old_key_checkpoint]
    assert_intact()


def test_a_trusted_key_does_not_excuse_another_key(old_key_checkpoint: str) -> None:
    other = Ed25519PrivateKey.generate()
    other_vkey = verifier_key(settings.LEDGER_ORIGIN, public_bytes(other.public_key()))
    assert_not_intact("bad_signature", 4, "--trusted-key", other_vkey)


def test_malformed_trusted_key_is_a_command_error(ten: None) -> None:
    with pytest.raises(CommandError, match="malformed"):
        call_command("verify_ledger", "--trusted-key", "not-a-key", stdout=StringIO())


# --- known gaps -------------------------------------------------------------------------


_NEGATIVE_INSERT = (
    "INSERT INTO audit_entry (seq, timestamp, event_type, actor_type, actor_id, subject_type, subject_id,"
    " payload_json, prev_hash, subject_prev, entry_hash, pending_id, idempotency_key)"
    " VALUES (-1, %s, 'auth.role_added', 'user', '1', 'user', '7', '{\"role\":\"infosec\"}', %s, NULL,"
    " %s, -1, NULL)"
)


def test_an_entry_with_a_negative_seq_is_refused_by_the_database(checkpointed: Checkpoint) -> None:
    forged = Entry.objects.get(seq=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        raw(_NEGATIVE_INSERT, [forged.timestamp, ZERO_HASH, "d" * 64])


def test_inserted_entry_with_negative_seq_is_detected(checkpointed: Checkpoint) -> None:
    # given: a database owner lifts the check constraint and inserts a forged entry before seq 0;
    # it shows up in the subject's history and in the admin list, which are ordered by seq
    forged = Entry.objects.get(seq=0)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_entry DROP CONSTRAINT audit_entry_seq_nonnegative")
        else:
            cursor.execute("PRAGMA ignore_check_constraints = ON")
    try:
        raw(_NEGATIVE_INSERT, [forged.timestamp, ZERO_HASH, "d" * 64])
    finally:
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA ignore_check_constraints = OFF")
    assert Entry.objects.filter(subject_type="user", subject_id="7").exists()

    result = verify_ledger()

    assert not result.ok
