"""The beat schedule without a broker: ``CELERY_BEAT_SCHEDULE`` run in a thread of the serving process.

With no ``CELERY_BROKER_URL`` (the embedded default: SQLite, tasks eager in-process) there is no
``celery beat``, so nothing would sign checkpoints, verify the ledger, expire grants or flag overdue
break-glass reviews after start-up: the demo would drift away from what production does (an entry
"not covered by a checkpoint" forever, grants outliving their expiry). This module runs every entry of
the schedule, interval and crontab ones alike, at its configured schedule, in the serving process.

Design, and why:

* **In the server, not a separate process**: ``manage.py runserver`` alone must behave like
  production; a second command to remember is what the demo lacked. It starts when the WSGI/ASGI
  application is loaded (``config/wsgi.py``, ``config/asgi.py``) and only in a *serving* process
  (``should_start``): runserver's child (``RUN_MAIN=true``; the autoreloader's parent never loads the
  application) or ``--noreload``, and gunicorn. Never in tests, never in another management command,
  never with a broker (``celery beat`` does it then), never with ``EMBEDDED_SCHEDULER=0``.
* **One scheduler per machine**: gunicorn runs several workers, each loading the application. The
  first to take an exclusive ``flock`` on ``VAR_DIR/embedded-scheduler.lock`` runs the schedule; the
  others stand by and try again every ``LOCK_RETRY_SECONDS`` (the lock goes with its holder's death,
  so a standby takes over). The tasks are idempotent anyway; the lock only avoids doubled work.
* **Celery's own schedule objects**: each entry's schedule (a ``timedelta`` becomes
  ``celery.schedules.schedule``, a ``crontab`` stays one) answers ``is_due(last_run_at)`` with
  "due?" and "seconds to the next check", exactly what ``celery beat`` asks. As beat does on a fresh
  schedule, an entry first runs one interval after start-up (a crontab one at its next time).
* **Eager, one at a time**: a due task runs through ``task.apply()`` in this thread, in schedule order;
  a failure is logged (``embedded scheduler: task … failed``) and never stops the loop. The thread's
  database connections are closed after each run (a thread outside the request cycle otherwise keeps
  one open forever, and SQLite's WAL checkpoints wait for it). SQLite takes the second writer fine:
  the settings use IMMEDIATE transactions, WAL and a 30 s busy timeout.
* **Stops cleanly**: a daemon thread (never holds the process up), stopped at interpreter exit or by
  ``stop()``; a task already running finishes first.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from celery import Celery, current_app
from celery.schedules import BaseSchedule
from celery.schedules import schedule as every
from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

LOCK_RETRY_SECONDS = 5.0
# The loop wakes at least this often, so ``stop()`` and a clock step are noticed promptly.
MAX_SLEEP_SECONDS = 5.0


@dataclass
class _Entry:
    name: str
    task: str
    schedule: BaseSchedule
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    last_run_at: datetime | None = None


def _as_schedule(value: float | timedelta | BaseSchedule, app: Celery) -> BaseSchedule:
    """A beat entry's schedule as celery beat reads it: a number or timedelta is an interval."""
    return value if isinstance(value, BaseSchedule) else every(run_every=value, app=app)


def should_start(argv: list[str], environ: Mapping[str, str]) -> tuple[bool, str]:
    """Whether this process runs the embedded scheduler, and why (logged at start-up).

    Only without a broker, with ``EMBEDDED_SCHEDULER`` on, outside the tests, and in a serving process:
    gunicorn, or ``manage.py runserver``'s serving child (``RUN_MAIN=true``) or its ``--noreload`` self.
    """
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        return False, "a broker is configured: celery beat runs the schedule"
    if not settings.EMBEDDED_SCHEDULER:
        return False, "EMBEDDED_SCHEDULER is off"
    if settings.TESTING:
        return False, "tests run tasks themselves"
    program = Path(argv[0]).name if argv else ""
    if program.startswith("gunicorn"):
        return True, "gunicorn without a broker"
    if argv[1:2] == ["runserver"]:
        if environ.get("RUN_MAIN") == "true" or "--noreload" in argv:
            return True, "runserver without a broker"
        return False, "the autoreloader's parent process serves nothing"
    return False, "not a serving process"


