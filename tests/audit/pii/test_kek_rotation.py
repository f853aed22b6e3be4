"""KEK rotation: LEDGER_PII_KEK_PREVIOUS keeps old keys readable, pii_kek_rotate re-wraps them in batches."""
from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from access.roles import AUDITOR, INFOSEC
from audit import ledger, pii
from audit.ledger import Subject
from audit.models import DataSubjectKey, Entry, PendingEntry
from audit.verification import verify_ledger
from tests.audit.pii.helpers import EMAIL, NAME, SYSTEM, register_event
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]
# Random, so that "no key material in the output" checks cannot pass by accident on a trivial pattern.
RAW_A, RAW_B, RAW_C = os.urandom(32), os.urandom(32), os.urandom(32)
KEK_A, KEK_B, KEK_C = (base64.b64encode(raw).decode() for raw in (RAW_A, RAW_B, RAW_C))
ID_A, ID_B, ID_C = (pii.kek_id(raw) for raw in (RAW_A, RAW_B, RAW_C))


@pytest.fixture
def kek(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Settings with KEK A current and no previous KEK (nothing from the environment)."""
    monkeypatch.delenv("LEDGER_PII_KEK", raising=False)
    monkeypatch.delenv("LEDGER_PII_KEK_PREVIOUS", raising=False)
    settings.LEDGER_PII_KEK = KEK_A
    settings.LEDGER_PII_KEK_PREVIOUS = None
    yield settings


def _people(n: int, *, first: int = 900042) -> list[str]:
    # Ids far above the fixture users' pks: erasing user:<pk> anonymises that account (e.g. the InfoSec reader).
    for i in range(first, first + n):
        register_event(str(i), username=f"person{i}x7f3a", email=f"p{i}.7f3a@example.org", full_name=NAME)
    ledger.integrate()
    return [f"user:{i}" for i in range(first, first + n)]


def _rows() -> dict[str, tuple[str, bytes | None]]:
    return {
        r.data_subject: (r.kek_id, bytes(r.key) if r.key is not None else None)
        for r in DataSubjectKey.objects.order_by("data_subject")
    }


def _key_material(subjects: list[str]) -> list[str]:
    """Every KEK and subject key, in the encodings a leak would most likely take."""
    raws = [RAW_A, RAW_B, RAW_C] + [k for k in (pii.subject_key(s) for s in subjects) if k is not None]
    out: list[str] = []
    for raw in raws:
        out += [raw.hex(), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("=")]
    return out


def _rotated_entries() -> list[dict[str, Any]]:
    ledger.integrate()
    return [e.payload for e in Entry.objects.filter(event_type="privacy.kek_rotated").order_by("seq")]


def test_rotation_rewraps_old_keys_and_values_reveal_throughout(kek: Any, infosec: Any) -> None:
    # given: three people recorded under KEK A, one of them erased
    subjects = _people(3)
    keys_before = {s: pii.subject_key(s) for s in subjects}
    pii.data_subject_erase(actor=SYSTEM, data_subject="user:900044", reason="DP-1")
    ledger.integrate()
    erased_before = DataSubjectKey.objects.get(data_subject="user:900044")

    # when: B becomes the current KEK and A the previous one
    kek.LEDGER_PII_KEK, kek.LEDGER_PII_KEK_PREVIOUS = KEK_B, KEK_A

    # then: the application keeps working before the rotation ran: old keys unwrap, new keys are wrapped with B
    assert pii.reveal(actor=infosec, seq=0, reason="r")["email"] == "p900042.7f3a@example.org"
    register_event("900042", username="again7f3a", email="again.7f3a@example.org", full_name=None)
    register_event("900050", username="new7f3a", email=EMAIL, full_name=None)
    ledger.integrate()
    assert _rows()["user:900042"][0] == ID_A and _rows()["user:900050"][0] == ID_B
    before = _rows()

    seen: list[tuple[int, int | None]] = []
    count = pii.pii_kek_rotate(actor=SYSTEM, batch_size=1, progress=lambda done, total: seen.append((done, total)))

    # then: the one live key under A (user:900043 too) was re-wrapped; the key bytes inside are unchanged
    assert count == 2
    after = _rows()
    assert {s: k for s, (k, _) in after.items()} == {
        "user:900042": ID_B, "user:900043": ID_B, "user:900044": ID_A, "user:900050": ID_B}
    assert after["user:900042"][1] != before["user:900042"][1]
    assert after["user:900043"][1] != before["user:900043"][1]
    assert after["user:900050"] == before["user:900050"]
    assert {s: pii.subject_key(s) for s in ("user:900042", "user:900043")} == {
        s: keys_before[s] for s in ("user:900042", "user:900043")}
    # and: the erased row is untouched (still no key, still marked with the KEK it had)
    erased_after = DataSubjectKey.objects.get(data_subject="user:900044")
    assert (erased_after.key, erased_after.kek_id, erased_after.erased_at) == (
        None, ID_A, erased_before.erased_at)
    assert seen[0] == (0, 2) and seen[-1] == (2, 2)
    # and: one ledger entry, ids and counts only
    entries = _rotated_entries()
    assert entries == [{"from_kek_id": ID_A, "to_kek_id": ID_B, "rewrapped": 2, "live_keys": 3}]
    rotated = Entry.objects.get(event_type="privacy.kek_rotated")
    assert (rotated.actor_type, rotated.actor_id) == (SYSTEM.type, SYSTEM.id)
    assert (rotated.subject_type, rotated.subject_id) == ("ledger", "pii_kek")
    for secret in _key_material(["user:900042", "user:900043", "user:900050"]):
        assert secret not in rotated.payload_json

    # when: the previous KEK is removed
    kek.LEDGER_PII_KEK_PREVIOUS = None

    # then: everything still reveals, and the ledger verifies
    assert pii.reveal(actor=infosec, seq=0, reason="r")["email"] == "p900042.7f3a@example.org"
    assert pii.reveal(actor=infosec, seq=1, reason="r")["email"] == "p900043.7f3a@example.org"
    assert pii.reveal(actor=infosec, seq=2, reason="r")["email"] == "[erased]"
    assert verify_ledger().ok


def test_a_second_run_rewraps_nothing_and_still_records_the_run(kek: Any) -> None:
    _people(2)
    kek.LEDGER_PII_KEK, kek.LEDGER_PII_KEK_PREVIOUS = KEK_B, KEK_A
    assert pii.pii_kek_rotate(actor=SYSTEM) == 2
    rows = _rows()

    assert pii.pii_kek_rotate(actor=SYSTEM) == 0

    assert _rows() == rows
    assert [e["rewrapped"] for e in _rotated_entries()] == [2, 0]


def test_without_keys_under_the_previous_kek_nothing_is_rewrapped(kek: Any) -> None:
    kek.LEDGER_PII_KEK, kek.LEDGER_PII_KEK_PREVIOUS = KEK_B, KEK_A
    assert pii.pii_kek_rotate(actor=SYSTEM) == 0
    assert _rotated_entries() == [{"from_kek_id": ID_A, "to_kek_id": ID_B, "rewrapped": 0, "live_keys": 0}]


@pytest.mark.parametrize(
    ("current", "previous", "message"),
    [
        (KEK_B, None, "LEDGER_PII_KEK_PREVIOUS is not set"),
        (KEK_A, KEK_A, "same KEK"),
        (KEK_C, KEK_B, f"wrapped with KEK {ID_A}, which is neither"),
    ],
    # The keys are random per process: ids must not show them, or pytest-xdist's workers disagree.
    ids=["no-previous-kek", "same-kek", "neither-kek"],
)
def test_refusals_change_nothing(kek: Any, current: str, previous: str | None, message: str) -> None:
    # given: keys under A, and one under B
    _people(2)
    kek.LEDGER_PII_KEK = KEK_B
    register_event("900060", username="b7f3a", email=None, full_name=None)
    kek.LEDGER_PII_KEK = KEK_A
    rows = _rows()
    assert rows["user:900060"][0] == ID_B and rows["user:900042"][0] == ID_A
    pending = PendingEntry.objects.count()
    kek.LEDGER_PII_KEK, kek.LEDGER_PII_KEK_PREVIOUS = current, previous

    with pytest.raises(pii.PiiError, match=message):
        pii.pii_kek_rotate(actor=SYSTEM)

    assert _rows() == rows
    assert PendingEntry.objects.count() == pending
    assert _rotated_entries() == []


def test_a_bad_batch_size_is_refused(kek: Any) -> None:
    kek.LEDGER_PII_KEK, kek.LEDGER_PII_KEK_PREVIOUS = KEK_B, KEK_A
    for bad in (0, -1, True):
        with pytest.raises(pii.PiiError, match="batch_size"):
            pii.pii_kek_rotate(actor=SYSTEM, batch_size=bad)


def test_an_unknown_kek_id_is_still_refused_with_a_previous_kek(kek: Any, infosec: Any) -> None:
    _people(1)
    kek.LEDGER_PII_KEK, kek.LEDGER_PII_KEK_PREVIOUS = KEK_C, KEK_B
    with pytest.raises(ImproperlyConfigured, match=f"wrapped with KEK {ID_A}.*LEDGER_PII_KEK_PREVIOUS is {ID_B}"):
        pii.reveal(actor=infosec, seq=0, reason="r")


def test_a_crash_in_a_later_batch_keeps_earlier_batches_and_a_rerun_finishes(
    kek: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Inside the test's transaction each batch is a savepoint: released (kept) when it succeeds and rolled
    # back alone when it fails, as a commit and a rollback would be. A transactional test would flush the
    # roles created by migrations for the tests that follow.
    # given: five keys under A, rotation in batches of two
    subjects = _people(5)
    keys = {s: pii.subject_key(s) for s in subjects}
    kek.LEDGER_PII_KEK, kek.LEDGER_PII_KEK_PREVIOUS = KEK_B, KEK_A
    real_wrap = pii._wrap
    calls = {"n": 0}

    def failing_wrap(k: bytes, data_subject: str, key: bytes) -> bytes:
        calls["n"] += 1
        if calls["n"] == 5:  # the first key of the third batch
            raise RuntimeError("simulated crash")
        return real_wrap(k, data_subject, key)

    monkeypatch.setattr(pii, "_wrap", failing_wrap)

    # when: the run crashes in its third batch
    with pytest.raises(RuntimeError, match="simulated crash"):
        pii.pii_kek_rotate(actor=SYSTEM, batch_size=2)

    # then: the first two batches are done, the last key is still wholly under A, nothing was recorded
    by_kek = [k for k, _ in _rows().values()]
    assert sorted(by_kek) == sorted([ID_A] + [ID_B] * 4)
    assert {s: pii.subject_key(s) for s in subjects} == keys  # every key readable (A via the previous KEK)
    assert _rotated_entries() == []

    # when: the rerun completes
    monkeypatch.setattr(pii, "_wrap", real_wrap)
    assert pii.pii_kek_rotate(actor=SYSTEM, batch_size=2) == 1

    # then: all under B, the same keys, one entry saying every live key is under B
    assert {k for k, _ in _rows().values()} == {ID_B}
    kek.LEDGER_PII_KEK_PREVIOUS = None
    assert {s: pii.subject_key(s) for s in subjects} == keys
    assert _rotated_entries() == [{"from_kek_id": ID_A, "to_kek_id": ID_B, "rewrapped": 1, "live_keys": 5}]


def test_the_command_rotates_and_prints_no_key_material(kek: Any, capsys: pytest.CaptureFixture[str]) -> None:
    subjects = _people(3)
    officer = UserFactory(username="dpo", roles=[INFOSEC])
    kek.LEDGER_PII_KEK, kek.LEDGER_PII_KEK_PREVIOUS = KEK_B, KEK_A
    out, err = StringIO(), StringIO()

    call_command("rotate_pii_kek", "--batch-size", "2", "--actor", "dpo", stdout=out, stderr=err)

    text = out.getvalue()
    assert f"re-wrapped 3 data subject key(s) from KEK {ID_A} to KEK {ID_B}" in text
    assert "all 3 live key(s)" in text
    printed = text + err.getvalue() + "".join(capsys.readouterr())
    for secret in _key_material(subjects):
        assert secret not in printed
    ledger.integrate()
    entry = Entry.objects.get(event_type="privacy.kek_rotated")
    assert (entry.actor_type, entry.actor_id) == ("user", str(officer.pk))
    # a second run reports 0
    out = StringIO()
    call_command("rotate_pii_kek", stdout=out)
    assert "re-wrapped 0 data subject key(s)" in out.getvalue()


def test_the_command_refuses_clearly(kek: Any) -> None:
    _people(1)
    UserFactory(username="aud", roles=[AUDITOR])
    with pytest.raises(CommandError, match="LEDGER_PII_KEK_PREVIOUS is not set"):
        call_command("rotate_pii_kek", stdout=StringIO())
    kek.LEDGER_PII_KEK, kek.LEDGER_PII_KEK_PREVIOUS = KEK_B, KEK_A
    with pytest.raises(CommandError, match="not an InfoSec member"):
        call_command("rotate_pii_kek", "--actor", "aud", stdout=StringIO())
    with pytest.raises(CommandError, match="no active user"):
        call_command("rotate_pii_kek", "--actor", "ghost", stdout=StringIO())
    with pytest.raises(CommandError, match="at least 1"):
        call_command("rotate_pii_kek", "--batch-size", "0", stdout=StringIO())
    assert _rows()["user:900042"][0] == ID_A


def test_a_record_about_a_subject_keeps_working_mid_rotation(kek: Any) -> None:
    # A writer holds the key row (FOR NO KEY UPDATE) and unwraps it with the previous KEK.
    _people(1)
    kek.LEDGER_PII_KEK, kek.LEDGER_PII_KEK_PREVIOUS = KEK_B, KEK_A
    ledger.record(event_type="auth.user_registered", actor=SYSTEM, subject=Subject("user", "900042"),
                  payload={"username": "renamed7f3a"})
    assert _rows()["user:900042"][0] == ID_A


# --- the setting is checked at start-up ---------------------------------------------------------------


def _check(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    prefixes = ("DEBUG", "SECRET_KEY", "LEDGER_", "DATABASE", "MLFLOW_")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    environ.update(VAR_DIR=str(tmp_path / "var"), **overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("bad", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_malformed_previous_kek_stops_the_process(tmp_path: Path, bad: str) -> None:
    result = _check(tmp_path, LEDGER_PII_KEK=KEK_B, LEDGER_PII_KEK_PREVIOUS=bad)
    assert result.returncode != 0
    assert "LEDGER_PII_KEK_PREVIOUS must be the base64 of 32 random bytes" in result.stderr
    assert bad not in result.stderr


def test_a_well_formed_previous_kek_is_accepted(tmp_path: Path) -> None:
    result = _check(tmp_path, LEDGER_PII_KEK=KEK_B, LEDGER_PII_KEK_PREVIOUS=KEK_A)
    assert result.returncode == 0, result.stderr
