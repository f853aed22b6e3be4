"""Signed checkpoints, the signing key's registration, and proofs served from stored nodes."""
from __future__ import annotations

from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command

from audit import ledger
from audit.merkle import ProofError, verify_consistency, verify_inclusion
from audit.models import Checkpoint, Entry, PendingEntry, SigningKey
from audit.note import CheckpointBody, NoteError, Verifier, open_note
from audit.selectors import (
    checkpoint_covering,
    consistency_proof,
    inclusion_proof,
    latest_checkpoint,
    ledger_size,
    tree_root,
)
from audit.services.checkpoints import checkpoint_create, signing_key_register
from audit.signing import current_verifier_key
from tests.audit.integration.helpers import fill, leaves, note, reference_root

pytestmark = pytest.mark.django_db


def _opened(note_text: str) -> CheckpointBody:
    opened = open_note(note_text, [Verifier.parse(current_verifier_key())])
    return CheckpointBody.parse(opened.text)


def test_checkpoint_integrates_first_and_signs_the_whole_tree() -> None:
    # given: three pending events, nothing integrated
    for i in range(3):
        note(f"n{i}")
    assert Entry.objects.count() == 0

    # when
    checkpoint = checkpoint_create()

    # then: the pending events and the key registration are in, and the note covers them
    assert checkpoint is not None
    assert PendingEntry.objects.count() == 0
    assert ledger_size() == Entry.objects.count() == 4
    body = _opened(checkpoint.note)
    assert body.origin == settings.LEDGER_ORIGIN
    assert body.tree_size == checkpoint.tree_size == 4
    assert body.root_hash == tree_root(4) == reference_root(leaves())
    assert checkpoint.root_hash == body.root_hash.hex()
    assert body.extensions == ()


def test_signing_key_is_registered_once() -> None:
    fill(2)
    checkpoint_create()
    fill(2)
    checkpoint_create()
    signing_key_register()

    key = SigningKey.objects.get()
    assert key.verifier_key == current_verifier_key()
    assert key.name == settings.LEDGER_ORIGIN
    registrations = Entry.objects.filter(event_type="ledger.signing_key_registered")
    assert registrations.count() == 1
    entry = registrations.get()
    assert entry.payload == {"verifier_key": key.verifier_key, "key_id": key.key_id}
    assert (entry.actor_type, entry.actor_id) == ("system", "ledger")
    assert (entry.subject_type, entry.subject_id) == ("signing_key", f"{key.name}+{key.key_id}")
    # The published verifier key is the one that verifies the notes.
    for checkpoint in Checkpoint.objects.all():
        assert open_note(checkpoint.note, [Verifier.parse(key.verifier_key)]).verified_by


def test_note_does_not_verify_with_another_key() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from audit.note import public_bytes, verifier_key

    checkpoint = checkpoint_create()
    assert checkpoint is not None
    stranger = verifier_key(settings.LEDGER_ORIGIN, public_bytes(Ed25519PrivateKey.generate().public_key()))

    with pytest.raises(NoteError, match="no signature from a known key"):
        open_note(checkpoint.note, [Verifier.parse(stranger)])


def test_only_if_grown_skips_when_nothing_is_new() -> None:
    fill(3)
    first = checkpoint_create(only_if_grown=True)
    assert first is not None

    assert checkpoint_create(only_if_grown=True) is None
    assert Checkpoint.objects.count() == 1

    note("new")
    second = checkpoint_create(only_if_grown=True)
    assert second is not None and second.tree_size == first.tree_size + 1
    assert latest_checkpoint() == second


def test_an_unchanged_tree_is_never_signed_twice() -> None:
    # Issue 14, section 3: re-signing an unchanged tree made identical-size duplicates.
    fill(1)
    a = checkpoint_create()
    b = checkpoint_create()
    assert a is not None and b is not None
    assert a.pk == b.pk
    assert Checkpoint.objects.count() == 1


def test_checkpoint_command_prints_the_signed_note() -> None:
    fill(4)
    out = StringIO()

    call_command("checkpoint", stdout=out)

    printed = out.getvalue()
    stored = Checkpoint.objects.get()
    assert printed == stored.note
    assert printed.startswith(f"{settings.LEDGER_ORIGIN}\n5\n")
    assert "\n\n\u2014 " in printed
    body = _opened(printed)
    assert (body.tree_size, body.root_hash) == (5, tree_root(5))


