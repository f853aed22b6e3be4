"""Export bundles verify with verify.py (imported, and run as a recipient runs it), and every kind of
tampering makes it fail naming what failed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import ledger, note
from audit.ledger import Actor, Subject, record
from audit.models import Checkpoint, Entry, ExportJob
from audit.signing import current_verifier_key
from tests.audit.export.helpers import Export, members, rezip, verify, verify_subprocess
from tests.audit.integration.helpers import note as record_note

pytestmark = pytest.mark.django_db

FILES = {"manifest.json", "README.txt", "verify.py", "entries.jsonl", "proofs.jsonl", "boundaries.jsonl",
         "export-entry.json", "checkpoint.txt", "keys.txt"}


def entries_of(bundle: Path) -> list[dict]:
    return [json.loads(line) for line in members(bundle)["entries.jsonl"].splitlines()]


# --- genuine bundles verify ---------------------------------------------------------------------------


def test_a_full_export_verifies_imported_and_as_a_recipient_runs_it(history: None, export: Export) -> None:
    bundle = export()

    files = members(bundle)
    assert FILES <= set(files)
    assert any(name.startswith("checkpoints/") for name in files)  # the earlier checkpoints and consistency
    assert "checkpoints/consistency.jsonl" in files
    entries = entries_of(bundle)
    stored = list(Entry.objects.filter(event_type="ledger.note_added").order_by("seq"))
    assert len(entries) == Entry.objects.count() - 1  # all but the export's own entry
    # each body is the entry exactly as hashed, with its hash
    for line, raw in zip(entries[:50], files["entries.jsonl"].splitlines()[:50], strict=True):
        entry = Entry.objects.get(seq=line["body"]["seq"])
        assert raw == b'{"body":' + entry.canonical_body() + f',"entry_hash":"{entry.entry_hash}"}}'.encode()
    assert stored  # sanity
    report = verify(bundle)
    assert report.ok, report.failures
    assert report.entries == len(entries) and report.first_seq == 0 and report.completeness == "ledger"
    assert report.keys_source == "bundle"

    result = verify_subprocess(bundle)
    assert result.returncode == 3, result.stdout + result.stderr  # nothing outside the bundle anchors it
    assert "VERIFIED" not in result.stdout and "NOTHING ANCHORS IT" in result.stdout
    assert f"entries: {len(entries):,}, seq 0..{len(entries) - 1}" in result.stdout
    assert "keys: 1 taken from the bundle's keys.txt" in result.stdout
    assert "complete for the range" in result.stdout
    anchored = verify_subprocess(bundle, "--trusted-key", current_verifier_key())
    assert anchored.returncode == 0 and "verdict: VERIFIED" in anchored.stdout

    as_json = verify_subprocess(bundle, "--json", "--strict", "--trusted-key", current_verifier_key())
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["verdict"] == "VERIFIED"


def test_a_per_model_export_verifies_and_holds_only_the_models_subjects(story: dict, export: Export) -> None:
    bundle = export("--model", "fraud-detector")

    approved, rejected, unrelated = story["approved"], story["rejected"], story["unrelated"]
    subjects = {(e["body"]["subject"]["type"], e["body"]["subject"]["id"]) for e in entries_of(bundle)}
    assert ("promotion_request", str(approved.pk)) in subjects
    assert ("promotion_request", str(rejected.pk)) in subjects
    assert ("registered_model", "fraud-detector") in subjects  # the violation
    assert ("promotion_request", str(unrelated.pk)) not in subjects
    assert all(t in ("promotion_request", "registered_model", "model_version") for t, _ in subjects)
    expected = Entry.objects.filter(subject_type="promotion_request", subject_id=str(approved.pk)).count()
    assert sum(1 for e in entries_of(bundle) if e["body"]["subject"]["id"] == str(approved.pk)) == expected
    manifest = json.loads(members(bundle)["manifest.json"])
    assert manifest["completeness"] == "subjects" and manifest["scope"]["model"] == "fraud-detector"

    report = verify(bundle)
    assert report.ok, report.failures
    assert report.completeness == "subjects" and report.complete_subjects == len(manifest["scope"]["subjects"])
    result = verify_subprocess(bundle, "--trusted-key", current_verifier_key())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "complete for" in result.stdout and "verdict: VERIFIED" in result.stdout


def test_subject_and_time_range_exports_prove_their_ends_with_boundary_entries(history: None, export: Export) -> None:
    seqs = list(Entry.objects.filter(subject_id="model/1").order_by("seq").values_list("seq", "timestamp"))
    since, until = seqs[5][1], seqs[-6][1]

    by_subject = export("--subject", "model_version:model/1", "--since", since, "--until", until)
    report = verify(by_subject)
    assert report.ok, report.failures
    got = [e["body"]["seq"] for e in entries_of(by_subject)]
    assert got == [s for s, _ in seqs[5:-5]]
    roles = [json.loads(line)["role"] for line in members(by_subject)["boundaries.jsonl"].splitlines()]
    assert roles == ["before", "after"]

    by_time = export("--since", since, "--until", until)
    report = verify(by_time)
    assert report.ok, report.failures
    assert report.first_seq == seqs[5][0] and report.completeness == "ledger"


def test_filtered_and_empty_exports_verify_without_claiming_completeness(history: None, export: Export) -> None:
    filtered = export("--event-type", "ledger.signing_key_registered")
    report = verify(filtered)
    assert report.ok, report.failures
    assert report.entries == 1 and report.completeness == "none"
    assert "not claimed" in verify_subprocess(filtered).stdout

    nothing = export("--subject", "dataset:never-written")
    report = verify(nothing)
    assert report.ok, report.failures
    assert report.entries == 0 and report.completeness == "subjects"


def test_personal_data_stays_a_commitment_in_the_bundle(history: None, export: Export) -> None:
    record(event_type="auth.user_registered", actor=Actor.system("tests"), subject=Subject("user", "900042"),
           payload={"username": "zelda-secret-name", "email": "zelda@example.test"})
    ledger.integrate()

    bundle = export("--subject", "user:900042")

    data = b"".join(members(bundle).values())
    assert b"zelda" not in data
    (entry,) = entries_of(bundle)
    assert set(entry["body"]["payload"]["username"]) == {"pii", "commitment"}
    assert verify(bundle).ok


def test_trusted_keys_supplied_by_the_recipient(history: None, export: Export) -> None:
    bundle = export()
    mine = current_verifier_key()

    report = verify(bundle, mine)
    assert report.ok and report.keys_source == "supplied"
    result = verify_subprocess(bundle, "--trusted-key", mine)
    assert result.returncode == 0 and "supplied with --trusted-key" in result.stdout

    stranger = note.verifier_key(mine.split("+")[0], note.public_bytes(Ed25519PrivateKey.generate().public_key()))
    result = verify_subprocess(bundle, "--trusted-key", stranger)
    assert result.returncode == 1
    assert "checkpoint checkpoint.txt: no signature by a trusted key" in result.stdout


def test_the_bundle_is_anchored_to_a_new_checkpoint_when_none_covers_the_export(history: None,
                                                                                 export: Export) -> None:
    before = Checkpoint.objects.count()
    bundle = export()
    job = ExportJob.objects.get()
    assert Checkpoint.objects.count() == before + 1
    assert job.checkpoint_size == Checkpoint.objects.order_by("-id").first().tree_size > job.ledger_seq
    manifest = json.loads(members(bundle)["manifest.json"])
    assert manifest["checkpoint"]["tree_size"] == job.checkpoint_size
    assert manifest["export_entry_seq"] == job.ledger_seq


# --- tampering ---------------------------------------------------------------------------------------------


def failures(bundle: Path) -> str:
    """verify.py's verdict on a tampered bundle: it must fail; its output names what failed."""
    result = verify_subprocess(bundle)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "verdict: FAILED" in result.stdout
    imported = verify(bundle)
    assert not imported.ok
    return result.stdout


