"""The metrics an SRE alerts on (issue #16 §5), each read back from a real /metrics scrape.

Runtime events ingested, open compliance violations by kind, the last successful registry sweep, the Celery
queue depth on a Redis broker of the test's own (up, then stopped), task run time and queue wait.
"""
from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from celery import Celery
from django.contrib.auth.models import User
from django.test import Client

from audit.ledger import Subject
from governance.models import ComplianceViolation, WebhookDelivery
from governance.services.compliance import violation_acknowledge, violation_record
from tests.access.helpers import grant
from tests.ops.helpers import own_redis
from tests.ops.test_metrics import TOKEN, scrape, value
from web.metrics import SENT_AT_HEADER

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def token(settings: Any) -> str:
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def drift(**overrides: Any) -> dict[str, Any]:
    event = {"event_id": str(uuid.uuid4()), "type": "monitoring.data_drift_detected",
             "occurred_at": "2026-11-29T09:29:58+01:00", "model": "fraud-detector", "version": 1,
             "environment": "production", "metric": "psi", "value": 0.31, "threshold": 0.2}
    event.update(overrides)
    return event


def incident() -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "type": "incident.opened", "occurred_at": "2026-11-29T09:29:58Z",
            "incident_id": "INC-7", "severity": "sev2", "summary": "p99 latency"}


def test_runtime_events_are_counted_by_family_and_outcome(
    client: Client, token_for: Any, people: Any, res: Any, django_capture_on_commit_callbacks: Any,
) -> None:
    writer = token_for(["events:write"])
    grant(people.owner, writer.service_account.user, res.model, "view_metadata")
    before = scrape(client)

    def counted(text: str, family: str, outcome: str) -> float:
        return value(text, "governance_runtime_events_total", family=family, outcome=outcome) or 0

    first, second = drift(), drift()
    with django_capture_on_commit_callbacks(execute=True):
        assert writer.post("/api/v1/events", {"events": [first, second, incident()]},
                           format="json").status_code == 201
    with django_capture_on_commit_callbacks(execute=True):  # a retry of one of them, and a refused batch
        assert writer.post("/api/v1/events", {"events": [first]}, format="json").status_code == 200
        assert writer.post("/api/v1/events", {"events": [drift(type="nope")]}, format="json").status_code == 400

    after = scrape(client)
    assert counted(after, "monitoring", "accepted") == counted(before, "monitoring", "accepted") + 2
    assert counted(after, "incident", "accepted") == counted(before, "incident", "accepted") + 1
    assert counted(after, "monitoring", "duplicate") == counted(before, "monitoring", "duplicate") + 1
    assert 'family="nope"' not in after and "INC-7" not in after


def test_open_violations_by_kind(client: Client, infosec: User) -> None:
    kinds = ComplianceViolation.Kind
    before = scrape(client)
    for kind in kinds.values:  # every kind is a series, zero or not: an alert never waits for a first one
        assert value(before, "governance_compliance_violations_open", kind=kind) == 0

    violation_record(kind=kinds.INTEGRITY, subject=Subject("ledger", "1"), summary="chain broken", details={})
    drift_ = violation_record(kind=kinds.OUT_OF_BAND_ALIAS, subject=Subject("model", "m"), summary="alias", details={})
    violation_record(kind=kinds.OUT_OF_BAND_ALIAS, subject=Subject("model", "n"), summary="alias", details={})
    violation_acknowledge(actor=infosec, violation=drift_, comment="reverted by the owner")

    after = scrape(client)
    assert value(after, "governance_compliance_violations_open", kind=kinds.INTEGRITY) == 1
    assert value(after, "governance_compliance_violations_open", kind=kinds.OUT_OF_BAND_ALIAS) == 1
    assert value(after, "governance_compliance_violations_open", kind=kinds.CLASSIFICATION) == 0


def test_the_webhook_outbox_backlog_and_its_oldest_age(client: Client) -> None:
    assert value(scrape(client), "governance_mlflow_webhook_outbox_pending") == 0
    assert value(scrape(client), "governance_mlflow_webhook_outbox_oldest_age_seconds") == 0

    # given: two deliveries waiting for their follow-up (the oldest for ten minutes), one done long ago
    rows = [WebhookDelivery.objects.create(delivery_id=f"d{i}", entity="model_version_tag", action="set",
                                           model="fraud-detector", state=state)
            for i, state in enumerate(("pending", "pending", "done"))]
    now = time.time()
    WebhookDelivery.objects.filter(pk=rows[0].pk).update(received_at=_ago(600))
    WebhookDelivery.objects.filter(pk=rows[2].pk).update(received_at=_ago(86400))

    # then
    text = scrape(client)
    assert value(text, "governance_mlflow_webhook_outbox_pending") == 2
    age = value(text, "governance_mlflow_webhook_outbox_oldest_age_seconds")
    assert age is not None and 600 <= age < 600 + (time.time() - now) + 5


