"""verify.py trusts nothing in the bundle: keys, witnesses and kept checkpoints come from the reader.

Each attack of issue #14 fails with a named reason; without any anchor the bundle is at best
"NOT ANCHORED" (exit 3), never VERIFIED.
"""
from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

from audit import offline_verify
from audit.models import Checkpoint
from audit.note import CheckpointBody, sign_note
from audit.selectors import consistency_proof, tree_root
from audit.services import checkpoints
from audit.signing import signing_key
from tests.audit.export.helpers import Export, members, rezip
from tests.audit.integration.helpers import fill
from tests.audit.verifying.helpers import cosignature_line, cosigner_vkey, log_vkey, note_text, run_verify

pytestmark = pytest.mark.django_db

W1, W2 = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
W1_NAME, W2_NAME = "witness-1.test", "witness-2.test"


def cosigned(bundle: Path, out: Path, *lines: str) -> Path:
    """The bundle with cosignature lines added to checkpoint.txt (the manifest re-hashed)."""
    note = members(bundle)["checkpoint.txt"].decode()
    return rezip(bundle, out, {"checkpoint.txt": (note + "".join(lines)).encode()})


def cosig(bundle: Path, key: Ed25519PrivateKey, name: str, *, at: int | None = None) -> str:
    text = note_text(members(bundle)["checkpoint.txt"].decode())
    return cosignature_line(text, name=name, key=key, timestamp=int(time.time()) if at is None else at)


# --- (a) a forged bundle that lists its own key ------------------------------------------------------------


def test_a_bundle_forged_with_its_own_key_is_never_verified(small_ledger: str, export: Export) -> None:
    # given: the ledger's real key, which the reader got from the operator's published list, and a bundle
    # made (by anyone) with another key, that key listed in its own keys.txt
    real_key = log_vkey(Ed25519PrivateKey.generate(), settings.LEDGER_ORIGIN)
    forged = export()
    assert small_ledger in members(forged)["keys.txt"].decode()

    # when: run as `export_audit` used to print it, without anchors
    bare = run_verify(forged)

    # then: everything it can check passes, but it says so, and that NOTHING ANCHORS IT
    assert bare.returncode == 3, bare.stdout + bare.stderr
    assert "VERIFIED" not in bare.stdout and "NOTHING ANCHORS IT" in bare.stdout
    as_json = json.loads(run_verify(forged, "--json").stdout)
    assert (as_json["ok"], as_json["anchored"], as_json["verdict"], as_json["exit_code"]) == (
        True, False, "NOT ANCHORED", 3)

    # and with the real key: it fails, naming the checkpoint's signature
    anchored = run_verify(forged, "--trusted-key", real_key, "--json")
    assert anchored.returncode == 1
    report = json.loads(anchored.stdout)
    assert report["verdict"] == "FAILED" and "bad_signature" in report["reasons"]


def test_a_genuine_bundle_with_the_real_key_is_verified_and_says_what_a_witness_adds(
        small_ledger: str, export: Export, tmp_path: Path) -> None:
    bundle = export()
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"# the ledger's keys, from its operator's signed letter\n{small_ledger} from=0\n")

    result = run_verify(bundle, "--trusted-keys-file", str(keys_file))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "verdict: VERIFIED" in result.stdout and "a witness (--witness-key)" in result.stdout


# --- (b) a history rewritten with a retired key ------------------------------------------------------------


def test_a_retired_key_cannot_sign_a_larger_tree(small_ledger: str, export: Export) -> None:
    # given: the reader's key list after a rotation at tree size 10: the old key until=10, the new from=10.
    # The bundle (a rewritten history, as an old key's holder makes it) is signed by the old key only.
    new_key = log_vkey(Ed25519PrivateKey.generate(), settings.LEDGER_ORIGIN)
    bundle = export()

    result = run_verify(bundle, "--json", "--trusted-key", f"{small_ledger} until=10",
                        "--trusted-key", f"{new_key} from=10")

    # then
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["reasons"] == ["retired_key"]
    assert any(f"{small_ledger} (retired: until=10)" in f for f in report["failures"])
    # and the same key, valid for these sizes, verifies (the rule, not the key, refused it)
    ok = run_verify(bundle, "--trusted-key", f"{small_ledger} until=1000")
    assert ok.returncode == 0, ok.stdout


