"""Fault test: the broker is down while a write whose service queues a task is sent (a starting export).

The task is queued with ``transaction.on_commit``, after the change commits, so a failing publish
could only ever come after the fact. The receivers that queue a follow-up nothing else would redo
(exports, deployments, rollbacks) therefore check, *inside* the service's transaction, that the
broker accepts connections (``web.outage.require_broker``): when it does not, the change rolls back
and the caller gets 503 ``unavailable`` (broker) with ``Retry-After`` - nothing written.

The second test shows the window that check cannot close, honestly: a broker that accepts the
check's connection but fails the publish after the commit. The change is then committed without
its task; the caller still gets a 503, and a retry with the same ``Idempotency-Key`` is told the
truth (the stored 202, replayed).
"""
from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings

from audit.models import ExportJob, PendingEntry
from config.celery import app
from tests.api.helpers import problem_of
from tests.audit.integration.helpers import fill
from tests.ops.redis_server import free_port
from web.models import IdempotencyRecord

URL = "/api/v1/exports"


def _reset_publisher() -> None:
    # Celery keeps its connection and producer pools per URL once used: drop them so that the next
    # .delay() connects to the broker URL set now (what a forked worker does, Celery's _after_fork).
    app._pool = None
    app.__dict__.get("amqp") and setattr(app.amqp, "_producer_pool", None)


@pytest.fixture
def broker_at(tmp_path: Path) -> Iterator[object]:
    """``broker_at(url)`` points Celery at that broker, not eager; everything is restored afterwards."""
    saved = {k: app.conf[k] for k in ("task_always_eager", "broker_url", "broker_connection_retry",
                                      "task_publish_retry_policy")}
    var = tmp_path / "var"
    var.mkdir()

    def point(url: str) -> None:
        # publish retries kept short: the default policy would only make the test slower, not different
        app.conf.update(task_always_eager=False, broker_url=url,
                        task_publish_retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.1,
                                                   "interval_max": 0.1})
        _reset_publisher()

    with override_settings(VAR_DIR=var):
        yield point
    app.conf.update(saved)
    _reset_publisher()


def start(client, key: str | None = None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(URL, {"format": "csv"}, format="json", **headers)


def rows() -> tuple[int, int, int]:
    return ExportJob.objects.count(), PendingEntry.objects.count(), IdempotencyRecord.objects.count()


@pytest.mark.django_db
def test_with_the_broker_down_a_write_that_queues_a_task_is_a_503_and_writes_nothing(broker_at, people, as_user,
                                                                                    settings):
    fill(3, subjects=1)
    settings.RETRY_AFTER_SECONDS = 9
    auditor = as_user(people.auditor)
    broker_at(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    before = rows()

    refused = start(auditor)
    with_key = start(auditor, "export-1")

    for response in (refused, with_key):
        assert response.status_code == 503
        body = problem_of(response)
        assert body["code"] == "unavailable" and "broker" in body["detail"]
        assert response["Retry-After"] == "9"
        assert "redis://" not in response.content.decode() and "127.0.0.1" not in response.content.decode()
    assert rows() == before  # no export, no ledger entry, no stored 503

    # when the broker is back (here: eager again), the retry with the same key runs, once
    app.conf.task_always_eager = True
    accepted = start(auditor, "export-1")
    assert accepted.status_code == 202 and "Idempotent-Replayed" not in accepted
    assert ExportJob.objects.count() == before[0] + 1


class _AcceptThenClose:
    """A TCP port that accepts connections and closes them at once: the broker check passes, every
    publish fails (a broker dying between the two)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.close()

    def close(self) -> None:
        self._stop = True
        self.thread.join(5)
        self.sock.close()


def test_a_broker_failing_after_the_check_leaves_the_change_committed_and_the_retry_says_so(
        committing_db, broker_at, people, as_user):
    fill(3, subjects=1)
    auditor = as_user(people.auditor)
    flaky = _AcceptThenClose()
    try:
        broker_at(f"redis://127.0.0.1:{flaky.port}/0")
        before = rows()

        response = start(auditor, "export-window")

        # the publish failed after the commit: 503, but the export and its entry are committed (its task
        # was not queued; docs/api.md "Retrying" says so), and so is the stored 202 of the key
        assert response.status_code == 503
        assert problem_of(response)["code"] == "unavailable"
        assert rows() == (before[0] + 1, before[1] + 1, before[2] + 1)
        retry = start(auditor, "export-window")
        assert retry.status_code == 202 and retry["Idempotent-Replayed"] == "true"
        assert rows()[0] == before[0] + 1
    finally:
        flaky.close()