def _ago(seconds: float) -> Any:
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() - timedelta(seconds=seconds)


def test_the_last_successful_registry_sweep(client: Client, mlflow_store: Any) -> None:
    from governance import tasks

    before = value(scrape(client), "governance_registry_sweep_last_success_timestamp_seconds") or 0
    started = time.time()
    tasks.reconcile_registry.apply(throw=True)
    swept = value(scrape(client), "governance_registry_sweep_last_success_timestamp_seconds")
    assert swept is not None and swept >= started > before - 1


def test_a_failed_sweep_does_not_move_it(client: Client, mlflow_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from governance import tasks
    from governance.services import registry_mirror

    tasks.reconcile_registry.apply(throw=True)
    swept = value(scrape(client), "governance_registry_sweep_last_success_timestamp_seconds")

    # A mock: a sweep that crashes half-way. An unreachable MLflow fails the same way, but only after minutes of
    # the MLflow client's own retries and the task's backoff.
    def crash(**_: Any) -> Any:
        raise RuntimeError("the sweep crashed")

    monkeypatch.setattr(registry_mirror, "registry_reconcile", crash)
    result = tasks.reconcile_registry.apply(throw=False)
    assert result.failed()
    assert value(scrape(client), "governance_registry_sweep_last_success_timestamp_seconds") == swept


def test_queue_depth_on_a_redis_broker_then_the_broker_down(client: Client, settings: Any) -> None:
    settings.READY_BROKER_TIMEOUT = 0.3
    with own_redis() as redis:
        settings.CELERY_TASK_ALWAYS_EAGER = False
        settings.CELERY_BROKER_URL = redis.url
        text = scrape(client)
        assert value(text, "governance_celery_broker_up") == 1
        assert value(text, "governance_celery_queue_depth", queue="celery") == 0

        sender = Celery(broker=redis.url, set_as_current=False)
        for _ in range(3):
            sender.send_task("audit.tasks.integrate_pending")
        sender.send_task("audit.tasks.make_checkpoint", priority=9)  # another of kombu's per-priority lists
        assert value(scrape(client), "governance_celery_queue_depth", queue="celery") == 4

        redis.stop()
        started = time.perf_counter()
        text = scrape(client)  # still a 200: the gauge says the broker is down
        assert time.perf_counter() - started < 3
        assert value(text, "governance_celery_broker_up") == 0
        assert value(text, "governance_celery_queue_depth", queue="celery") is None
        # the address never leaks (a bare port number could match digits of some float in the text)
        assert f":{redis.port}" not in text and "127.0.0.1" not in text and "Connection refused" not in text


def test_no_queue_depth_without_a_broker(client: Client) -> None:
    text = scrape(client)  # the test settings run tasks eagerly: there is no queue
    assert "governance_celery_queue_depth" not in text and "governance_celery_broker_up" not in text


def test_task_run_time_and_queue_wait(client: Client) -> None:
    from audit.tasks import integrate_pending

    task = "audit.tasks.integrate_pending"
    before = scrape(client)
    runs = value(before, "governance_celery_task_duration_seconds_count", task=task) or 0
    waits = value(before, "governance_celery_task_queue_wait_seconds_count", task=task) or 0
    long_waits = value(before, "governance_celery_task_queue_wait_seconds_bucket", task=task, le="1.0") or 0

    integrate_pending.apply()  # eager: no message, so no wait
    integrate_pending.apply(headers={SENT_AT_HEADER: time.time() - 20})  # as a worker sees a stamped message

    after = scrape(client)
    assert value(after, "governance_celery_task_duration_seconds_count", task=task) == runs + 2
    assert value(after, "governance_celery_task_queue_wait_seconds_count", task=task) == waits + 1
    # the 20 s wait is above the 1 s bucket
    assert value(after, "governance_celery_task_queue_wait_seconds_bucket", task=task, le="1.0") == long_waits


def test_publishing_stamps_the_sent_time() -> None:
    from celery.signals import before_task_publish

    headers: dict[str, Any] = {}
    before_task_publish.send(sender="audit.tasks.integrate_pending", headers=headers, body=None)
    assert abs(headers[SENT_AT_HEADER] - time.time()) < 5


def test_the_runtime_families_are_the_registrys() -> None:
    from audit.event_types import registry
    from web.metrics import _RUNTIME_FAMILIES

    # a new family of runtime event types must be added to the metric's fixed label set (else it counts as "other")
    assert {name.partition(".")[0] for name in registry.runtime_names()} == _RUNTIME_FAMILIES
