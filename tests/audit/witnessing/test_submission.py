"""Submitting checkpoints to real witnesses (c2sp.org/tlog-witness), storing and publishing their cosignatures."""
from __future__ import annotations

import shutil
import time
from typing import Any

import pytest

from audit.cosignature import Cosigner, verify_cosignatures
from audit.models import Checkpoint, WitnessCosignature, WitnessState
from audit.note import CheckpointBody, Verifier, open_note
from audit.services.checkpoints import checkpoint_create
from audit.services.witnessing import checkpoint_witness, configured_witnesses, published_note
from audit.signing import current_verifier_key
from tests.audit.integration.helpers import fill

pytestmark = pytest.mark.django_db


def cosigners() -> list[Cosigner]:
    return [w.cosigner for w in configured_witnesses()]


def state(name: str) -> WitnessState:
    return WitnessState.objects.get(name=name)


def checkpoint_of(n: int) -> Checkpoint:
    fill(n)
    checkpoint = checkpoint_create()
    assert checkpoint is not None
    return checkpoint


def test_cosignatures_are_verified_stored_and_published(witnesses: Any) -> None:
    w1, w2 = witnesses("honest", "honest")
    checkpoint = checkpoint_of(5)

    outcome = checkpoint_witness(checkpoint_id=checkpoint.pk)

    assert sorted(outcome.cosigned) == sorted([w1.name, w2.name])
    rows = list(WitnessCosignature.objects.filter(checkpoint=checkpoint))
    assert sorted(r.witness for r in rows) == sorted([w1.name, w2.name])
    note = published_note(checkpoint)
    assert note.startswith(checkpoint.note)
    found = verify_cosignatures(note, cosigners())
    assert {c.cosigner.name for c in found} == {w1.name, w2.name}
    assert {c.timestamp for c in found} == {r.timestamp for r in rows}
    # Still the log's valid signed note for a verifier that knows no witness (their lines are ignored).
    opened = open_note(note, [Verifier.parse(current_verifier_key())])
    assert CheckpointBody.parse(opened.text).tree_size == checkpoint.tree_size and opened.unknown_signatures == 2
    assert state(w1.name).cosigned_size == checkpoint.tree_size and state(w1.name).last_error == ""


def test_submission_is_idempotent(witnesses: Any) -> None:
    (w1,) = witnesses("honest")
    checkpoint = checkpoint_of(3)
    checkpoint_witness(checkpoint_id=checkpoint.pk)
    again = checkpoint_witness(checkpoint_id=checkpoint.pk)
    assert again.results == {w1.name: "skipped"}
    assert WitnessCosignature.objects.count() == 1


def test_the_next_checkpoint_is_sent_with_a_consistency_proof(witnesses: Any) -> None:
    (w1,) = witnesses("honest")
    first = checkpoint_of(5)
    checkpoint_witness(checkpoint_id=first.pk)
    second = checkpoint_of(6)  # a real proof, from 6 to 12
    outcome = checkpoint_witness(checkpoint_id=second.pk)
    assert outcome.cosigned == [w1.name]
    assert (first.tree_size, state(w1.name).size) == (6, 12)
    assert verify_cosignatures(published_note(second), cosigners())


def test_only_the_latest_checkpoint_is_submitted(witnesses: Any) -> None:
    (w1,) = witnesses("honest")
    older = checkpoint_of(2)
    newer = checkpoint_of(2)
    outcome = checkpoint_witness(checkpoint_id=older.pk)
    assert outcome.checkpoint_id == newer.pk and outcome.cosigned == [w1.name]
    assert not WitnessCosignature.objects.filter(checkpoint=older).exists()


def test_checkpoint_create_queues_the_submission_after_commit(
    witnesses: Any, django_capture_on_commit_callbacks: Any
) -> None:
    (w1,) = witnesses("honest")
    fill(4)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        checkpoint = checkpoint_create()
    assert len(callbacks) == 1
    assert WitnessCosignature.objects.filter(checkpoint=checkpoint, witness=w1.name).exists()


