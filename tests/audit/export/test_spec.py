"""The export format as specified in docs/export-format.md: event catalogue in every bundle, recomputable CSV rows,
what a --model export holds (and says it leaves out), the verify command with trust anchors, witness cosignatures,
which checkpoints a bundle includes, no directory entries."""
from __future__ import annotations

import csv
import hashlib
import json
import zipfile
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

from audit import ledger, offline_verify
from audit.cosignature import Cosigner, cosigner_verifier_key, verify_cosignatures
from audit.event_catalogue import catalogue_json
from audit.export.bundle import verify_command
from audit.export.scope import parse_scope
from audit.export.service import export_create, export_run
from audit.ledger import Actor, Subject, record
from audit.models import Checkpoint, Entry
from audit.note import public_bytes, verifier_key
from audit.services import checkpoints
from audit.signing import current_verifier_key, key_name
from tests.audit.export.helpers import Export, members, verify, verify_subprocess
from tests.audit.integration.helpers import fill

pytestmark = pytest.mark.django_db

WITNESS_VKEY = cosigner_verifier_key("witness-1.test", public_bytes(Ed25519PrivateKey.generate().public_key()))


# --- the event catalogue travels with every bundle -------------------------------------------------------------


def test_every_bundle_carries_the_event_catalogue(history: None, export: Export) -> None:
    bundle = export()

    files = members(bundle)
    assert files["event-types.json"] == catalogue_json()
    manifest = json.loads(files["manifest.json"])
    assert manifest["event_types"] == "event-types.json"
    assert manifest["files"]["event-types.json"]["sha256"] == hashlib.sha256(catalogue_json()).hexdigest()
    assert "event-types.json" in files["README.txt"].decode()
    assert verify(bundle).ok


# --- the CSV: each row's hash can be recomputed -----------------------------------------------------------------


def _body_of_row(row: dict[str, str]) -> bytes:
    """The canonical body rebuilt from a CSV row exactly as docs/export-format.md ("The CSV") says."""
    def cell(name: str) -> str:
        value = row[name]
        return value[1:] if value.startswith("'") else value

    body: dict[str, Any] = {
        "seq": int(row["seq"]), "timestamp": row["timestamp"], "event_type": row["event_type"],
        "actor": {"type": row["actor_type"], "id": cell("actor_id")},
        "subject": {"type": row["subject_type"], "id": cell("subject_id")},
        "payload": json.loads(row["payload"]), "prev_hash": row["prev_hash"],
        "subject_prev": int(row["subject_prev"]) if row["subject_prev"] else None,
    }
    if row["request_id"]:
        body["request_id"] = cell("request_id")
    return offline_verify.canonicalize(body)


def test_each_csv_row_hash_can_be_recomputed_from_its_columns(history: None, export: Export) -> None:
    # ids a spreadsheet would run, or that start with the quote the CSV adds: the rule must give them back exactly
    for subject_id in ("=1+1", "'quoted", "''twice", "plain"):
        record(event_type="ledger.note_added", actor=Actor.service("@svc"), subject=Subject("model", subject_id),
               payload={"text": "é and \u2028 stay as hashed"})
    ledger.integrate()

    out = export("--format", "csv", name="all.csv")

    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == Entry.objects.count() - 1
    assert {r["subject_prev"] for r in rows} - {""}  # some rows link to an earlier entry of their subject
    for row in rows:
        digest = hashlib.sha256(b"\x00" + _body_of_row(row)).hexdigest()
        assert digest == row["entry_hash"], row["seq"]
    ids = {r["subject_id"] for r in rows if r["subject_type"] == "model"}
    assert ids == {"'=1+1", "''quoted", "'''twice", "plain"}


# --- --model: runtime telemetry and incidents are in; what cannot be is named -------------------------------------


def _runtime(event_type: str, subject: Subject, **fields: Any) -> None:
    record(event_type=event_type, actor=Actor.service("model-monitor"), subject=subject,
           payload={"source": "model-monitor", "occurred_at": "2026-11-30T10:00:00Z", **fields})


