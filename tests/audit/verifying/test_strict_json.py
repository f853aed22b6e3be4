"""Strict JSON in both verifiers: what a reader parses must be exactly what was hashed.

A duplicate member (``"value": 999`` before the real one), non-canonical bytes, a lone surrogate or an
unsafe number is ``malformed_json`` naming the seq and the member; ``--lenient`` reports it as a warning.
"""
from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit import ledger, offline_verify
from audit.canonical import format_timestamp
from audit.models import Entry
from audit.services import checkpoints
from audit.services.integrity import verification_run
from audit.verification import verify_ledger
from tests.audit.export.helpers import Export
from tests.audit.integration.helpers import fill, raw, tamper
from tests.audit.verifying.helpers import run_verify

pytestmark = pytest.mark.django_db

DUPLICATE = '{"text":"approved","value":999,"value":1}'


def intake(payload_json: str) -> int:
    """An event written straight into the intake queue with the given payload text (the sequencer hashes it as
    it is), as someone with write access to the database can; its seq."""
    raw(
        "INSERT INTO audit_pendingentry (timestamp, event_type, actor_type, actor_id, subject_type, subject_id, "
        "payload_json, idempotency_key, request_id) VALUES (%s, %s, %s, %s, %s, %s, %s, NULL, NULL)",
        [format_timestamp(timezone.now()), "ledger.note_added", "user", "41", "model_version", "model/0",
         payload_json],
    )
    ledger.integrate()
    return Entry.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


# --- verify.py ------------------------------------------------------------------------------------------------


def test_a_duplicate_member_in_a_bundle_is_malformed_json_and_a_warning_when_lenient(
        small_ledger: str, export: Export) -> None:
    # given: an entry with "value" twice, hashed and signed as it is
    seq = intake(DUPLICATE)
    checkpoints.checkpoint_create()
    bundle = export()

    # when / then: refused by default, naming the seq and the member, in one process and with the proof worker
    for jobs in ("1", "2"):
        result = run_verify(bundle, "--trusted-key", small_ledger, "--json", "--jobs", jobs)
        report = json.loads(result.stdout)
        assert result.returncode == 1 and report["reasons"] == ["malformed_json"]
        assert any(f"seq {seq}: member 'value' appears twice" in f for f in report["failures"]), report["failures"]
    # and --lenient: a warning, then verified as before (the bytes hash to the signed leaf)
    lenient = json.loads(run_verify(bundle, "--trusted-key", small_ledger, "--json", "--lenient").stdout)
    assert lenient["verdict"] == "VERIFIED" and any(f"seq {seq}" in w for w in lenient["warnings"])


@pytest.mark.parametrize(("payload", "named"), [
    ('{"text":"a", "value":1}', "RFC 8785"),  # a space
    ('{"value":1,"text":"a"}', "RFC 8785"),  # members out of order
    ('{"text":"\\u0041"}', "RFC 8785"),  # an escape JCS does not write
    ('{"value":1.0}', "RFC 8785"),  # 1.0 is written 1
    ('{"value":12345678901234567890}', "outside +-(2^53 - 1)"),
    ('{"text":"\\ud800"}', "lone surrogate"),
])
def test_non_canonical_or_unsafe_bodies_are_malformed_json(
        small_ledger: str, export: Export, payload: str, named: str) -> None:
    seq = intake(payload)
    checkpoints.checkpoint_create()

    report = offline_verify.verify_bundle(str(export()), [small_ledger], jobs=1)

    assert report.reasons == ["malformed_json"]
    assert any(f"seq {seq}" in f and named in f for f in report.failures), report.failures
    # verify_ledger refuses the same stored payload
    result = verify_ledger()
    assert (result.ok, result.reason, result.first_bad_seq) == (False, "malformed_json", seq)