def test_an_edited_entry_is_named(history: None, export: Export, tmp_path: Path) -> None:
    bundle = export()
    lines = members(bundle)["entries.jsonl"].splitlines()
    lines[100] = lines[100].replace(b'"text":"bulk', b'"text":"BULK')
    tampered = rezip(bundle, tmp_path / "t.zip", {"entries.jsonl": b"\n".join(lines) + b"\n"})

    out = failures(tampered)
    seq = json.loads(lines[100])["body"]["seq"]
    assert f"seq {seq}: its entry_hash does not match its body (the entry was edited)" in out


def test_an_edited_entry_with_its_hash_recomputed_fails_its_inclusion_proof(history: None, export: Export,
                                                                            tmp_path: Path) -> None:
    bundle = export()
    lines = members(bundle)["entries.jsonl"].splitlines()
    body = json.loads(lines[7])["body"]
    body["payload"]["text"] = "rewritten history"
    from audit.offline_verify import canonicalize, leaf_hash

    raw = canonicalize(body)
    lines[7] = b'{"body":' + raw + b',"entry_hash":"' + leaf_hash(raw).hex().encode() + b'"}'
    tampered = rezip(bundle, tmp_path / "t.zip", {"entries.jsonl": b"\n".join(lines) + b"\n"})

    out = failures(tampered)
    assert f"proof seq {body['seq']}: the inclusion proof does not lead to the root of checkpoint.txt" in out
    assert f"chain: entry seq {body['seq'] + 1}'s prev_hash is not the hash of entry seq {body['seq']}" in out


