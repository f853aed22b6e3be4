"""Witnesses as anchors outside the operator: what a database owner deletes or rewrites, they remember.

End to end with two real witnesses: build a ledger, checkpoint, get it cosigned, then
tamper as the DBA (triggers off, raw SQL) and run the scheduled verification.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import triggers
from audit.canonical import ZERO_HASH, leaf_hash
from audit.cosignature import Cosigner, cosignature_line
from audit.merkle import CompactRange, node_key
from audit.models import Checkpoint, Entry, WitnessCosignature, WitnessState
from audit.note import CheckpointBody, sign_note
from audit.services.checkpoints import checkpoint_create
from audit.services.integrity import verification_run
from audit.services.witnessing import checkpoint_witness, witness_anchors
from audit.signing import key_name, signing_key
from tests.audit.integration.helpers import fill, raw, reference_root, tamper

pytestmark = pytest.mark.django_db


@pytest.fixture
def cosigned(witnesses: Any) -> list[Any]:
    """13 entries (the key's registration and 12 notes), checkpointed at 11 and 13, cosigned by two honest witnesses."""
    running = witnesses("honest", "honest")
    fill(10)
    first = checkpoint_create()
    assert first is not None and checkpoint_witness(checkpoint_id=first.pk).cosigned
    fill(2)
    second = checkpoint_create()
    assert second is not None and len(checkpoint_witness(checkpoint_id=second.pk).cosigned) == 2
    return running


def test_anchors_are_the_witnesses_latest_cosigned_checkpoints(cosigned: list[Any]) -> None:
    anchors, messages = witness_anchors()
    assert messages == []
    latest = Checkpoint.objects.order_by("-tree_size").first()
    assert latest is not None
    assert sorted(a.source for a in anchors) == sorted(f"witness {w.name}" for w in cosigned)
    assert {(a.size, a.root.hex()) for a in anchors} == {(13, latest.root_hash)}


def test_an_unreachable_witness_is_a_message_not_an_anchor(cosigned: list[Any]) -> None:
    cosigned[1].stop()
    anchors, messages = witness_anchors()
    assert len(anchors) == 1 and len(messages) == 1 and cosigned[1].name in messages[0]


def test_a_witness_that_cosigned_nothing_is_a_message(witnesses: Any) -> None:
    witnesses("honest")
    anchors, messages = witness_anchors()
    assert anchors == [] and "cosigned no checkpoint" in messages[0]


def _delete_tail(keep: int) -> None:
    """As the DBA: drop every checkpoint (and its cosignatures) and the entries from ``keep`` on."""
    tamper("DELETE FROM audit_witnesscosignature")
    tamper("DELETE FROM audit_checkpoint")
    tamper("DELETE FROM audit_entry WHERE seq >= %s", [keep])
    tamper("UPDATE audit_ledgerhead SET tree_size = %s, last_hash = "
           "(SELECT entry_hash FROM audit_entry WHERE seq = %s)", [keep, keep - 1])


@pytest.mark.parametrize("mode", ["incremental", "full"])
def test_deleting_checkpoints_and_the_tail_fails_the_scheduled_run_truncated(cosigned: list[Any], mode: str) -> None:
    assert verification_run(mode="full").ok
    _delete_tail(keep=8)
    assert Checkpoint.objects.count() == 0 and Entry.objects.count() == 8
    run = verification_run(mode=mode)
    assert (run.ok, run.reason) == (False, "truncated"), run.detail
    assert "witness" in run.detail and "13" in run.detail


def test_deleting_the_tail_and_writing_a_new_one_past_the_old_size_fails_forked(cosigned: list[Any]) -> None:
    """The stealthier variant: the ledger grows back beyond what the witnesses saw, with other entries."""
    _delete_tail(keep=8)
    tamper("DELETE FROM audit_merklenode")
    tree = CompactRange()
    with triggers.disabled():
        for entry_hash in Entry.objects.order_by("seq").values_list("entry_hash", flat=True):
            for level, index, node in tree.append(bytes.fromhex(entry_hash)):
                raw("INSERT INTO audit_merklenode (key, hash) VALUES (%s, %s)", [node_key(level, index), node])
        raw("DELETE FROM audit_subjecthead")
        raw("INSERT INTO audit_subjecthead (subject_type, subject_id, last_seq) "
            "SELECT subject_type, subject_id, MAX(seq) FROM audit_entry GROUP BY subject_type, subject_id")
    fill(10, prefix="replacement")
    assert Entry.objects.count() == 18 and checkpoint_create() is not None
    run = verification_run(mode="full")
    assert (run.ok, run.reason) == (False, "forked"), run.detail


def test_without_witnesses_the_same_deletion_goes_unnoticed(cosigned: list[Any], settings: Any) -> None:
    """Why witnesses: nothing inside the database remembers the size (the issue's first case)."""
    _delete_tail(keep=8)
    settings.LEDGER_WITNESSES = []
    settings.LEDGER_WITNESS_QUORUM = 0
    assert verification_run(mode="full").ok


def _rewrite_and_resign(seq: int, text: str) -> None:
    """As the DBA holding the signing key: rewrite entry ``seq``, re-hash the rest, re-sign every checkpoint."""
    entries = list(Entry.objects.order_by("seq"))
    prev = entries[seq - 1].entry_hash if seq else ZERO_HASH
    with triggers.disabled():
        for entry in entries[seq:]:
            if entry.seq == seq:
                entry.payload_json = entry.payload_json.replace("note", text, 1)
            entry.prev_hash = prev
            entry.entry_hash = leaf_hash(entry.canonical_body()).hex()
            raw("UPDATE audit_entry SET payload_json = %s, prev_hash = %s, entry_hash = %s WHERE seq = %s",
                [entry.payload_json, entry.prev_hash, entry.entry_hash, entry.seq])
            prev = entry.entry_hash
        raw("DELETE FROM audit_witnesscosignature")
        leaves = [bytes.fromhex(e.entry_hash) for e in entries]
        tree = CompactRange()
        for leaf in leaves:
            for level, index, node in tree.append(leaf):
                raw("UPDATE audit_merklenode SET hash = %s WHERE key = %s", [node, node_key(level, index)])
        for checkpoint in Checkpoint.objects.all():
            root = reference_root(leaves[: checkpoint.tree_size])
            body = CheckpointBody(origin=key_name(), tree_size=checkpoint.tree_size, root_hash=root)
            note = sign_note(body.text(), [(key_name(), signing_key())])
            raw("UPDATE audit_checkpoint SET root_hash = %s, note = %s WHERE id = %s",
                [root.hex(), note, checkpoint.pk])


def test_rewriting_history_and_re_signing_fails_the_scheduled_run_forked(cosigned: list[Any]) -> None:
    _rewrite_and_resign(3, "forged")
    run = verification_run(mode="full")
    assert (run.ok, run.reason) == (False, "forked"), run.detail
    assert "witness" in run.detail


def test_a_fork_is_refused_by_the_witnesses_too(cosigned: list[Any]) -> None:
    """The rewritten log cannot get a cosignature: the witnesses remember the old tree."""
    _rewrite_and_resign(3, "forged")
    # Ask with the re-signed checkpoint of 13: the witnesses already cosigned a different root at 13.
    latest = Checkpoint.objects.order_by("-tree_size").first()
    assert latest is not None
    outcome = checkpoint_witness(checkpoint_id=latest.pk)
    assert outcome.cosigned == []
    assert not WitnessCosignature.objects.exists()


# --- a witness replaying a real cosignature of another checkpoint --------------------------------------


class _Replay(BaseHTTPRequestHandler):
    answer = b""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(self.answer)))
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def replay_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Replay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_cosignature_for_another_checkpoint_is_refused(
    witnesses: Any, settings: Any, replay_server: ThreadingHTTPServer
) -> None:
    (honest,) = witnesses("honest")
    fill(3)
    old = checkpoint_create()
    assert old is not None and checkpoint_witness(checkpoint_id=old.pk).cosigned
    stolen = WitnessCosignature.objects.get(checkpoint=old).line
    # Someone answering for the witness (its name and key ID) with its genuine cosignature of the old checkpoint.
    _Replay.answer = stolen.encode()
    settings.LEDGER_WITNESSES = [{"name": honest.name, "verifier_key": honest.verifier_key,
                                  "url": f"http://127.0.0.1:{replay_server.server_address[1]}"}]
    WitnessState.objects.update(size=0, cosigned_size=0)
    fill(2)
    new = checkpoint_create()
    assert new is not None
    outcome = checkpoint_witness(checkpoint_id=new.pk)
    assert outcome.results[honest.name].startswith("refused:") and "does not verify" in outcome.results[honest.name]
    assert not WitnessCosignature.objects.filter(checkpoint=new).exists()


