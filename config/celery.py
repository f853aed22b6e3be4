"""The Celery application. Without CELERY_BROKER_URL tasks run eagerly in-process."""
from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("governance")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _load_mlflow(**_: Any) -> None:
    """Load MLflow once in the worker's main process (before the pool forks), not in the first task that
    calls the registry: django.setup() no longer imports it (see config/wsgi.py)."""
    import mlflow  # noqa: F401