def test_a_dropped_entry_inside_a_subjects_range_is_named(story: dict, export: Export, tmp_path: Path) -> None:
    bundle = export("--model", "fraud-detector")
    request = str(story["approved"].pk)
    files = members(bundle)
    entries, proofs = files["entries.jsonl"].splitlines(), files["proofs.jsonl"].splitlines()
    positions = [i for i, line in enumerate(entries) if json.loads(line)["body"]["subject"]["id"] == request]
    assert len(positions) >= 3
    drop = positions[1]
    dropped = json.loads(entries[drop])["body"]["seq"]
    del entries[drop], proofs[drop]
    tampered = rezip(bundle, tmp_path / "t.zip", {"entries.jsonl": b"\n".join(entries) + b"\n",
                                                 "proofs.jsonl": b"\n".join(proofs) + b"\n"})

    out = failures(tampered)
    before = json.loads(files["entries.jsonl"].splitlines()[positions[0]])["body"]["seq"]
    after = json.loads(files["entries.jsonl"].splitlines()[positions[2]])["body"]["seq"]
    assert (f"completeness of promotion_request:{request}: entries are missing between seq {before} and seq {after} "
            f"(seq {after} links to {dropped})") in out


def test_a_dropped_last_entry_of_a_subject_is_named(story: dict, export: Export, tmp_path: Path) -> None:
    bundle = export("--model", "fraud-detector")
    request = str(story["rejected"].pk)
    files = members(bundle)
    entries, proofs = files["entries.jsonl"].splitlines(), files["proofs.jsonl"].splitlines()
    last = max(i for i, line in enumerate(entries) if json.loads(line)["body"]["subject"]["id"] == request)
    del entries[last], proofs[last]
    tampered = rezip(bundle, tmp_path / "t.zip", {"entries.jsonl": b"\n".join(entries) + b"\n",
                                                 "proofs.jsonl": b"\n".join(proofs) + b"\n"})

    assert f"completeness of promotion_request:{request}: entries after seq" in failures(tampered)


def test_a_changed_proof_hash_is_named(history: None, export: Export, tmp_path: Path) -> None:
    bundle = export()
    lines = members(bundle)["proofs.jsonl"].splitlines()
    proof = json.loads(lines[1234])
    proof["inclusion"][3] = ("0" if proof["inclusion"][3][0] != "0" else "1") + proof["inclusion"][3][1:]
    lines[1234] = json.dumps(proof, separators=(",", ":")).encode()
    tampered = rezip(bundle, tmp_path / "t.zip", {"proofs.jsonl": b"\n".join(lines) + b"\n"})

    assert (f"proof seq {proof['seq']}: the inclusion proof does not lead to the root of checkpoint.txt"
            in failures(tampered))


def test_a_swapped_checkpoint_is_named(history: None, export: Export, tmp_path: Path) -> None:
    bundle = export()
    files = members(bundle)
    earlier = sorted(n for n in files if n.startswith("checkpoints/") and n.endswith(".txt"))[-1]
    tampered = rezip(bundle, tmp_path / "t.zip", {"checkpoint.txt": files[earlier]})

    out = failures(tampered)
    assert "it is for tree size" in out  # every proof is against the anchor's tree size
    assert "export entry: its inclusion proof does not lead to the root of checkpoint.txt" in out


def test_a_signature_by_an_unknown_key_is_named(history: None, export: Export, tmp_path: Path) -> None:
    bundle = export()
    signed = members(bundle)["checkpoint.txt"].decode()
    text = signed[: signed.index("\n\n") + 1]
    name = text.split("\n")[0]
    forged = note.sign_note(text, [(name, Ed25519PrivateKey.generate())])
    tampered = rezip(bundle, tmp_path / "t.zip", {"checkpoint.txt": forged.encode()})

    assert "checkpoint checkpoint.txt: no signature by a trusted key (1 by unknown keys)" in failures(tampered)


