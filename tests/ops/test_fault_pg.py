"""Fault test (PostgreSQL): a sequencer killed with SIGKILL mid-batch loses nothing and forks nothing.

The kill must land *inside* the integration transaction, after the batch's entries
were written. To make that deterministic the test holds a SHARE lock on
``audit_subjecthead``: the sequencer (a separate ``manage.py shell`` process) copies
the entries and Merkle nodes, then blocks on its subject-head upsert, still inside
its transaction. The test sees it waiting in ``pg_stat_activity``, kills it, lets
the lock go and restarts the sequencer.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection, transaction

from audit import ledger
from audit.ledger import Actor, Subject
from audit.models import Entry, LedgerHead, PendingEntry
from audit.verification import verify_ledger

N = 400
ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _waiting_sequencer(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """The backend pid of the sequencer once it waits for our lock inside its subject-head upsert."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            assert proc.stderr is not None
            raise AssertionError(f"the sequencer exited early: {proc.stderr.read().decode()[-2000:]}")
        with connection.cursor() as cursor:
            # Inside a transaction the activity view is a snapshot unless cleared.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND wait_event_type = 'Lock' AND query ILIKE '%%audit_subjecthead%%'"
            )
            row = cursor.fetchone()
        if row:
            return int(row[0])
        time.sleep(0.05)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid, state, wait_event_type, wait_event, left(query, 120) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        activity = cursor.fetchall()
    proc.kill()
    assert proc.stderr is not None
    raise AssertionError(f"the sequencer never reached its subject-head upsert: {activity} "
                         f"{proc.stderr.read().decode()[-3000:]}")


@pytest.mark.postgres
def test_sigkill_mid_batch_loses_nothing_and_forks_nothing(on_postgres: None, committing_db: None) -> None:
    # given N committed pending entries over a few subjects (some already in the tree)
    with transaction.atomic():
        for i in range(5):
            ledger.record(event_type="ledger.note_added", actor=Actor.system("fault"), subject=Subject("model", "m0"),
                          payload={"text": f"before {i}"})
    ledger.integrate()
    with transaction.atomic():
        recorded = [
            ledger.record(event_type="ledger.note_added", actor=Actor.system("fault"),
                          subject=Subject("model", f"m{i % 7}"), payload={"text": f"pending {i}"}).pending_id
            for i in range(N)
        ]
    assert PendingEntry.objects.count() == N
    env = {**os.environ, "DATABASE_URL": _database_url(), "LEDGER_INTEGRATE_BATCH": str(N * 2)}

    # when a sequencer process is killed while its batch transaction is open
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLE audit_subjecthead IN SHARE MODE")
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "shell", "-c", "from audit.ledger import integrate; integrate()"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            backend = _waiting_sequencer(proc)
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
    # (the lock is released here; the orphaned backend finds its client gone and rolls back)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [backend])
            if cursor.fetchone()[0] == 0:
                break
        time.sleep(0.05)
    else:
        raise AssertionError("the killed sequencer's backend did not go away")

    # then nothing of the batch was committed
    assert Entry.objects.count() == 5
    assert PendingEntry.objects.count() == N
    assert LedgerHead.objects.get(pk=1).tree_size == 5

    # when the sequencer is restarted
    assert ledger.integrate() == N

    # then every pending entry is integrated exactly once, seq is contiguous and the ledger verifies
    assert PendingEntry.objects.count() == 0
    seqs = list(Entry.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(N + 5))
    integrated = list(Entry.objects.filter(seq__gte=5).order_by("seq").values_list("pending_id", flat=True))
    assert integrated == sorted(recorded)
    assert LedgerHead.objects.get(pk=1).tree_size == N + 5
    result = verify_ledger()
    assert result.ok, result.detail
    assert result.entries == N + 5