def test_the_fast_check_agrees_with_the_exact_one() -> None:
    samples = [
        b'{"a":1,"b":[true,false,null],"c":{"d":"e"}}', b'{"a":"caf\xc3\xa9"}', b'{"a":0.5}', b'{"a":1e+21}',
        b'{"b":1,"a":2}', b'{"a":1,"a":1}', b'{"a" :1}', b'{"a":"\\u00e9"}', b'{"a":"\\u001f"}', b'{"a":-0}',
        b'{"a":"\\/"}', b'{"a":NaN}', b'{"a":9007199254740992}', b'{"a":9007199254740991}', b'[1,2]', b'{}',
        '{"\ue000":1,"\U0001f600":2}'.encode(), '{"\U0001f600":2,"\ue000":1}'.encode(),
        b'{"a":0.93}', b'{"a":0.930}', b'{"a":-0.0412}', b'{"a":1e-7}', b'{"a":1e-07}', b'{"a":0.0001}',
        b'{"a":0.00001}', b'{"a":123456789.125}', b'{"a":1.0}', b'{"a":-0.0}', b'{"a":1E+21}', b'{"a":1.5e300}',
        b'{"a":100000000000000000000}', b'{"a":0.1,"b":[2.5,{"c":3.75}]}',
    ]
    for sample in samples:
        exact = offline_verify.exact_json_problem(sample) is None
        assert offline_verify.json_check(sample) is None if exact else offline_verify.json_check(sample), sample
        if offline_verify.is_exact_json(sample):
            assert exact, sample  # the fast check never accepts what the exact one refuses
    # and it takes the usual canonical numbers itself (so that metrics do not all go the slow way)
    for sample in (b'{"a":0.93}', b'{"a":-0.0412}', b'{"a":0.1,"b":[2.5,{"c":3.75}]}', b'{"a":123456789.125}'):
        assert offline_verify.is_exact_json(sample), sample


def test_a_boundary_or_export_entry_with_a_duplicate_member_is_malformed_json(
        small_ledger: str, export: Export, tmp_path: Path) -> None:
    from tests.audit.export.helpers import members, rezip

    bundle = export()
    data = members(bundle)["export-entry.json"]
    doubled = data.replace(b'{"body":', b'{"body":{"seq":0},"body":', 1)
    tampered = rezip(bundle, tmp_path / "t.zip", {"export-entry.json": doubled})

    report = offline_verify.verify_bundle(str(tampered), [small_ledger], jobs=1)

    assert "malformed_json" in report.reasons
    assert any("export-entry.json: member 'body' appears twice" in f for f in report.failures)


# --- verify_ledger ----------------------------------------------------------------------------------------------


def test_verify_ledger_refuses_a_duplicate_member_written_with_the_triggers_off() -> None:
    # given: a database owner rewrites a stored payload, "value": 999 before the real member
    fill(6)
    checkpoints.checkpoint_create()
    tamper("UPDATE audit_entry SET payload_json = %s WHERE seq = 3", ['{"text":"note 3","value":999,"value":1}'])

    # when
    result = verify_ledger()

    # then: named before any hash is compared
    assert (result.ok, result.reason, result.first_bad_seq) == (False, "malformed_json", 3)
    assert "member 'value' appears twice" in (result.detail or "")


def test_the_scheduled_incremental_run_refuses_a_duplicate_member_too() -> None:
    # given: an incremental run resumes from a successful one, then a later entry is rewritten in place
    fill(6)
    checkpoints.checkpoint_create()
    assert verification_run(mode="full").ok
    fill(4)
    checkpoints.checkpoint_create()
    tamper("UPDATE audit_entry SET payload_json = %s WHERE seq = 9", ['{"text":"note 9","value":999,"value":1}'])

    run = verification_run(mode="incremental")

    assert (run.mode, run.ok, run.reason, run.first_bad_seq) == ("incremental", False, "malformed_json", 9)


def test_verify_ledger_refuses_a_hashed_duplicate_and_lenient_reports_it() -> None:
    fill(3)
    seq = intake(DUPLICATE)
    checkpoints.checkpoint_create()

    strict = verify_ledger()
    lenient = verify_ledger(lenient=True)

    assert (strict.ok, strict.reason, strict.first_bad_seq) == (False, "malformed_json", seq)
    assert lenient.ok and any(f"entry {seq}" in w and "'value'" in w for w in lenient.warnings)
    out = StringIO()
    with pytest.raises(SystemExit) as exc:
        call_command("verify_ledger", "--json", stdout=out)
    assert exc.value.code == 1 and json.loads(out.getvalue())["reason"] == "malformed_json"


def test_float_payloads_take_the_exact_check_without_dropping_the_proof_worker(
        small_ledger: str, export: Export, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: payloads the fast check leaves to the exact one (floats, a non-ASCII member name)
    intake('{"accuracy":0.93,"big":1e+21,"loss":1e-7,"précision":0.5,"text":"café"}')
    checkpoints.checkpoint_create()
    passes: list[bool] = []
    original = offline_verify.BundleVerifier._entries_pass

    def spy(self: offline_verify.BundleVerifier, head: tuple[int, bytes], worker: object, pages: bool = False) -> None:
        passes.append(worker is not None)
        original(self, head, worker, pages)  # type: ignore[arg-type]

    monkeypatch.setattr(offline_verify.BundleVerifier, "_entries_pass", spy)

    report = offline_verify.verify_bundle(str(export()), [small_ledger], jobs=2)

    assert report.verified, report.failures
    assert passes == [True]  # the worker's answer was taken: no second pass in one process
    assert verify_ledger().ok  # and verify_ledger takes the same payload