def test_a_key_used_before_its_lifetime_is_refused(small_ledger: str, export: Export) -> None:
    report = offline_verify.verify_bundle(str(export()), [f"{small_ledger} from=100000"])
    assert not report.ok and "bad_signature" in report.reasons


# --- (d) witnesses ------------------------------------------------------------------------------------------


def test_a_quorum_of_witness_cosignatures_anchors_the_bundle(
        small_ledger: str, export: Export, tmp_path: Path) -> None:
    bundle = export()
    both = cosigned(bundle, tmp_path / "both.zip", cosig(bundle, W1, W1_NAME), cosig(bundle, W2, W2_NAME))
    witnesses = tmp_path / "witnesses.txt"
    witnesses.write_text(f"# c2sp.org/tlog-policy lines\nwitness w1 {cosigner_vkey(W1_NAME, W1)}\n"
                         f"witness w2 {cosigner_vkey(W2_NAME, W2)} https://w2.example\nquorum none\n")

    result = run_verify(both, "--trusted-key", small_ledger, "--witnesses-file", str(witnesses), "--json")

    report = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout
    assert report["verdict"] == "VERIFIED" and report["quorum"] == 2 and set(report["witnesses"]) == {
        W1_NAME, W2_NAME}
    assert any(a.startswith("witness quorum 2 of 2") for a in report["anchors"])


def test_a_missing_cosignature_fails_the_quorum(small_ledger: str, export: Export, tmp_path: Path) -> None:
    bundle = export()
    one = cosigned(bundle, tmp_path / "one.zip", cosig(bundle, W1, W1_NAME))
    keys = ["--trusted-key", small_ledger, "--witness-key", cosigner_vkey(W1_NAME, W1),
            "--witness-key", cosigner_vkey(W2_NAME, W2)]

    # the default quorum is every witness given
    missing = offline_verify.main([str(one), *keys])
    report = offline_verify.verify_bundle(str(one), [small_ledger], witness_keys=keys[3::2])
    assert missing == 1 and report.reasons == ["witness_quorum"]
    # one of two is enough when the reader says so
    assert offline_verify.main([str(one), *keys, "--quorum", "1"]) == 0
    # a quorum larger than the witnesses given is a usage error
    assert offline_verify.main([str(one), *keys, "--quorum", "3"]) == 2


def test_a_forged_cosignature_line_fails_the_quorum(small_ledger: str, export: Export, tmp_path: Path) -> None:
    bundle = export()
    # signed by another key under the witness's name and key ID: what an operator without the witness's key makes
    genuine = base64.b64decode(cosig(bundle, W1, W1_NAME).split(" ")[2])
    impostor = base64.b64decode(cosig(bundle, Ed25519PrivateKey.generate(), W1_NAME).split(" ")[2])
    forged_line = f"\u2014 {W1_NAME} {base64.b64encode(genuine[:4] + impostor[4:]).decode()}\n"
    forged = cosigned(bundle, tmp_path / "forged.zip", forged_line)
    # a genuine cosignature of ANOTHER checkpoint (an older one) pasted on this one
    older = members(bundle)[next(n for n in members(bundle) if n.startswith("checkpoints/0"))].decode()
    pasted = cosigned(bundle, tmp_path / "pasted.zip",
                      cosignature_line(note_text(older), name=W1_NAME, key=W1, timestamp=int(time.time())))

    for tampered in (forged, pasted):
        report = offline_verify.verify_bundle(str(tampered), [small_ledger],
                                              witness_keys=[cosigner_vkey(W1_NAME, W1)])
        assert not report.ok and report.reasons == ["witness_quorum"], report.failures
        assert any("does not verify" in f for f in report.failures)


def test_a_cosignature_dated_in_the_future_does_not_count(small_ledger: str, export: Export, tmp_path: Path) -> None:
    bundle = export()
    future = cosigned(bundle, tmp_path / "future.zip", cosig(bundle, W1, W1_NAME, at=int(time.time()) + 86_400))

    report = offline_verify.verify_bundle(str(future), [small_ledger], witness_keys=[cosigner_vkey(W1_NAME, W1)])

    assert report.reasons == ["witness_quorum"] and any("in the future" in f for f in report.failures)


# --- (e) a checkpoint the reader kept -------------------------------------------------------------------------


