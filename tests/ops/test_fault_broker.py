"""Fault test: the broker is down while a write whose service queues a task is sent (a starting export).

The task is queued with ``transaction.on_commit``, after the change commits, so a failing publish
could only ever come after the fact. The receivers that queue a follow-up nothing else would redo
(exports, deployments, rollbacks) therefore check, *inside* the service's transaction, that the
broker accepts connections (``web.outage.require_broker``): when it does not, the change rolls back
and the caller gets 503 ``unavailable`` (broker) with ``Retry-After`` - nothing written.

The window that check cannot close: a broker that accepts the check's connection but fails the
publish after the commit. The change is then committed without its task; the caller still gets a
503, and a retry with the same ``Idempotency-Key`` is told the truth (the stored 202, replayed). The
change left its mark in its own transaction (``ExportJob.queued_at``, ``PromotionRequest.follow_up``),
so once the broker is back (a redis-server of the test's own) the beat's sweep
(``web.tasks.requeue_stalled_follow_ups``, run here in-process) publishes the task again past the
grace, and only then: the export is written and the promotion deployed, once, by running what was
published as a worker would.
"""
from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.test import override_settings
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from access import roles
from audit.ledger import integrate
from audit.models import Entry, ExportJob, PendingEntry
from config.celery import app
from governance.models import Environment, ModelVersion, PromotionRequest
from governance.services import promotions, registry_mirror
from tests.api.helpers import problem_of
from tests.audit.integration.helpers import fill
from tests.governance.helpers import ensure_defaults
from tests.governance.mlflow_helpers import MlflowStore, catalogued, user
from tests.ops.helpers import RedisServer, free_port
from web.models import IdempotencyRecord
from web.tasks import requeue_stalled_follow_ups

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


@pytest.fixture
def flaky() -> Iterator[_AcceptThenClose]:
    server = _AcceptThenClose()
    yield server
    server.close()


@pytest.fixture
def broker_back(tmp_path: Path) -> Iterator[RedisServer]:
    """The broker that returns: a redis-server of the test's own (started by the test, killed afterwards)."""
    work = tmp_path / "redis"
    work.mkdir()
    server = RedisServer(work)
    yield server
    server.kill()


def published(server: RedisServer) -> list[tuple[str, list[object]]]:
    """Take every task message off the broker's default queue: (task name, args), as a worker receives them."""
    client = redis.Redis.from_url(server.url)
    out = []
    while (raw := client.rpop("celery")) is not None:
        message = json.loads(raw)
        args = json.loads(base64.b64decode(message["body"]))[0]
        out.append((message["headers"]["task"], args))
    client.close()
    return out


def run_as_a_worker(messages: list[tuple[str, list[object]]]) -> list[object]:
    return [app.tasks[name](*args) for name, args in messages]


GRACE = 120


def past_the_grace(seconds: int = 1) -> object:
    return timezone.now() + timedelta(seconds=GRACE + seconds)


def test_a_broker_failing_after_the_check_leaves_the_change_committed_and_the_sweep_writes_the_export_once(
        committing_db, broker_at, flaky, broker_back, people, as_user, settings):
    settings.FOLLOW_UP_GRACE_SECONDS = GRACE
    fill(3, subjects=1)
    auditor = as_user(people.auditor)
    broker_at(f"redis://127.0.0.1:{flaky.port}/0")
    before = rows()

    response = start(auditor, "export-window")

    # the publish failed after the commit: 503, but the export and its entry are committed (its task
    # was not queued), and so is the stored 202 of the key
    assert response.status_code == 503
    assert problem_of(response)["code"] == "unavailable"
    assert rows() == (before[0] + 1, before[1] + 1, before[2] + 1)
    retry = start(auditor, "export-window")
    assert retry.status_code == 202 and retry["Idempotent-Replayed"] == "true"
    assert rows()[0] == before[0] + 1
    job = ExportJob.objects.get()
    assert job.state == ExportJob.State.PENDING and job.queued_at is not None

    # the broker is back; within the grace the sweep leaves the export alone (its task may just be slow)
    broker_back.start()
    broker_at(broker_back.url)
    assert requeue_stalled_follow_ups.apply(kwargs={}).get()["requeued"] == 0  # the beat task, as scheduled
    assert published(broker_back) == []

    # past the grace it publishes the export's task again, once; run as a worker would, it writes the file
    from web import follow_ups

    assert follow_ups.requeue_stalled_follow_ups(now=past_the_grace())["requeued"] == 1
    messages = published(broker_back)
    assert messages == [("audit.tasks.run_export", [job.pk])]
    [path] = run_as_a_worker(messages)
    job.refresh_from_db()
    assert job.state == ExportJob.State.DONE and job.file_path == path and Path(path).exists()

    # a sweep run again publishes nothing more; one export, recorded once
    assert follow_ups.requeue_stalled_follow_ups(now=past_the_grace(3600))["requeued"] == 0
    assert published(broker_back) == []
    integrate()
    assert ExportJob.objects.count() == 1 and Entry.objects.filter(event_type="ledger.exported").count() == 1


def test_a_promotion_approved_while_the_broker_fails_after_the_check_is_deployed_by_the_sweep_once(
        committing_db, mlflow_store: MlflowStore, broker_at, flaky, broker_back, settings):
    from web import follow_ups

    settings.FOLLOW_UP_GRACE_SECONDS = GRACE
    ensure_defaults()
    catalogued()
    mlflow_store.register("fraud-detector", mlflow_store.run(metrics={"auc": 0.91}))
    registry_mirror.registry_reconcile()
    omar = user("omar", roles.MODEL_OWNER)
    broker_at(f"redis://127.0.0.1:{flaky.port}/0")

    # dev approves at once: the approval commits, then its deployment's publish fails (the API answers that
    # with a 503, as for the export above; here the service is called directly, and the error reaches us)
    with pytest.raises(KombuOperationalError):
        promotions.promotion_request(actor=omar, version=ModelVersion.objects.get(version=1),
                                     environment=Environment.objects.get(name="dev"), reason="nightly")
    request = PromotionRequest.objects.get()
    assert request.state == PromotionRequest.State.APPROVED
    assert request.follow_up == "governance.tasks.apply_promotion"
    assert mlflow_store.aliases("fraud-detector") == {}

    # the broker is back; within the grace the promotion is not touched
    broker_back.start()
    broker_at(broker_back.url)
    assert follow_ups.requeue_stalled_follow_ups(now=timezone.now())["requeued"] == 0
    request.refresh_from_db()
    assert request.state == PromotionRequest.State.APPROVED and published(broker_back) == []

    # past it: its deployment is published again, once, and deploys
    assert follow_ups.requeue_stalled_follow_ups(now=past_the_grace())["requeued"] == 1
    messages = published(broker_back)
    assert messages == [("governance.tasks.apply_promotion", [request.pk])]
    run_as_a_worker(messages)
    request.refresh_from_db()
    assert request.state == PromotionRequest.State.DEPLOYED and request.follow_up == ""
    assert mlflow_store.aliases("fraud-detector") == {"dev": 1}
    integrate()
    deployed = Entry.objects.filter(subject_type="promotion_request", subject_id=str(request.pk),
                                    event_type="promotion.deployed")
    assert deployed.count() == 1

    # the sweep again, and the published task once more (a twin): nothing more happens
    assert follow_ups.requeue_stalled_follow_ups(now=past_the_grace(3600))["requeued"] == 0
    assert published(broker_back) == []
    size = Entry.objects.count()
    run_as_a_worker(messages)
    integrate()
    assert Entry.objects.count() == size and mlflow_store.aliases("fraud-detector") == {"dev": 1}
