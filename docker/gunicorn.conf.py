"""gunicorn settings of the web container; every value can be overridden from the environment."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
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


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