@pytest.fixture
def telemetry(db: None) -> dict[str, Any]:
    from tests.factories import ModelVersionFactory, RegisteredModelFactory

    fraud = RegisteredModelFactory(name="fraud-detector")
    ModelVersionFactory(model=fraud, version=7)
    RegisteredModelFactory(name="fraud-detector-eu")  # a prefix of another name must not leak in
    fill(5, subjects=2)
    live = Subject("model_version", "fraud-detector/0")  # a version the registry mirror never saw
    where = {"model": "fraud-detector", "version": 0, "environment": "production"}
    for i in range(6):
        _runtime("monitoring.slo_breached", live, **where, slo="p99_latency_ms", value=60 + i, threshold=50)
    _runtime("incident.opened", Subject("incident", "INC-1"), **where, incident_id="INC-1", severity="sev2",
             summary="drift")
    _runtime("incident.closed", Subject("incident", "INC-1"), **where, incident_id="INC-1")
    _runtime("incident.opened", Subject("incident", "INC-2"), model="fraud-detector-eu", incident_id="INC-2",
             severity="sev3", summary="another model's incident")
    _runtime("monitoring.slo_breached", Subject("model_version", "fraud-detector-eu/1"), model="fraud-detector-eu",
             version=1, slo="p99", value=1, threshold=0)
    _runtime("monitoring.slo_breached", Subject("model_version", "fraud-detector/x"), model="fraud-detector",
             slo="p99", value=1, threshold=0)  # not a version id: not the model's
    # naming the model without a version: about a shared subject (the environment), which holds another model too
    _runtime("deployment.rolled_back", Subject("environment", "production"), model="fraud-detector",
             environment="production", reason="bad canary")
    _runtime("deployment.rolled_back", Subject("environment", "production"), model="other",
             environment="production", reason="not ours")
    ledger.integrate()
    return {"live": live}


def test_a_model_export_includes_its_telemetry_and_incidents_and_proves_them_complete(
    telemetry: dict[str, Any], export: Export
) -> None:
    bundle = export("--model", "fraud-detector")

    report = verify(bundle)
    assert report.ok, report.failures
    assert report.completeness == "subjects"
    files = members(bundle)
    manifest = json.loads(files["manifest.json"])
    subjects = {(s["type"], s["id"]): s for s in manifest["subjects"]}
    assert ("model_version", "fraud-detector/0") in subjects and ("incident", "INC-1") in subjects
    assert subjects[("model_version", "fraud-detector/0")]["count"] == 6
    assert subjects[("incident", "INC-1")]["count"] == 2
    assert ("incident", "INC-2") not in subjects and ("model_version", "fraud-detector-eu/1") not in subjects
    assert ("model_version", "fraud-detector/x") not in subjects
    assert report.complete_subjects == len(manifest["subjects"])
    exported = [json.loads(line)["body"] for line in files["entries.jsonl"].splitlines()]
    assert sum(1 for b in exported if b["subject"] == {"type": "model_version", "id": "fraud-detector/0"}) == 6
    # the signed scope lists them, so verify.py holds every one to completeness
    recorded = Entry.objects.get(event_type="ledger.exported").payload["scope"]["subjects"]
    assert ["incident", "INC-1", Entry.objects.filter(subject_id="INC-1").order_by("-seq").first().seq] in recorded


def test_a_model_export_names_what_it_leaves_out_and_claims_nothing_for_it(
    telemetry: dict[str, Any], export: Export
) -> None:
    out = StringIO()
    target = export("--model", "fraud-detector", name="m.zip")
    files = members(target)
    manifest = json.loads(files["manifest.json"])

    assert manifest["excluded"] == [{
        "what": "runtime events naming model fraud-detector without a version",
        "why": "they are recorded about environment or reporting-system subjects that also hold other models' "
               "events; completeness is not claimed for them",
        "subjects": [{"type": "environment", "id": "production", "entries": 1}],
        "entries": 1,
        "how_to_export": "export_audit --subject TYPE:ID for each subject listed",
    }]
    assert all(s["type"] != "environment" for s in manifest["subjects"])
    assert b'"bad canary"' not in files["entries.jsonl"]
    readme = files["README.txt"].decode()
    assert "NOT INCLUDED: 1 runtime events naming model fraud-detector without a version" in readme
    assert "environment:production (1)" in readme
    # the command line says so too
    call_command("export_audit", "--out", str(target.with_name("n.zip")), "--model", "fraud-detector", stdout=out)
    assert "not included: 1 runtime events naming model fraud-detector" in out.getvalue()


def test_the_report_of_a_model_lists_its_telemetry_and_its_proof_is_labelled(
    telemetry: dict[str, Any], export: Export
) -> None:
    out = export("--model", "fraud-detector", "--format", "report", name="r.html")

    page = out.read_text(encoding="utf-8")
    own = Entry.objects.get(event_type="ledger.exported")
    assert "model_version:fraud-detector/0" in page and "incident:INC-1" in page
    assert f"Inclusion proof of entry seq {own.seq}, entry hash <code>{own.entry_hash}</code>" in page
    assert "Not included: 1 runtime events naming model fraud-detector" in page


# --- the verify command with the trust anchors filled in ---------------------------------------------------------


@override_settings(LEDGER_WITNESSES=[{"name": "witness-1.test", "url": "http://127.0.0.1:9", "verifier_key":
                                      WITNESS_VKEY}], LEDGER_WITNESS_QUORUM=1)
