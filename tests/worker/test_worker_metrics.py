"""A real worker serves its task latency on CELERY_METRICS_PORT: run time and the wait since the message was sent.

Runs when CELERY_WORKER_TEST_BROKER_URL names a broker and the database is PostgreSQL (tests/worker/launch.py).
"""
from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ops.helpers import free_port
from tests.ops.test_metrics import value
from tests.worker.launch import BROKER, broker_client, start_worker, stop_worker, wait_for

pytestmark = [
    pytest.mark.celery_worker,
    pytest.mark.skipif(not BROKER, reason="set CELERY_WORKER_TEST_BROKER_URL to run a real worker"),
]

TASK = "audit.tasks.make_checkpoint"


@pytest.fixture
def worker_port(committing_db: None, on_postgres: None, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    log_path = tmp_path / "worker.log"
    proc: subprocess.Popen[bytes] = start_worker(log_path, tmp_path / "beat-schedule",
                                                 CELERY_METRICS_PORT=str(port), CELERY_METRICS_ADDR="127.0.0.1")
    try:
        yield port
    finally:
        stop_worker(proc, log_path)


def scrape_worker(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())
    except OSError:
        return ""


def test_the_worker_reports_run_time_and_queue_wait_of_a_sent_task(worker_port: int) -> None:
    wait_for(lambda: "governance_celery_tasks_total" in scrape_worker(worker_port), 60, "the worker's metrics port")
    before = scrape_worker(worker_port)
    runs = value(before, "governance_celery_task_duration_seconds_count", task=TASK) or 0

    # this process stamps the message when it publishes it (web.metrics' before_task_publish receiver)
    broker_client().send_task(TASK)

    def ran() -> bool:
        return (value(scrape_worker(worker_port), "governance_celery_task_duration_seconds_count", task=TASK)
                or 0) > runs

    wait_for(ran, 60, "the sent task to run")
    after = scrape_worker(worker_port)
    waits = value(after, "governance_celery_task_queue_wait_seconds_count", task=TASK)
    assert waits is not None and waits >= 1
    # sent a moment ago: the whole wait is under a minute
    assert value(after, "governance_celery_task_queue_wait_seconds_bucket", task=TASK, le="60.0") == waits
