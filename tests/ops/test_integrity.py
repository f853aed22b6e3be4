"""Scheduled verification: incremental and full runs, stored, recorded, and a violation on tampering."""
from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from audit import ledger
from audit.models import Entry, PendingEntry, VerificationRun
from audit.selectors import ledger_size
from audit.services.checkpoints import checkpoint_create
from audit.services.integrity import last_verification, verification_run
from audit.tasks import verify_full, verify_incremental
from governance.models import ComplianceViolation
from tests.audit.integration.helpers import tamper
from tests.ops.helpers import notes

pytestmark = pytest.mark.django_db


def verified_entries() -> list[dict[str, object]]:
    ledger.integrate()
    return [e.payload for e in Entry.objects.filter(event_type="ledger.verified").order_by("seq")]


def test_no_run_yet() -> None:
    assert last_verification() is None


def test_first_incremental_runs_in_full_then_resumes() -> None:
    # given a ledger with a checkpoint
    notes(7)
    checkpoint_create()
    size = ledger_size()

    # when the scheduled job runs twice, with entries added in between
    first = VerificationRun.objects.get(pk=verify_incremental.apply().get())
    notes(5)
    checkpoint_create()
    second = VerificationRun.objects.get(pk=verify_incremental.apply().get())

    # then the first covered everything (as a full run), the second only what was new
    assert (first.mode, first.from_size, first.tree_size, first.ok) == ("full", 0, size, True)
    assert second.mode == "incremental"
    assert second.from_size == size
    assert second.tree_size == Entry.objects.count()
    assert second.ok is True and second.reason == ""
    assert second.duration_ms is not None and second.finished_at is not None
    assert last_verification() == second
    payloads = verified_entries()
    assert [p["mode"] for p in payloads] == ["full", "incremental"]
    assert payloads[1]["from_size"] == size and payloads[1]["ok"] is True and payloads[1]["reason"] is None
    assert not ComplianceViolation.objects.exists()


def test_incremental_root_matches_full() -> None:
    notes(9)
    verification_run(mode="full")
    notes(6)
    inc = verification_run(mode="incremental")
    full = verification_run(mode="full")
    # the full run also covers the incremental run's own ledger.verified entry
    ledger.integrate()
    assert inc.ok and full.ok
    from audit.selectors import tree_root

    assert inc.root_hash == tree_root(inc.tree_size).hex()


def _assert_violation(run: VerificationRun, reason: str) -> None:
    assert run.ok is False
    assert run.reason == reason
    assert last_verification() == run
    violation = ComplianceViolation.objects.get()
    assert violation.kind == "integrity"
    assert violation.details["verification_run"] == run.pk
    assert violation.details["reason"] == reason
    ledger.integrate()
    assert Entry.objects.filter(event_type="compliance.violation").count() == 1
    verified = Entry.objects.filter(event_type="ledger.verified").order_by("-seq").first()
    assert verified is not None and verified.payload["ok"] is False and verified.payload["reason"] == reason


def test_incremental_catches_an_edited_new_entry() -> None:
    notes(6)
    verification_run(mode="full")
    notes(4, prefix="later")
    ledger.integrate()
    victim = Entry.objects.filter(event_type="ledger.note_added").order_by("-seq").first()
    assert victim is not None
    tamper("UPDATE audit_entry SET payload_json = %s WHERE seq = %s", ['{"text":"forged"}', victim.seq])

    run = verification_run(mode="incremental")

    assert run.mode == "incremental"
    assert run.first_bad_seq == victim.seq
    _assert_violation(run, "changed_entry")


def test_incremental_catches_a_rewritten_tail_of_the_verified_part() -> None:
    notes(6)
    base = verification_run(mode="full")
    ledger.integrate()
    last = base.tree_size - 1
    tamper("UPDATE audit_entry SET entry_hash = %s WHERE seq = %s", ["ab" * 32, last])

    run = verification_run(mode="incremental")

    assert run.first_bad_seq == last
    _assert_violation(run, "changed_entry")


def test_full_run_catches_an_old_edit_and_a_checkpoint_mismatch() -> None:
    notes(8)
    checkpoint_create()
    tamper("UPDATE audit_entry SET actor_id = %s WHERE seq = 2", ["intruder"])

    run = VerificationRun.objects.get(pk=verify_full.apply().get())

    assert run.mode == "full"
    assert run.first_bad_seq == 2
    _assert_violation(run, "changed_entry")


def test_incremental_catches_a_checkpoint_over_deleted_entries() -> None:
    notes(5)
    verification_run(mode="full")
    notes(3)
    checkpoint_create()
    ledger.integrate()
    top = Entry.objects.order_by("-seq").first()
    assert top is not None
    tamper("DELETE FROM audit_entry WHERE seq = %s", [top.seq])

    run = verification_run(mode="incremental")

    _assert_violation(run, "truncated")


def test_a_failed_run_is_not_a_base_for_the_next() -> None:
    notes(4)
    verification_run(mode="full")
    tamper("UPDATE audit_entry SET actor_id = 'x' WHERE seq = 1")
    bad = verification_run(mode="full")
    assert bad.ok is False
    nxt = verification_run(mode="incremental")
    # resumes from the last *good* run (size 4), not from the failed one
    assert nxt.from_size == 4


def test_bad_mode() -> None:
    with pytest.raises(ValueError, match="mode"):
        verification_run(mode="sometimes")
    assert not VerificationRun.objects.exists()


def test_command_records_a_run() -> None:
    notes(3)
    out = StringIO()
    call_command("verify_ledger", "--record", "full", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["ok"] is True and data["mode"] == "full" and data["tree_size"] == ledger_size()
    assert VerificationRun.objects.get().pk == data["run"]
    assert PendingEntry.objects.filter(event_type="ledger.verified").count() == 1


def test_command_record_exits_1_on_tampering() -> None:
    notes(3)
    tamper("UPDATE audit_entry SET actor_id = 'x' WHERE seq = 0")
    with pytest.raises(SystemExit) as exc:
        call_command("verify_ledger", "--record", "full", stdout=StringIO())
    assert exc.value.code == 1
    assert ComplianceViolation.objects.filter(kind="integrity").count() == 1
