"""A real Celery worker with beat, on the broker CELERY_WORKER_TEST_BROKER_URL names, sharing this test's database.

One launcher for every test that needs the scheduled work done by a separate process
(tests/worker, tests/audit/witnessing). Only for PostgreSQL: the worker opens its own connections.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from celery import Celery
from django.db import connection


def _per_xdist_worker(url: str | None) -> str | None:
    """The broker URL for this pytest-xdist worker: Redis database ``N - k`` for worker ``gwk``.

    Two xdist workers each running a worker test on one Redis database would purge and consume each
    other's queue; one database each keeps them apart (as each has its own PostgreSQL test database).
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not url or not worker.startswith("gw") or not url.startswith("redis"):
        return url
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    db = (base - int(worker[2:])) % 16
    return urlunsplit(parts._replace(path=f"/{db}"))


BROKER = _per_xdist_worker(os.environ.get("CELERY_WORKER_TEST_BROKER_URL"))
ROOT = Path(__file__).resolve().parents[2]


def broker_client() -> Celery:
    """A bare Celery app on the test broker, for sending and purging only.

    ``set_as_current=False`` matters: a new app otherwise becomes Celery's *current* app for the
    rest of this process, and every ``shared_task`` resolves to it: later tests' ``.delay()`` calls
    would go to this broker (where no worker listens any more) instead of running eagerly.
    """
    return Celery(broker=BROKER, set_as_current=False)


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def start_worker(log_path: Path, beat_schedule: Path, **extra_env: str) -> subprocess.Popen[bytes]:
    """Start ``celery worker -B`` with fast ledger schedules (plus ``extra_env``), its output in ``log_path``.

    The queue is purged first: tasks left by an earlier run would only add noise.
    """
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        CELERY_BROKER_URL=BROKER or "",
        LEDGER_INTEGRATE_INTERVAL="0.5",
        LEDGER_CHECKPOINT_INTERVAL="1",
        LEDGER_INTEGRATE_ON_COMMIT="0",
        **extra_env,
    )
    env.pop("CELERY_WORKER_TEST_BROKER_URL", None)
    broker_client().connection_for_write().default_channel.queue_purge("celery")
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-B", "--pool=solo",
             "--loglevel=INFO", "-s", str(beat_schedule)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )


def stop_worker(proc: subprocess.Popen[bytes], log_path: Path) -> None:
    """Stop the worker (killed after 15 s) and print the end of its log for a failing test's report."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    sys.stdout.write(log_path.read_text(errors="replace")[-3000:])
