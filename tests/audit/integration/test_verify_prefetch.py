"""verify_ledger on PostgreSQL outside a transaction: pages prefetched on a second connection, one snapshot."""
from __future__ import annotations

import threading
from typing import Any

import pytest

from audit import ledger
from audit.services import checkpoints
from audit.verification import verify_ledger
from tests.audit.integration.helpers import fill, note, tamper

pytestmark = pytest.mark.usefixtures("on_postgres", "committing_db")


def test_prefetching_verification_agrees_with_the_plain_one_and_reports_progress() -> None:
    # given: several pages of entries and checkpoints
    fill(120, subjects=7)
    checkpoints.checkpoint_create()
    fill(33, subjects=5)
    checkpoints.checkpoint_create()
    seen: list[tuple[int, int | None]] = []

    # when
    fast = verify_ledger(chunk=16, progress=lambda done, total: seen.append((done, total)))
    plain = verify_ledger(chunk=16, prefetch=False)

    # then
    assert fast.ok and plain.ok, (fast.detail, plain.detail)
    assert (fast.entries, fast.root_hash, fast.checkpoints) == (plain.entries, plain.root_hash, plain.checkpoints)
    assert seen[-1] == (fast.entries, fast.entries)


def test_prefetching_verification_finds_tampering_and_stops_its_reader() -> None:
    fill(100, subjects=3)
    checkpoints.checkpoint_create()
    tamper("UPDATE audit_entry SET payload_json = %s WHERE seq = 10", ['{"text":"forged"}'])
    before = threading.active_count()

    result = verify_ledger(chunk=8)

    assert (result.ok, result.reason, result.first_bad_seq) == (False, "changed_entry", 10)
    assert threading.active_count() == before  # the reader thread was joined


def test_entries_and_checkpoints_written_during_verification_are_not_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    # given: verification reads one snapshot; a writer integrates and signs a bigger tree meanwhile
    fill(50, subjects=3)
    checkpoints.checkpoint_create()
    at_start = verify_ledger().entries
    from audit import verification

    real = verification.check_checkpoint
    wrote: list[bool] = []

    def write_meanwhile(*args: Any) -> None:
        real(*args)
        if not wrote:
            wrote.append(True)
            done = threading.Event()

            def other_process() -> None:
                from django.db import connection

                try:
                    for i in range(20):
                        note(f"late {i}")
                    ledger.integrate()
                    checkpoints.checkpoint_create()
                finally:
                    connection.close()
                    done.set()

            threading.Thread(target=other_process).start()
            done.wait(30)

    monkeypatch.setattr(verification, "check_checkpoint", write_meanwhile)

    # when
    result = verify_ledger(chunk=8)

    # then: consistent, and exactly the state at the start (no "truncated" from the later checkpoint)
    assert result.ok, result.detail
    assert result.entries == at_start
    assert verify_ledger().entries > at_start
