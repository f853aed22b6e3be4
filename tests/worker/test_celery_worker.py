"""The ledger's scheduled work through a real Celery worker and beat on a real broker.

Runs when CELERY_WORKER_TEST_BROKER_URL names a broker (``.ci/run`` sets it to
Redis) and the database is PostgreSQL, which the worker process shares with
this test.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection, transaction

from audit.ledger import Actor, Subject, record
from audit.models import Checkpoint, Entry, PendingEntry
from audit.verification import verify_ledger

BROKER = os.environ.get("CELERY_WORKER_TEST_BROKER_URL")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.celery_worker,
    pytest.mark.skipif(not BROKER, reason="set CELERY_WORKER_TEST_BROKER_URL to run a real worker"),
]


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def worker(committing_db: None, on_postgres: None, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        CELERY_BROKER_URL=BROKER or "",
        LEDGER_INTEGRATE_INTERVAL="0.5",
        LEDGER_CHECKPOINT_INTERVAL="1",
        LEDGER_INTEGRATE_ON_COMMIT="0",
    )
    env.pop("CELERY_WORKER_TEST_BROKER_URL", None)
    # Start from an empty queue: tasks left by an earlier run would only add noise.
    Celery(broker=BROKER).connection_for_write().default_channel.queue_purge("celery")
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "governance", "worker", "-B", "--pool=solo",
         "--loglevel=INFO", "-s", str(tmp_path / "beat-schedule")],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        sys.stdout.write((tmp_path / "worker.log").read_text(errors="replace")[-3000:])


def test_worker_beat_integrates_and_checkpoints_committed_entries(worker: subprocess.Popen[bytes]) -> None:
    # given: entries committed by this process, which only appends to the intake queue
    for i in range(25):
        with transaction.atomic():
            record(
                event_type="ledger.note_added",
                actor=Actor.system("worker-test"),
                subject=Subject("registered_model", f"m{i % 4}"),
                payload={"text": f"note {i}"},
            )
    assert PendingEntry.objects.count() == 25

    # when: the worker's beat schedule runs the sequencer and signs checkpoints
    _wait_for(lambda: Entry.objects.count() >= 25, 60, "the worker to integrate the entries")
    _wait_for(
        lambda: Checkpoint.objects.filter(tree_size__gte=Entry.objects.count()).exists(),
        60,
        "a checkpoint covering every entry",
    )

    # then: nothing pending, chain intact, checkpoint signed by the same key
    assert PendingEntry.objects.count() == 0
    result = verify_ledger()
    assert result.ok, result
    assert worker.poll() is None, "the worker died"


def test_task_sent_through_the_broker_runs_on_the_worker(worker: subprocess.Popen[bytes]) -> None:
    # given: a checkpoint task sent by name through the real broker
    with transaction.atomic():
        record(
            event_type="ledger.note_added",
            actor=Actor.system("worker-test"),
            subject=Subject("registered_model", "fraud-detector"),
            payload={"text": "sent"},
        )
    client = Celery(broker=BROKER)

    # when
    client.send_task("audit.tasks.make_checkpoint")

    # then
    _wait_for(lambda: Checkpoint.objects.filter(tree_size__gte=2).exists(), 60, "the sent task to run")
    assert verify_ledger().ok