def test_the_command_readme_and_console_print_the_full_verify_command(history: None, export: Export,
                                                                       infosec: object) -> None:
    command = verify_command("b.zip")
    key = current_verifier_key()
    assert command == f"python verify.py b.zip --trusted-key '{key}' --witness-key '{WITNESS_VKEY}' --quorum 1"

    out = StringIO()
    target = export("--until", "2999-01-01").with_name("cmd.zip")
    call_command("export_audit", "--out", str(target), stdout=out)
    assert f"python verify.py {target} --trusted-key '{key}' --witness-key '{WITNESS_VKEY}' --quorum 1" \
        in out.getvalue()
    assert "without them verify.py exits 3" in out.getvalue()
    readme = members(target)["README.txt"].decode()
    assert f"python verify.py THIS_BUNDLE.zip --trusted-key '{key}'" in readme
    assert "exits with status 3 and does NOT say VERIFIED" in " ".join(readme.split())
    assert "channel other than this bundle" in readme
    assert "INFORMATION ONLY" in members(target)["keys.txt"].decode()

    job = export_create(actor=None, scope=parse_scope(), enqueue=False)
    export_run(export_id=job.pk)
    client = Client()
    client.force_login(infosec)  # type: ignore[arg-type]
    page = client.get(reverse("console-export", args=[job.pk])).content.decode()
    assert f"python verify.py export-{job.pk}.zip --trusted-key &#x27;{key}&#x27;" in page
    assert "--quorum 1" in page and "exits with status 3" in page


def test_without_witnesses_the_command_has_no_witness_options(db: None) -> None:
    with override_settings(LEDGER_WITNESSES=[]):
        command = verify_command()
    assert "--witness-key" not in command and "--quorum" not in command
    assert f"--trusted-key '{current_verifier_key()}'" in command


# --- witness cosignatures in the bundle ------------------------------------------------------------------------


def test_the_bundle_carries_the_witnesses_cosignatures_and_verifies_with_them(
    history: None, export: Export, witness_factory: Any, settings: Any
) -> None:
    """End to end with a real witness: the export asks it to cosign its head, verify.py checks the quorum."""
    witness = witness_factory(log_vkeys=[current_verifier_key()], name="witness-1.test")
    settings.LEDGER_WITNESSES = [{"name": witness.name, "url": witness.url, "verifier_key": witness.verifier_key}]
    settings.LEDGER_WITNESS_QUORUM = 1
    bundle = export()

    files = members(bundle)
    head = files["checkpoint.txt"].decode()
    assert verify_cosignatures(head, [Cosigner.parse(witness.verifier_key)])  # the head itself is cosigned
    assert head.startswith(Checkpoint.objects.order_by("-id").first().note)  # type: ignore[union-attr]
    trusted = ["--trusted-key", current_verifier_key()]
    anchored = verify_subprocess(bundle, *trusted, "--witness-key", witness.verifier_key, "--quorum", "1")
    assert anchored.returncode == 0, anchored.stdout + anchored.stderr
    other = cosigner_verifier_key("witness-2.test", public_bytes(Ed25519PrivateKey.generate().public_key()))
    short = verify_subprocess(bundle, *trusted, "--witness-key", witness.verifier_key, "--witness-key", other)
    assert short.returncode == 1 and "witness_quorum" in short.stdout + short.stderr  # 2 of 2 asked, 1 signed


# --- which checkpoints a bundle includes ------------------------------------------------------------------------


def test_a_bundle_includes_exactly_the_earlier_checkpoints_holding_its_lowest_entry(db: None, export: Export) -> None:
    fill(10)
    small = checkpoints.checkpoint_create()  # size 10: does not hold seq 12
    fill(10)
    holding = checkpoints.checkpoint_create()  # size 20
    again = checkpoints.checkpoint_create()  # the same tree re-signed: an identical note
    fill(5)
    ledger.integrate()
    assert small is not None and holding is not None and again is not None and again.note == holding.note
    since = Entry.objects.get(seq=12).timestamp

    bundle = export("--since", since)

    files = members(bundle)
    manifest = json.loads(files["manifest.json"])
    boundaries = [json.loads(line)["body"]["seq"] for line in files["boundaries.jsonl"].splitlines()]
    low = min([manifest["entries"]["first_seq"], manifest["export_entry_seq"], *boundaries])
    assert low == 11  # the "before" boundary
    assert manifest["checkpoints"] == [f"checkpoints/{holding.pk:012d}.txt"]  # not the small one, not the copy
    sizes = [offline_verify.parse_checkpoint(files[n].decode().split("\n\n")[0] + "\n")[1]
             for n in manifest["checkpoints"]]
    assert all(size > low for size in sizes) and sizes == sorted(sizes)
    anchor = Checkpoint.objects.order_by("-id").first()
    assert anchor is not None and anchor.tree_size > holding.tree_size
    assert files["checkpoint.txt"].decode() == anchor.note
    assert verify(bundle).ok


