"""gunicorn settings of the web container; every value can be overridden from the environment."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# Sized for the cores the container sees, not 2 x cores + 1: a request here is mostly Python (CPU, under
# the GIL) plus short PostgreSQL round trips, and the same small machine also runs PostgreSQL and the
# ledger's sequencer. One process per core keeps every core busy; a few threads each overlap a
# request's database waits without queueing requests behind one another's GIL time (bench/api.py on 2
# cores: 2 workers x 4 threads gave b' p99 and ingest at least as good as 5 x 4 = 20 threads, which
# only added contention; see docs/benchmarks.md). WEB_CONCURRENCY / GUNICORN_THREADS override both.
workers = int(os.environ.get("WEB_CONCURRENCY") or max(2, len(os.sched_getaffinity(0))))
threads = int(os.environ.get("GUNICORN_THREADS") or 4)
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
accesslog = None  # the app's RequestLogMiddleware logs requests (JSON, redacted, with request ids)
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
worker_tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108


def on_starting(server: Any) -> None:
    # Prometheus multiprocess mode: counters of earlier runs must not be summed into this one.
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        path = Path(directory)
        if path.is_dir():
            for child in path.iterdir():
                if child.is_file():
                    child.unlink()
                else:
                    shutil.rmtree(child)
        path.mkdir(parents=True, exist_ok=True)
        # Imported here, once, not in child_exit: that runs in the SIGCHLD handler, which may interrupt
        # itself mid-import at shutdown (several workers exit together) and leave a half-imported module.
        from prometheus_client import multiprocess  # noqa: F401


def post_worker_init(worker: Any) -> None:
    """Pay a worker's first-request costs before it accepts connections (the app is loaded by now): the
    URLconf imports every view, serializer and the API schema's modules, and the approval path imports
    MLflow's client (``governance.registry``), the Celery tasks and the signing key. Without this, the
    first requests each new worker serves are slow (seconds for the first approval). A failure is logged
    and the worker serves anyway: the request that needs the module then fails as it would have."""
    try:
        warm_up()
    except Exception:
        worker.log.exception("warm-up failed; the worker serves without it")


def warm_up() -> None:
    import importlib

    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018  (resolving them imports every view module)
    # Imports only: building the MLflow client here would open its store, and with a SQLite store every
    # worker booting at once would run MLflow's migrations on the same file (and break it).
    for module in ("mlflow.exceptions", "mlflow.tracking", "governance.tasks", "governance.services.registry_mirror"):
        importlib.import_module(module)


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