def test_checkpoint_covering_finds_the_earliest() -> None:
    fill(3)
    first = checkpoint_create()  # size 4
    fill(3)
    second = checkpoint_create()  # size 7
    assert first is not None and second is not None

    assert checkpoint_covering(0) == first
    assert checkpoint_covering(3) == first
    assert checkpoint_covering(4) == second
    assert checkpoint_covering(7) is None


# --- proofs -----------------------------------------------------------------------------

SIZES = [1, 2, 3, 7, 8, 64, 100, 255, 256, 257, 300]


@pytest.fixture
def three_hundred() -> list[bytes]:
    batch = [
        ledger.Event("ledger.note_added", ledger.Actor.system("t"), ledger.Subject("m", str(i % 13)), {"text": str(i)})
        for i in range(300)
    ]
    ledger.record_many(batch)
    ledger.integrate(limit=97)  # several sequencer batches
    hashes = leaves()
    assert len(hashes) == 300
    return hashes


def test_tree_roots_match_the_textbook_definition(three_hundred: list[bytes]) -> None:
    for size in [0, *SIZES]:
        assert tree_root(size) == reference_root(three_hundred[:size]), size


def test_every_inclusion_proof_verifies(three_hundred: list[bytes]) -> None:
    for size in SIZES:
        root = tree_root(size)
        for seq in range(size):
            proof = inclusion_proof(seq=seq, tree_size=size)
            assert proof.root == root and proof.leaf_hash == three_hundred[seq]
            assert verify_inclusion(seq, size, proof.leaf_hash, proof.path, root), (seq, size)


def test_inclusion_proof_does_not_verify_for_another_leaf(three_hundred: list[bytes]) -> None:
    proof = inclusion_proof(seq=17, tree_size=300)
    assert not verify_inclusion(17, 300, three_hundred[18], proof.path, proof.root)
    assert not verify_inclusion(18, 300, three_hundred[17], proof.path, proof.root)
    assert not verify_inclusion(17, 300, three_hundred[17], proof.path, tree_root(299))


def test_every_consistency_proof_verifies(three_hundred: list[bytes]) -> None:
    for old in SIZES:
        for new in SIZES:
            if old > new:
                continue
            proof = consistency_proof(old_size=old, new_size=new)
            assert (proof.old_root, proof.new_root) == (tree_root(old), tree_root(new))
            assert verify_consistency(old, new, proof.old_root, proof.new_root, proof.path), (old, new)
    # and against a wrong old root it fails
    proof = consistency_proof(old_size=100, new_size=300)
    assert not verify_consistency(100, 300, tree_root(99), proof.new_root, proof.path)


def test_consistency_from_every_size_to_the_latest(three_hundred: list[bytes]) -> None:
    new_root = tree_root(300)
    for old in range(1, 301):
        proof = consistency_proof(old_size=old, new_size=300)
        assert verify_consistency(old, 300, proof.old_root, new_root, proof.path), old


def test_proofs_beyond_the_ledger_are_refused(three_hundred: list[bytes]) -> None:
    note("pending, not integrated")
    with pytest.raises(ProofError):
        tree_root(301)
    with pytest.raises(ProofError):
        inclusion_proof(seq=3, tree_size=301)
    with pytest.raises(ProofError):
        inclusion_proof(seq=300, tree_size=300)
    with pytest.raises(ProofError):
        consistency_proof(old_size=10, new_size=301)
    with pytest.raises(ProofError):
        consistency_proof(old_size=0, new_size=10)
    with pytest.raises(ProofError):
        consistency_proof(old_size=20, new_size=10)
    with pytest.raises(ProofError):
        tree_root(-1)


def test_a_long_origin_can_still_sign_checkpoints(settings: pytest.FixtureRequest) -> None:
    settings.LEDGER_ORIGIN = "ledger.example.internal/" + "governance-" * 12  # type: ignore[attr-defined]
    fill(1)

    checkpoint = checkpoint_create()

    assert checkpoint is not None
    assert _opened(checkpoint.note).origin == settings.LEDGER_ORIGIN  # type: ignore[attr-defined]
