"""Witnessing through a real Celery worker and beat on a real broker, with real witnesses.

Runs when CELERY_WORKER_TEST_BROKER_URL names a broker (``.ci/run`` sets it to Redis)
and the database is PostgreSQL, shared by the worker and this test.
"""
from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from audit.ledger import Actor, Subject, record
from audit.models import Checkpoint, Entry, WitnessCosignature
from audit.signing import current_verifier_key
from governance.models import ComplianceViolation
from tests.worker.launch import BROKER, start_worker, stop_worker, wait_for

pytestmark = [
    pytest.mark.celery_worker,
    pytest.mark.skipif(not BROKER, reason="set CELERY_WORKER_TEST_BROKER_URL to run a real worker"),
]


@pytest.fixture
def worker_with(committing_db: None, on_postgres: None, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(witnesses: list[Any], *, deadline: float = 60.0) -> subprocess.Popen[bytes]:
        log_path = tmp_path / f"worker-{len(started)}.log"
        proc = start_worker(
            log_path, tmp_path / "beat-schedule",
            LEDGER_WITNESSES=";".join(f"{w.url} {w.verifier_key}" for w in witnesses),
            LEDGER_WITNESS_QUORUM=str(len(witnesses)),
            LEDGER_WITNESS_DEADLINE=str(deadline),
            LEDGER_WITNESS_CHECK_INTERVAL="1",
        )
        started.append((proc, log_path))
        return proc

    yield start
    for proc, log_path in started:
        stop_worker(proc, log_path)


def _record(n: int) -> None:
    for i in range(n):
        with transaction.atomic():
            record(event_type="ledger.note_added", actor=Actor.system("worker-test"),
                   subject=Subject("registered_model", f"m{i % 3}"), payload={"text": f"note {i}"})


def test_the_worker_gets_every_checkpoint_cosigned(worker_with: Any, witness_factory: Any) -> None:
    witnesses = [witness_factory(log_vkeys=[current_verifier_key()], name=f"w{i}.worker.test") for i in (1, 2)]
    proc = worker_with(witnesses)
    _record(10)

    def cosigned_to_the_end() -> bool:
        size = Entry.objects.count()
        return size >= 10 and WitnessCosignature.objects.filter(checkpoint__tree_size__gte=size).count() == 2

    wait_for(cosigned_to_the_end, 90, "both witnesses to cosign a checkpoint covering every entry")
    assert not [v for v in ComplianceViolation.objects.filter(kind="integrity") if v.details.get("witness_quorum")]
    assert proc.poll() is None, "the worker died"


def test_the_worker_raises_the_quorum_violation_once(worker_with: Any, witness_factory: Any) -> None:
    witnesses = [witness_factory(log_vkeys=[current_verifier_key()], name="honest.worker.test"),
                 witness_factory(log_vkeys=[current_verifier_key()], name="impostor.worker.test",
                                 behaviour="wrong_key")]
    proc = worker_with(witnesses, deadline=2.0)
    _record(5)

    def violations() -> list[ComplianceViolation]:
        return [v for v in ComplianceViolation.objects.filter(kind="integrity") if v.details.get("witness_quorum")]

    wait_for(lambda: bool(violations()), 90, "the quorum violation")
    time.sleep(4)  # several more checks (every second) and checkpoints: still one
    assert len(violations()) == 1
    assert Checkpoint.objects.exists() and proc.poll() is None
