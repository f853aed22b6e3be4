"""The ledger's scheduled work through a real Celery worker and beat on a real broker.

Runs when CELERY_WORKER_TEST_BROKER_URL names a broker (``.ci/run`` sets it to
Redis) and the database is PostgreSQL, which the worker process shares with
this test.
"""
from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import transaction

from audit.ledger import Actor, Subject, record
from audit.models import Checkpoint, Entry, PendingEntry
from audit.verification import verify_ledger
from tests.worker.launch import BROKER, broker_client, start_worker, stop_worker, wait_for

pytestmark = [
    pytest.mark.celery_worker,
    pytest.mark.skipif(not BROKER, reason="set CELERY_WORKER_TEST_BROKER_URL to run a real worker"),
]


@pytest.fixture
def worker(committing_db: None, on_postgres: None, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log_path = tmp_path / "worker.log"
    proc = start_worker(log_path, tmp_path / "beat-schedule")
    try:
        yield proc
    finally:
        stop_worker(proc, log_path)


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
    wait_for(lambda: Entry.objects.count() >= 25, 60, "the worker to integrate the entries")
    wait_for(
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
    client = broker_client()

    # when
    client.send_task("audit.tasks.make_checkpoint")

    # then
    wait_for(lambda: Checkpoint.objects.filter(tree_size__gte=2).exists(), 60, "the sent task to run")
    assert verify_ledger().ok