class EmbeddedScheduler:
    """Runs a beat schedule (``CELERY_BEAT_SCHEDULE``'s shape) eagerly in one daemon thread.

    ``lock_path``: the machine-wide lock file (None: no lock, for tests). ``start()`` returns at once;
    ``stop()`` asks the loop to end and waits up to ``timeout`` seconds for it.
    """

    def __init__(self, schedule: Mapping[str, Mapping[str, Any]], *, lock_path: Path | None) -> None:
        app = current_app
        self._app = app
        self._entries = [
            _Entry(
                name=name, task=spec["task"], schedule=_as_schedule(spec["schedule"], app),
                args=tuple(spec.get("args", ())), kwargs=dict(spec.get("kwargs", {})),
            )
            for name, spec in schedule.items()
        ]
        self._lock_path = lock_path
        self._lock_file: IO[bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.failures = 0

    # --- state, for /status ---------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``running`` (this process runs the schedule), ``standby`` (another holds the lock) or ``stopped``."""
        if self._thread is None or not self._thread.is_alive():
            return "stopped"
        return "running" if self._holds_lock() else "standby"

    def _holds_lock(self) -> bool:
        return self._lock_path is None or self._lock_file is not None

    # --- life cycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="embedded-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._release_lock()

    # --- the loop -------------------------------------------------------------------------------------

    def _loop(self) -> None:
        # Celery imports the apps' tasks modules (autodiscovery) only when a worker starts; a web process
        # has imported just the ones its code reached.
        try:
            self._app.loader.import_default_modules()
        except Exception:
            logger.exception("embedded scheduler: importing the tasks modules failed")
        logger.info("embedded scheduler: started with %d periodic tasks", len(self._entries))
        while not self._stop.is_set():
            if not self._try_lock():
                self._stop.wait(LOCK_RETRY_SECONDS)
                continue
            self._stop.wait(self.tick())
        logger.info("embedded scheduler: stopped")

    def tick(self) -> float:
        """Run every due entry once, in schedule order; the seconds until the next one is due."""
        sleep = MAX_SLEEP_SECONDS
        for entry in self._entries:
            if self._stop.is_set():
                break
            if entry.last_run_at is None:
                # As celery beat on a fresh schedule: the first run comes one interval after start-up.
                entry.last_run_at = entry.schedule.now()
            due, next_seconds = entry.schedule.is_due(entry.last_run_at)
            if due:
                entry.last_run_at = entry.schedule.now()
                self._run(entry)
            sleep = min(sleep, float(next_seconds))
        return max(sleep, 0.05)

    def _run(self, entry: _Entry) -> None:
        try:
            self._app.tasks[entry.task].apply(args=entry.args, kwargs=entry.kwargs)
        except Exception:
            self.failures += 1
            logger.exception("embedded scheduler: task %s (%s) failed", entry.task, entry.name)
        finally:
            self.runs += 1
            # This thread's own connections (Django's are per thread): closed after every run.
            connections.close_all()

    # --- the machine-wide lock ------------------------------------------------------------------------

    def _try_lock(self) -> bool:
        if self._holds_lock():
            return True
        assert self._lock_path is not None
        import fcntl

        handle = self._lock_path.open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock_file = handle
        logger.info("embedded scheduler: this process (pid %d) runs the schedule", os.getpid())
        return True

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing the descriptor releases the flock
            self._lock_file = None


_scheduler: EmbeddedScheduler | None = None
_start_lock = threading.Lock()


def current() -> EmbeddedScheduler | None:
    """The process's scheduler, if it started one."""
    return _scheduler


def state() -> str:
    """For ``/status``: ``running``, ``standby``, ``stopped``, ``off`` (not started here) or ``celery_beat``."""
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        return "celery_beat"
    return _scheduler.state if _scheduler is not None else "off"


def start_if_serving(argv: list[str], environ: Mapping[str, str]) -> EmbeddedScheduler | None:
    """Start the process's scheduler when ``should_start`` says so (once per process); None otherwise."""
    global _scheduler
    start, why = should_start(argv, environ)
    if not start:
        logger.debug("embedded scheduler: not started (%s)", why)
        return None
    with _start_lock:
        if _scheduler is None:
            _scheduler = EmbeddedScheduler(
                settings.CELERY_BEAT_SCHEDULE, lock_path=Path(settings.VAR_DIR) / "embedded-scheduler.lock"
            )
            _scheduler.start()
            atexit.register(_scheduler.stop, 2.0)
            logger.info("embedded scheduler: starting (%s)", why)
    return _scheduler