def test_no_witnesses_configured_nothing_is_queued(settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    settings.LEDGER_WITNESSES = []
    fill(2)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        checkpoint_create()
    assert callbacks == []


def test_409_when_we_forgot_the_witness_size_is_recovered(witnesses: Any) -> None:
    (w1,) = witnesses("honest")
    checkpoint_witness(checkpoint_id=checkpoint_of(5).pk)
    # The log's record of the witness is lost (a restored database): it sends old 0, the witness says 5.
    WitnessState.objects.filter(name=w1.name).delete()
    checkpoint = checkpoint_of(4)
    outcome = checkpoint_witness(checkpoint_id=checkpoint.pk)
    assert outcome.cosigned == [w1.name]
    assert state(w1.name).size == checkpoint.tree_size


def test_409_from_a_witness_with_an_older_state_is_recovered(witnesses: Any, tmp_path: Any, caplog: Any) -> None:
    (w1,) = witnesses("honest")
    checkpoint_witness(checkpoint_id=checkpoint_of(3).pk)
    saved = tmp_path / "older-state"
    shutil.copyfile(w1.state_path, saved)
    checkpoint_witness(checkpoint_id=checkpoint_of(3).pk)
    # The witness comes back with the state of size 3 while the log thinks it is at 6.
    w1.stop()
    shutil.copyfile(saved, w1.state_path)
    w1.restart()
    checkpoint = checkpoint_of(3)
    outcome = checkpoint_witness(checkpoint_id=checkpoint.pk)
    assert outcome.cosigned == [w1.name]
    assert state(w1.name).size == checkpoint.tree_size
    assert "it lost its state" in caplog.text  # cosigned again, but the operator is told


def test_a_lying_witness_is_recorded_not_looped_on_and_stores_nothing(witnesses: Any) -> None:
    honest, liar = witnesses("honest", "lying_size")
    checkpoint = checkpoint_of(5)
    started = time.monotonic()
    outcome = checkpoint_witness(checkpoint_id=checkpoint.pk)
    assert time.monotonic() - started < 3
    assert outcome.cosigned == [honest.name]
    assert outcome.results[liar.name].startswith("refused:")
    assert not WitnessCosignature.objects.filter(witness=liar.name).exists()
    record = state(liar.name)
    assert record.refusals == 1 and record.refused_size == checkpoint.tree_size and "size" in record.last_error
    assert record.size == 0  # its claim was not believed
    # The periodic resubmission does not ask it again about the same checkpoint.
    assert checkpoint_witness(checkpoint_id=checkpoint.pk, only_behind=True).results[liar.name] == "skipped"


def test_a_cosignature_by_another_key_is_refused_and_never_stored(witnesses: Any) -> None:
    honest, impostor = witnesses("honest", "wrong_key")
    checkpoint = checkpoint_of(5)
    outcome = checkpoint_witness(checkpoint_id=checkpoint.pk)
    assert outcome.cosigned == [honest.name]
    assert outcome.results[impostor.name].startswith("refused:")
    assert list(WitnessCosignature.objects.values_list("witness", flat=True)) == [honest.name]
    assert state(impostor.name).refusals == 1
    assert state(impostor.name).cosigned_size == 0


def test_a_slow_witness_does_not_delay_the_others(witnesses: Any) -> None:
    honest, slow = witnesses("honest", "slow")
    checkpoint = checkpoint_of(5)
    started = time.time()
    outcome = checkpoint_witness(checkpoint_id=checkpoint.pk)
    assert sorted(outcome.cosigned) == sorted([honest.name, slow.name])
    received = {r.witness: r.received_at.timestamp() - started for r in WitnessCosignature.objects.all()}
    assert received[honest.name] < 1.5, received
    assert received[slow.name] >= 2.5, received


def test_a_witness_slower_than_the_timeout_is_recorded_unreachable(witnesses: Any, settings: Any) -> None:
    honest, slow = witnesses("honest", "slow")
    settings.LEDGER_WITNESS_TIMEOUT = 0.5
    checkpoint = checkpoint_of(5)
    started = time.monotonic()
    outcome = checkpoint_witness(checkpoint_id=checkpoint.pk)
    assert time.monotonic() - started < 2.9
    assert outcome.cosigned == [honest.name]
    assert slow.name in outcome.transient
    assert state(slow.name).failures == 1 and state(slow.name).refusals == 0


def test_an_unreachable_witness_is_an_error_not_a_crash(witnesses: Any, settings: Any) -> None:
    (w1,) = witnesses("honest")
    w1.stop()
    outcome = checkpoint_witness(checkpoint_id=checkpoint_of(2).pk)
    assert outcome.results[w1.name].startswith("error: no answer")
    assert outcome.transient == [w1.name]


def test_a_witness_that_does_not_know_the_log_key_answers_403(witness_factory: Any, settings: Any) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from audit.note import public_bytes, verifier_key
    from tests.audit.witnessing.helpers import configure

    other = verifier_key(settings.LEDGER_ORIGIN, public_bytes(Ed25519PrivateKey.generate().public_key()))
    stranger = witness_factory(log_vkeys=[other], name="stranger.test")
    configure(settings, [stranger])
    outcome = checkpoint_witness(checkpoint_id=checkpoint_of(2).pk)
    assert "403" in outcome.results[stranger.name]
    assert state(stranger.name).refusals == 1


def test_a_witness_ahead_of_our_latest_checkpoint_is_refused(witnesses: Any) -> None:
    (w1,) = witnesses("honest")
    checkpoint = checkpoint_of(3)
    # As if checkpoints the witness saw had been removed here.
    WitnessState.objects.create(name=w1.name, verifier_key=w1.verifier_key, size=10)
    outcome = checkpoint_witness(checkpoint_id=checkpoint.pk)
    assert "larger than our latest checkpoint" in outcome.results[w1.name]


def test_the_checkpoint_api_serves_the_published_note(witnesses: Any, token_for: Any) -> None:
    witnesses("honest", "honest")
    checkpoint = checkpoint_of(3)
    checkpoint_witness(checkpoint_id=checkpoint.pk)
    client = token_for(["ledger:read"])
    latest = client.get("/api/v1/ledger/checkpoint")
    assert latest.status_code == 200
    assert latest.content.decode() == published_note(checkpoint) != checkpoint.note
    listed = client.get("/api/v1/ledger/checkpoints").json()["results"][0]["note"]
    assert listed == published_note(checkpoint)
    assert len(verify_cosignatures(listed, cosigners())) == 2
