"""Entries with and without a request id in export bundles: verify.py accepts the optional member, and
only it; an edited request id fails."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from audit import offline_verify
from audit.canonical import body_bytes
from audit.context import request_id_bound
from audit.export.scope import parse_scope
from audit.export.service import export_create, export_run
from audit.models import Entry
from audit.services import checkpoints
from audit.signing import current_verifier_key
from tests.audit.export.helpers import members, rezip, verify, verify_subprocess
from tests.audit.integration.helpers import fill, note

pytestmark = pytest.mark.django_db

RID = "0f8fad5b-d9cb-469f-a165-70867728950e"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    fill(20, subjects=3)
    with request_id_bound(RID):
        for i in range(10):
            note(f"in a request {i}", subject=f"model/{i % 3}")
    fill(5, subjects=3, prefix="after")
    checkpoints.checkpoint_create()
    job = export_create(actor=None, scope=parse_scope(), fmt="bundle", enqueue=False)
    return Path(export_run(export_id=job.pk, out=tmp_path / "b.zip").file_path)


def test_a_bundle_with_and_without_request_ids_verifies(bundle: Path) -> None:
    # given
    bodies = [json.loads(line)["body"] for line in members(bundle)["entries.jsonl"].splitlines()]
    assert sum("request_id" in b for b in bodies) == 10
    assert sum("request_id" not in b for b in bodies) == len(bodies) - 10

    # when / then: imported, and as a recipient runs it
    report = verify(bundle)
    assert report.ok, report.failures
    assert report.entries == Entry.objects.count() - 1  # all but the export's own entry
    result = verify_subprocess(bundle, "--trusted-key", current_verifier_key())
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("strict", [False, True])
def test_an_edited_request_id_is_named(bundle: Path, tmp_path: Path, strict: bool) -> None:
    # given
    lines = members(bundle)["entries.jsonl"].splitlines()
    n = next(i for i, line in enumerate(lines) if RID.encode() in line)
    lines[n] = lines[n].replace(RID.encode(), b"forged-request-id")
    tampered = rezip(bundle, tmp_path / "t.zip", {"entries.jsonl": b"\n".join(lines) + b"\n"})

    # when
    report = offline_verify.verify_bundle(str(tampered), None, strict)

    # then
    seq = json.loads(lines[n])["body"]["seq"]
    assert not report.ok
    assert f"seq {seq}: its entry_hash does not match its body (the entry was edited)" in " ".join(report.failures)


def test_verify_py_refuses_unknown_members_and_malformed_request_ids() -> None:
    body = {"seq": 1, "timestamp": "2026-11-29T06:51:10.112233Z", "event_type": "a.b",
            "actor": {"type": "user", "id": "1"}, "subject": {"type": "t", "id": "i"}, "payload": {},
            "prev_hash": "0" * 64, "subject_prev": None}
    offline_verify._check_body_shape(body)
    offline_verify._check_body_shape({**body, "request_id": RID})
    for bad in ("", "x" * 65, "a b", 'q"', 7, None):
        with pytest.raises(ValueError, match="request_id"):
            offline_verify._check_body_shape({**body, "request_id": bad})
    with pytest.raises(ValueError, match="exactly the members"):
        offline_verify._check_body_shape({**body, "request": RID})


def test_fields_of_canonical_with_a_request_id_are_what_json_gives() -> None:
    rng = random.Random(7)
    alphabet = "abcXYZ019._:-"
    for i in range(2000):
        rid = None if i % 3 == 0 else "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 64)))
        seq = rng.randint(0, 10**9)
        payload = json.dumps({"request_id": "x", "prev_hash": "y", "seq": 3, "t": rng.random()},
                             separators=(",", ":"), sort_keys=True)
        raw = body_bytes(seq=seq, timestamp="2026-11-29T06:51:10.112233Z", event_type="a.b", actor_type="user",
                         actor_id=str(i), subject_type="t", subject_id=f"s/{i}", payload_json=payload,
                         prev_hash=rng.getrandbits(256).to_bytes(32, "big").hex(),
                         subject_prev=rng.choice([None, seq // 2]), request_id=rid)
        entry = offline_verify.fields_of_canonical(raw, b"h")
        expected = offline_verify.Entry.from_body(json.loads(raw), b"h")
        assert entry is not None
        assert (entry.seq, entry.prev_hash, entry.subject, entry.subject_prev, entry.timestamp) == (
            expected.seq, expected.prev_hash, expected.subject, expected.subject_prev, expected.timestamp)
    # a request id verify.py would refuse is left to the full parse (which names the problem)
    raw = body_bytes(seq=1, timestamp="2026-11-29T06:51:10.112233Z", event_type="a.b", actor_type="user",
                     actor_id="1", subject_type="t", subject_id="i", payload_json="{}", prev_hash="0" * 64,
                     subject_prev=None, request_id="bad id")
    assert offline_verify.fields_of_canonical(raw, b"h") is None
