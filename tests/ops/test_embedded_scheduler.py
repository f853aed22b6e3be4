"""The embedded scheduler (issue #17 §1): without a broker the serving process runs the beat schedule.

A new ledger entry ends up covered by a signed checkpoint and a lapsed grant gets expired without anyone
calling a task; the scheduler starts only in a serving process without a broker, and one per machine.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from access.models import Grant
from audit import ledger
from audit.ledger import Actor, Subject
from audit.models import Entry
from audit.selectors import checkpoint_covering
from tests.access.helpers import grant
from tests.catalog import Resources
from tests.personas import People
from tests.settings_helpers import settings_environ, settings_module
from web import embedded_scheduler
from web.embedded_scheduler import EmbeddedScheduler, should_start, start_if_serving


def every(seconds: float, task: str) -> dict[str, Any]:
    return {"task": task, "schedule": timedelta(seconds=seconds)}


FAST = {
    "ledger-integrate": every(0.1, "audit.tasks.integrate_pending"),
    "ledger-checkpoint": every(0.2, "audit.tasks.make_checkpoint"),
    "access-grants-expire": every(0.2, "access.tasks.expire_grants"),
}


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[Callable[..., EmbeddedScheduler]]:
    made: list[EmbeddedScheduler] = []

    def make(schedule: dict[str, dict[str, Any]], lock: Path | None = None) -> EmbeddedScheduler:
        made.append(EmbeddedScheduler(schedule, lock_path=lock or tmp_path / "scheduler.lock"))
        made[-1].start()
        return made[-1]

    yield make
    for one in made:
        one.stop()


def wait_for(condition: Callable[[], bool], seconds: float = 4.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_entries_get_checkpointed_and_grants_expire_with_no_one_calling_a_task(
    committing_db: None, people: People, res: Resources, scheduler: Callable[..., EmbeddedScheduler]
) -> None:
    # given: a recorded entry (not integrated: nothing runs on commit in the tests) and a lapsed grant
    with transaction.atomic():
        ledger.record(event_type="ledger.note_added", actor=Actor.system("tests"), subject=Subject("model", "m"),
                      payload={"text": "to be covered"})
    lapsed = grant(people.owner, people.requester, res.confidential, days=1)
    Grant.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert not Entry.objects.filter(event_type="ledger.note_added").exists()

    # when: only the scheduler runs, for a few rounds of each task (the test keeps off the database meanwhile:
    # SQLite's shared in-memory test database refuses a reader while another connection writes)
    running = scheduler(FAST)
    assert wait_for(lambda: running.runs >= 10)
    running.stop()

    # then: the entry is integrated and covered by a signed checkpoint, the grant is expired (and recorded)
    entry = Entry.objects.get(event_type="ledger.note_added")
    assert checkpoint_covering(entry.seq) is not None
    assert Grant.objects.get(pk=lapsed.pk).revoke_reason == "expired"
    assert Entry.objects.filter(event_type="access.grant_expired").exists()
    assert running.failures == 0 and running.state == "stopped"


def test_a_failing_task_is_logged_and_the_others_keep_running(
    committing_db: None, scheduler: Callable[..., EmbeddedScheduler], caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    # The project's loggers do not propagate to the root, where caplog listens.
    log = logging.getLogger("web.embedded_scheduler")
    log.addHandler(caplog.handler)
    request.addfinalizer(lambda: log.removeHandler(caplog.handler))
    with transaction.atomic():
        ledger.record(event_type="ledger.note_added", actor=Actor.system("tests"), subject=Subject("model", "m"),
                      payload={"text": "still integrated"})
    running = scheduler({"broken": every(0.1, "no.such.task"), "ledger-integrate": FAST["ledger-integrate"]})
    assert wait_for(lambda: running.failures >= 2)  # it failed more than once: the loop went on
    assert running.state == "running"
    running.stop()
    assert Entry.objects.filter(event_type="ledger.note_added").exists()
    assert "embedded scheduler: task no.such.task (broken) failed" in caplog.text


def test_one_scheduler_per_machine_and_a_standby_takes_over(
    tmp_path: Path, scheduler: Callable[..., EmbeddedScheduler], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded_scheduler, "LOCK_RETRY_SECONDS", 0.05)
    lock = tmp_path / "shared.lock"
    first = scheduler({}, lock)
    assert wait_for(lambda: first.state == "running")
    second = scheduler({}, lock)
    time.sleep(0.2)
    assert second.state == "standby"
    first.stop()
    assert wait_for(lambda: second.state == "running")


SERVING = {"CELERY_TASK_ALWAYS_EAGER": True, "EMBEDDED_SCHEDULER": True, "TESTING": False}


@pytest.mark.parametrize(("argv", "environ", "expected"), [
    (["manage.py", "runserver"], {"RUN_MAIN": "true"}, True),  # runserver's serving child
    (["manage.py", "runserver", "--noreload"], {}, True),
    (["/app/.venv/bin/gunicorn", "--config", "/app/gunicorn.conf.py", "config.wsgi:application"], {}, True),
    (["manage.py", "runserver"], {}, False),  # the autoreloader's parent: it serves nothing
    (["manage.py", "migrate"], {"RUN_MAIN": "true"}, False),
    (["manage.py", "seed_demo"], {}, False),
    (["celery", "-A", "config", "worker"], {}, False),
    ([], {}, False),
])
def test_it_starts_only_in_a_serving_process(settings: Any, argv: list[str], environ: dict[str, str],
                                             expected: bool) -> None:
    for name, value in SERVING.items():
        setattr(settings, name, value)
    assert should_start(argv, environ)[0] is expected


@pytest.mark.parametrize(("override", "reason"), [
    ({"CELERY_TASK_ALWAYS_EAGER": False}, "a broker is configured: celery beat runs the schedule"),
    ({"EMBEDDED_SCHEDULER": False}, "EMBEDDED_SCHEDULER is off"),
    ({"TESTING": True}, "tests run tasks themselves"),
])
def test_never_with_a_broker_when_turned_off_or_in_tests(settings: Any, override: dict[str, bool],
                                                         reason: str) -> None:
    for name, value in {**SERVING, **override}.items():
        setattr(settings, name, value)
    assert should_start(["manage.py", "runserver"], {"RUN_MAIN": "true"}) == (False, reason)
    assert should_start(["gunicorn", "config.wsgi:application"], {}) == (False, reason)


def test_the_test_process_never_starts_one(settings: Any) -> None:
    # the suite's own settings, even with a serving process's argv
    assert start_if_serving(["manage.py", "runserver"], {"RUN_MAIN": "true"}) is None
    assert embedded_scheduler.current() is None and embedded_scheduler.state() == "off"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    assert embedded_scheduler.state() == "celery_beat"


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, True),  # no broker: on
    ({"EMBEDDED_SCHEDULER": "0"}, False),
    ({"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"}, False),  # a broker: celery beat's job
    ({"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0", "EMBEDDED_SCHEDULER": "1"}, False),
])
def test_the_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, environ: dict[str, str],
                     expected: bool) -> None:
    base = {k: v for k, v in settings_environ(tmp_path).items() if k not in ("CELERY_BROKER_URL", "EMBEDDED_SCHEDULER")}
    assert settings_module(monkeypatch, {**base, **environ})["EMBEDDED_SCHEDULER"] is expected