def test_a_kept_earlier_checkpoint_of_the_bundle_anchors_it(small_ledger: str, export: Export, tmp_path: Path) -> None:
    bundle = export()
    kept = tmp_path / "kept.txt"
    kept.write_bytes(members(bundle)[next(n for n in members(bundle) if n.startswith("checkpoints/0"))])

    report = json.loads(run_verify(bundle, "--trusted-key", small_ledger, "--known-checkpoint", str(kept),
                                   "--json").stdout)

    assert report["verdict"] == "VERIFIED" and any(a.startswith("known checkpoint") for a in report["anchors"])


def test_a_kept_checkpoint_larger_than_the_bundle_fails_truncated(
        small_ledger: str, export: Export, tmp_path: Path) -> None:
    # given: the reader kept a checkpoint of a larger tree (the operator then removed the tail)
    bundle = export()
    fill(2, prefix="seen by the reader")
    larger = checkpoints.checkpoint_create()
    assert larger is not None
    kept = tmp_path / "kept.txt"
    kept.write_text(larger.note)

    result = run_verify(bundle, "--trusted-key", small_ledger, "--known-checkpoint", str(kept), "--json")

    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["reasons"] == ["truncated"]


def test_a_kept_checkpoint_with_another_root_fails_forked(small_ledger: str, export: Export, tmp_path: Path) -> None:
    # given: a checkpoint of the bundle's own size, signed by the same key over another root (a second history)
    bundle = export()
    head = Checkpoint.objects.order_by("-tree_size").first()
    assert head is not None
    other = CheckpointBody(origin=settings.LEDGER_ORIGIN, tree_size=head.tree_size, root_hash=bytes(32)).text()
    kept = tmp_path / "kept.txt"
    kept.write_text(sign_note(other, [(settings.LEDGER_ORIGIN, signing_key())]))

    report = offline_verify.verify_bundle(str(bundle), [small_ledger],
                                          known_checkpoints=[(str(kept), kept.read_text())])

    assert report.reasons == ["forked"]


def test_a_kept_smaller_checkpoint_needs_a_consistency_proof_in_the_bundle(
        small_ledger: str, export: Export, tmp_path: Path) -> None:
    # given: the reader kept a checkpoint of size 7, which is not among the bundle's checkpoints
    bundle = export()
    head = json.loads(members(bundle)["manifest.json"])["checkpoint"]["tree_size"]
    seven = CheckpointBody(origin=settings.LEDGER_ORIGIN, tree_size=7, root_hash=tree_root(7)).text()
    kept = [("kept-7", sign_note(seven, [(settings.LEDGER_ORIGIN, signing_key())]))]

    # when the bundle carries no proof from it: named, not anchored
    report = offline_verify.verify_bundle(str(bundle), [small_ledger], known_checkpoints=kept)
    assert report.reasons == ["unproven_consistency"]

    # when it carries one (a consistency.jsonl line from size 7 to checkpoint.txt): anchored
    proof = consistency_proof(old_size=7, new_size=head)
    line = json.dumps({"from": "size:7", "to": "checkpoint.txt", "old_size": 7, "new_size": head,
                       "consistency": [h.hex() for h in proof.path]}, separators=(",", ":")) + "\n"
    files = members(bundle)
    with_proof = rezip(bundle, tmp_path / "p.zip", {
        "checkpoints/consistency.jsonl": files["checkpoints/consistency.jsonl"] + line.encode()})
    report = offline_verify.verify_bundle(str(with_proof), [small_ledger], known_checkpoints=kept)
    assert report.verified, report.failures
    assert "known checkpoint kept-7 (tree size 7)" in report.anchors

    # and a kept checkpoint of size 7 with another root: the proof fails, forked
    forked = CheckpointBody(origin=settings.LEDGER_ORIGIN, tree_size=7, root_hash=tree_root(6)).text()
    report = offline_verify.verify_bundle(
        str(with_proof), [small_ledger],
        known_checkpoints=[("kept-7", sign_note(forked, [(settings.LEDGER_ORIGIN, signing_key())]))])
    assert report.reasons == ["forked"]


def test_unreadable_anchor_files_exit_2(small_ledger: str, export: Export, tmp_path: Path) -> None:
    bundle = export()
    bad = tmp_path / "bad.txt"
    bad.write_text("not-a-key from=1\n")

    assert offline_verify.main([str(bundle), "--trusted-keys-file", str(tmp_path / "missing.txt")]) == 2
    assert offline_verify.main([str(bundle), "--trusted-keys-file", str(bad)]) == 2
    assert offline_verify.main([str(bundle), "--known-checkpoint", str(tmp_path / "missing.txt")]) == 2
