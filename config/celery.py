"""The Celery application. Without CELERY_BROKER_URL tasks run eagerly in-process."""
from __future__ import annotations

import logging.config
import os
import sys
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import setup_logging, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def _serves_metrics(argv: list[str]) -> bool:
    """gunicorn and a Celery worker serve metrics summed over their processes; nothing else does."""
    program = Path(argv[0]).name if argv else ""
    return program == "gunicorn" or ("celery" in argv[0] and "worker" in argv[1:]) if argv else False


def _prometheus_dir() -> None:
    """Settle ``PROMETHEUS_MULTIPROC_DIR`` before prometheus_client is imported (it picks its storage then).

    Only the servers (gunicorn, a Celery worker) keep it: a one-off process of the same container (a
    management command, the worker's ``celery inspect ping`` healthcheck every minute, beat) would leave
    a file per run in the server's directory, summed into its metrics, and cannot write there at all
    when it runs as another user (``docker compose exec`` runs as root, the directory is 10001's). A
    server creates it when missing (the tmpfs ``/tmp`` hides the image's copy; a missing directory made
    every counter update raise, a traceback per task); if that fails too, one warning and per-process
    counters instead.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory or "prometheus_client" in sys.modules:
        return
    if not _serves_metrics(sys.argv):
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        return
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        if not os.access(directory, os.W_OK | os.X_OK):
            raise PermissionError(13, "not writable")
    except OSError as exc:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        print(f"PROMETHEUS_MULTIPROC_DIR={directory} is not usable ({exc.strerror}): metrics are per process",
              file=sys.stderr)


_prometheus_dir()

app = Celery("governance")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect(weak=False)
def _logging(loglevel: Any = None, **_: Any) -> None:
    """Worker and beat log like the web: the settings' LOGGING (redacted JSON with ``LOG_FORMAT=json``).

    Connecting this receiver stops Celery from installing its own handlers on the root logger
    (``worker_hijack_root_logger``); ``--loglevel`` still sets the root level unless ``LOG_LEVEL`` is set.
    """
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    if loglevel and not os.environ.get("LOG_LEVEL"):
        logging.getLogger().setLevel(loglevel)


@worker_init.connect
def _load_mlflow(**_: Any) -> None:
    """Load MLflow once in the worker's main process (before the pool forks), not in the first task that
    calls the registry: django.setup() no longer imports it (see config/wsgi.py)."""
    import mlflow  # noqa: F401
