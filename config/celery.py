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


def _prometheus_dir() -> None:
    """Make sure ``PROMETHEUS_MULTIPROC_DIR`` exists before prometheus_client is imported (it picks its
    storage then): a missing directory made every counter update in the worker raise (a traceback per
    task). The entrypoint creates it; if it cannot be created here either, one warning and per-process
    counters instead of a traceback per task."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory or "prometheus_client" in sys.modules:
        return
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        print(f"PROMETHEUS_MULTIPROC_DIR={directory} cannot be created ({exc.strerror}): metrics are per process",
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