# --- a standard zip tool's view: files only ---------------------------------------------------------------------


def test_a_bundle_has_no_directory_entries_and_lists_every_member(history: None, export: Export) -> None:
    bundle = export()

    with zipfile.ZipFile(bundle) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert not [n for n in names if n.endswith("/") or infos[names.index(n)].is_dir()]
    assert any(n.startswith("checkpoints/") for n in names)
    manifest = json.loads(members(bundle)["manifest.json"])
    assert set(names) - {"manifest.json"} == set(manifest["files"])


# --- a checkpoint the recipient already holds --------------------------------------------------------------------


def test_since_checkpoint_adds_the_known_checkpoint_and_the_proof_from_it(db: None, export: Export) -> None:
    fill(10)
    known = checkpoints.checkpoint_create()  # size 11 (with the key's registration): below the exported range
    fill(10)
    checkpoints.checkpoint_create()
    fill(3)
    assert known is not None
    since = Entry.objects.get(seq=15).timestamp

    bundle = export("--since", since, "--since-checkpoint", str(known.tree_size))

    files = members(bundle)
    manifest = json.loads(files["manifest.json"])
    name = f"checkpoints/{known.pk:012d}.txt"
    assert manifest["checkpoints"][0] == name and files[name].decode() == known.note
    proofs = [json.loads(line) for line in files["checkpoints/consistency.jsonl"].splitlines()]
    assert proofs[0]["from"] == name and proofs[0]["old_size"] == known.tree_size
    assert manifest["scope"]["since_checkpoint"] == known.tree_size  # recorded in the signed scope
    assert manifest["entries"]["first_seq"] > known.tree_size
    assert verify(bundle).ok


@pytest.mark.parametrize(("value", "message"), [("7", "no checkpoint of tree size 7"),
                                                ("-1", "must be a tree size"), ("ten", "must be a tree size")])
def test_since_checkpoint_of_no_signed_checkpoint_is_refused_and_nothing_recorded(
    db: None, export: Export, value: str, message: str
) -> None:
    from django.core.management import CommandError

    fill(10)
    checkpoints.checkpoint_create()
    before = Entry.objects.count()
    with pytest.raises(CommandError, match=message):
        export("--since-checkpoint", value)
    ledger.integrate()
    assert Entry.objects.count() == before and not Entry.objects.filter(event_type="ledger.exported").exists()


def test_scopes_without_since_checkpoint_are_recorded_as_before(history: None, export: Export) -> None:
    export()
    scope = Entry.objects.get(event_type="ledger.exported").payload["scope"]
    assert set(scope) == {"since", "until", "event_types", "model", "dataset", "subjects", "ledger_size"}


def test_checkpoints_whose_signing_order_contradicts_their_sizes_are_refused_and_no_file_written(
    db: None, tmp_path: Path
) -> None:
    from django.core.management import CommandError

    from tests.audit.integration.helpers import tamper

    made = []
    for n in (10, 10, 3, 2):
        fill(n)
        made.append(checkpoints.checkpoint_create())
    _, second, third, _ = made
    assert second is not None and third is not None and second.tree_size < third.tree_size
    # a database owner swaps two checkpoints: signing order and tree sizes now disagree
    swap = "UPDATE audit_checkpoint SET tree_size = %s, root_hash = %s, note = %s WHERE id = %s"
    tamper(swap, [third.tree_size, third.root_hash, third.note, second.pk])
    tamper(swap, [second.tree_size, second.root_hash, second.note, third.pk])
    out = tmp_path / "refused.zip"

    with pytest.raises(CommandError, match=r"is larger than the later .*run verify_ledger"):
        call_command("export_audit", "--out", str(out), stdout=StringIO())

    assert not out.exists() and not list(tmp_path.glob(".refused.zip*"))


# --- after h-keys and h-verify: key lifetimes in the command and in keys.txt --------------------------------------


def test_key_lifetimes_fill_the_command_and_keys_txt(history: None, export: Export, settings: Any) -> None:
    key = current_verifier_key()
    retired = verifier_key(key_name(), public_bytes(Ed25519PrivateKey.generate().public_key()))
    settings.LEDGER_TRUSTED_KEYS = [f"{retired} until=3"]
    assert f"--trusted-key '{retired} until=3'" in verify_command()
    assert f"--trusted-key '{key}'" in verify_command()
    assert key in members(export())["keys.txt"].decode().splitlines()  # a key that signed nothing here is not listed