def test_a_forger_who_adds_their_key_to_keys_txt_is_caught_by_a_supplied_key(history: None, export: Export,
                                                                            tmp_path: Path) -> None:
    bundle = export()
    files = members(bundle)
    signed = files["checkpoint.txt"].decode()
    text = signed[: signed.index("\n\n") + 1]
    name = text.split("\n")[0]
    key = Ed25519PrivateKey.generate()
    forged = note.sign_note(text, [(name, key)])
    keys = files["keys.txt"] + note.verifier_key(name, note.public_bytes(key.public_key())).encode() + b"\n"
    tampered = rezip(bundle, tmp_path / "t.zip", {"checkpoint.txt": forged.encode(), "keys.txt": keys})

    assert not verify(tampered, current_verifier_key()).ok
    result = verify_subprocess(tampered, "--trusted-key", current_verifier_key())
    assert result.returncode == 1
    assert "checkpoint checkpoint.txt: no signature by a trusted key" in result.stdout
    assert "keys.txt lists 1 key(s) you did not supply" in result.stdout


def test_a_manifest_mismatch_is_named(history: None, export: Export, tmp_path: Path) -> None:
    bundle = export()
    readme = members(bundle)["README.txt"] + b"\nNothing to see here.\n"
    tampered = rezip(bundle, tmp_path / "t.zip", {"README.txt": readme}, fix_manifest=False)

    out = failures(tampered)
    assert "manifest: README.txt does not match its SHA-256 in manifest.json (the file was changed)" in out


def test_extra_and_missing_files_are_named(history: None, export: Export, tmp_path: Path) -> None:
    bundle = export()
    tampered = rezip(bundle, tmp_path / "t.zip", {"notes.txt": b"extra", "README.txt": None}, fix_manifest=False)

    out = failures(tampered)
    assert "manifest: README.txt is listed in manifest.json but missing from the bundle" in out
    assert "manifest: notes.txt is in the bundle but not listed in manifest.json" in out


def test_a_narrowed_scope_in_the_manifest_is_named(story: dict, export: Export, tmp_path: Path) -> None:
    """The scope is the one the ledger signed (ledger.exported), not whatever the manifest says."""
    bundle = export("--model", "fraud-detector")
    manifest = json.loads(members(bundle)["manifest.json"])
    manifest["scope"]["subjects"] = manifest["scope"]["subjects"][:1]
    tampered = rezip(bundle, tmp_path / "t.zip", {"manifest.json": json.dumps(manifest).encode()})

    assert "manifest: its scope differs from the scope the ledger recorded for this export" in failures(tampered)


def test_dropping_a_consistency_proof_or_reordering_entries_is_named(history: None, export: Export,
                                                                     tmp_path: Path) -> None:
    bundle = export()
    files = members(bundle)
    no_consistency = rezip(bundle, tmp_path / "a.zip", {"checkpoints/consistency.jsonl": b""})
    assert "consistency: no proof from checkpoints/" in failures(no_consistency)

    entries, proofs = files["entries.jsonl"].splitlines(), files["proofs.jsonl"].splitlines()
    entries[10], entries[11] = entries[11], entries[10]
    proofs[10], proofs[11] = proofs[11], proofs[10]
    swapped = rezip(bundle, tmp_path / "b.zip", {"entries.jsonl": b"\n".join(entries) + b"\n",
                                                "proofs.jsonl": b"\n".join(proofs) + b"\n"})
    assert "entries are not in increasing seq order" in failures(swapped)


def test_an_unreadable_bundle_exits_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    from audit import offline_verify

    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    result = subprocess.run([sys.executable, "-I", offline_verify.__file__, str(junk), "--json"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2 and json.loads(result.stdout)["verdict"] == "UNREADABLE"


def test_a_note_recorded_during_the_export_stays_out_of_it(history: None, export: Export) -> None:
    """The scope is fixed when the export is recorded: later entries are not part of it."""
    record_note("recorded before")
    bundle = export()
    assert verify(bundle).ok
    last = entries_of(bundle)[-1]["body"]
    assert last["seq"] == ExportJob.objects.get().ledger_seq - 1