def test_a_cosignature_dated_in_the_future_is_refused(settings: Any, replay_server: ThreadingHTTPServer) -> None:
    """A cosignature from the future would make a stale view look fresh (tlog-cosignature lets us refuse it)."""
    key = Ed25519PrivateKey.generate()
    name = "future.test"
    fill(3)
    checkpoint = checkpoint_create()
    assert checkpoint is not None
    text = checkpoint.note[: checkpoint.note.rindex("\n\n") + 1]
    _Replay.answer = cosignature_line(text, name=name, key=key, timestamp=int(time.time()) + 3600).encode()
    settings.LEDGER_WITNESSES = [{"name": name, "url": f"http://127.0.0.1:{replay_server.server_address[1]}",
                                  "verifier_key": str(Cosigner.from_key(name, key.public_key()))}]
    settings.LEDGER_WITNESS_QUORUM = 1
    outcome = checkpoint_witness(checkpoint_id=checkpoint.pk)
    assert "dated in the future" in outcome.results[name]
    assert not WitnessCosignature.objects.exists()
    # The same witness dating its cosignature now is accepted: the refusal was about the time alone.
    _Replay.answer = cosignature_line(text, name=name, key=key, timestamp=int(time.time())).encode()
    assert checkpoint_witness(checkpoint_id=checkpoint.pk).cosigned == [name]


def test_verify_ledger_witnesses_is_anchored_by_them_and_catches_the_truncation(cosigned: list[Any]) -> None:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("verify_ledger", "--witnesses", stdout=out)  # exit 0: verified and anchored
    assert "anchored" in out.getvalue() and all(w.name in out.getvalue() for w in cosigned)
    _delete_tail(keep=8)
    out = StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("verify_ledger", "--witnesses", "--json", stdout=out)
    assert exit_.value.code == 1
    assert '"truncated"' in out.getvalue()
