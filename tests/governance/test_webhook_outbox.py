"""An accepted MLflow webhook is never lost (issue #16 §2): the delivery row is the outbox of its follow-up.

Against a real MLflow registry (``mlflow_store``), a Redis broker this test starts and kills, and, for the
database outage, real PostgreSQL. A delivery is stored with its ledger entries before the 202; its follow-up
(a sync of the model, which puts an out-of-band alias back) is queued after commit, and when the broker
refuses it the beat's drain does it; a failed follow-up is retried with backoff until done. 503 only when the
delivery cannot be stored.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import Client
from django.utils import timezone

from access import roles
from config.celery import app
from governance import registry, tasks
from governance.models import (
    ComplianceViolation,
    Environment,
    LiveDeployment,
    ModelVersion,
    PromotionRequest,
    WebhookDelivery,
)
from governance.services import registry_mirror, webhooks
from tests.governance.helpers import ensure_defaults, make_deployed
from tests.governance.mlflow_helpers import MlflowStore, catalogued, entries, ledger_size, user
from tests.governance.test_webhooks import SECRET, Capture, delivery, ledger_rows, post
from tests.ops.helpers import RedisServer, free_port
from tests.settings_helpers import settings_environ, settings_module

NAME = "fraud-detector"
ID = "X-MLflow-Delivery-Id"
State = WebhookDelivery.State


@pytest.fixture(autouse=True)
def _webhook_settings(settings: Any) -> None:
    settings.MLFLOW_WEBHOOK_SECRET = SECRET
    settings.MLFLOW_WEBHOOK_TOLERANCE_SECONDS = 300
    settings.MLFLOW_WEBHOOK_RATE = "120/min"
    settings.MLFLOW_WEBHOOK_DRAIN_INTERVAL = 5.0
    settings.MLFLOW_WEBHOOK_RETRY_MAX_SECONDS = 300
    cache.clear()  # the rate limit's windows live in the (process-wide) cache


def _reset_broker_pools() -> None:
    # The app keeps its broker connection and producer pools; they must follow broker_url.
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def dead_broker(tmp_path: Path) -> Iterator[str]:
    """Celery publishes to a Redis this fixture starts, reaches, and then kills (tasks no longer eager):
    from then on every ``.delay()`` fails, as with the broker down in production."""
    server = RedisServer(tmp_path)
    server.start()
    url = server.url.rsplit("/", 1)[0] + "/12"
    saved = {k: app.conf[k] for k in ("task_always_eager", "broker_url")}
    try:
        app.conf.update(task_always_eager=False, broker_url=url)
        _reset_broker_pools()
        with app.connection_for_write() as conn:  # the broker was up: what follows is its outage
            conn.ensure_connection(max_retries=20, interval_start=0.1, interval_step=0.1, interval_max=0.2)
        server.stop()
        yield url
    finally:
        server.kill()
        app.conf.update(saved)
        _reset_broker_pools()


def mlflow_down(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow unreachable from now on (nothing listens on port 9; MLflow's own HTTP retries off)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = "http://127.0.0.1:9"
    registry._client.cache_clear()


def mlflow_back(settings: Any, store: MlflowStore) -> None:
    settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = store.uri
    registry._client.cache_clear()


def alias_delivery(alias: str, version: int | None, *, model: str = NAME) -> tuple[bytes, dict[str, str]]:
    """What MLflow sends when ``alias`` is set to ``version`` (None: deleted)."""
    if version is None:
        return delivery({"name": model, "alias": alias}, entity="model_version_alias", action="deleted")
    return delivery({"name": model, "alias": alias, "version": str(version)}, entity="model_version_alias",
                    action="created")


def live_in_production(store: MlflowStore, owner: User) -> dict[str, Environment]:
    """fraud-detector v1 and v2 in MLflow and mirrored; v1 live in production, its alias where governance has it."""
    envs = ensure_defaults()
    catalogued()  # the runs' training data is known: no lineage violation
    for auc in (0.91, 0.93):
        store.register(NAME, store.run(metrics={"auc": auc}))
    registry_mirror.registry_reconcile()
    make_deployed(ModelVersion.objects.get(model__name=NAME, version=1), envs["production"], requested_by=owner)
    store.client.set_registered_model_alias(NAME, "production", "1")
    return envs


def stored(headers: dict[str, str]) -> WebhookDelivery:
    return WebhookDelivery.objects.get(delivery_id=headers[ID])


# --- the broker is down: accepted, kept, drained ------------------------------------------------------------


def test_with_the_broker_down_an_out_of_band_alias_is_accepted_kept_and_reverted_by_the_drain(
    committing_db: None, mlflow_store: MlflowStore, dead_broker: str, client: Client,
) -> None:
    # given production's alias names v1, as governance has it live, and the broker is down
    live_in_production(mlflow_store, user("omar", roles.MODEL_OWNER))

    # when someone moves it to v2 directly in MLflow, and MLflow delivers the webhook
    mlflow_store.client.set_registered_model_alias(NAME, "production", "2")
    body, headers = alias_delivery("production", 2)
    started = time.monotonic()
    response = post(client, body, headers)
    answered_in = time.monotonic() - started

    # then: 202 (committed for real: on_commit ran and failed to queue), the delivery pending in the outbox,
    # the alias change recorded as MLflow reports it, and nothing done in the web process
    assert response.status_code == 202, response.content
    assert answered_in < 10  # publishing to the dead broker gives up quickly
    row = stored(headers)
    assert (row.state, row.attempts, row.model, row.alias, row.version) == (State.PENDING, 0, NAME, "production", "2")
    assert mlflow_store.aliases(NAME) == {"production": 2}
    [observed] = entries("mlflow.alias_observed")
    assert observed.payload == {"model": NAME, "alias": "production", "version": 2, "action": "created",
                                "delivery_id": headers[ID]}
    assert entries("mlflow.alias_reverted") == []

    # when the broker is back and the beat runs the drain (its task, in this process)
    assert tasks.drain_webhook_deliveries() == {"done": 1}

    # then MLflow's alias is put back, recorded once, and the delivery is done
    assert mlflow_store.aliases(NAME) == {"production": 1}
    row.refresh_from_db()
    assert (row.state, row.attempts, row.last_error) == (State.DONE, 1, "") and row.processed_at is not None
    [violation] = ComplianceViolation.objects.filter(kind=ComplianceViolation.Kind.OUT_OF_BAND_ALIAS)
    assert violation.reverted and violation.details["found_version"] == 2
    [reverted] = entries("mlflow.alias_reverted")
    assert reverted.payload == {"model": NAME, "alias": "production", "found_version": 2, "restored_version": 1}

    # and a drain run again finds nothing to do and writes nothing
    size = ledger_size()
    assert tasks.drain_webhook_deliveries() == {}
    assert ledger_size() == size and mlflow_store.aliases(NAME) == {"production": 1}
    assert len(entries("mlflow.alias_reverted")) == 1


def test_without_a_broker_the_follow_up_runs_in_process_and_the_delivery_is_done(
    db: None, mlflow_store: MlflowStore, client: Client, django_capture_on_commit_callbacks: Capture,
) -> None:
    # The embedded setup (eager Celery): no other process exists, so the follow-up runs after commit here.
    live_in_production(mlflow_store, user("omar", roles.MODEL_OWNER))
    mlflow_store.client.delete_registered_model_alias(NAME, "production")
    body, headers = alias_delivery("production", None)

    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, body, headers).status_code == 202

    assert mlflow_store.aliases(NAME) == {"production": 1}
    assert stored(headers).state == State.DONE
    [observed] = entries("mlflow.alias_observed")
    assert (observed.payload["version"], observed.payload["action"]) == (None, "deleted")
    assert len(entries("mlflow.alias_reverted")) == 1


# --- the database is down: 503, nothing written, MLflow's retry is accepted --------------------------------


@pytest.mark.postgres
def test_a_delivery_that_cannot_be_stored_is_a_503_with_retry_after_and_mlflow_s_retry_is_accepted(
    on_postgres: None, committing_db: None, mlflow_store: MlflowStore, client: Client,
) -> None:
    body, headers = alias_delivery("production", 2)
    before = ledger_rows()
    saved_port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(free_port())  # PostgreSQL is unreachable from this process
    try:
        response = post(client, body, headers)
    finally:
        connection.close()
        connection.settings_dict["PORT"] = saved_port

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["error"] == "unavailable" and "database" in response.json()["detail"]
    assert not WebhookDelivery.objects.exists() and ledger_rows() == before

    # MLflow retries a 503 with the same delivery (id, timestamp, signature): it is new to us, so accepted
    response = post(client, body, headers)
    assert response.status_code == 202
    assert stored(headers).state == State.DONE  # eager here: followed up at once (the model is unknown)
    assert [e.payload["delivery_id"] for e in entries("mlflow.webhook_received")] == [headers[ID]]


# --- alias deliveries record the alias change --------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("version", "action"), [(4, "created"), (None, "deleted")])
def test_an_alias_delivery_records_what_mlflow_reports_of_the_alias_with_the_delivery(
    client: Client, django_capture_on_commit_callbacks: Capture, version: int | None, action: str,
) -> None:
    body, headers = alias_delivery("staging", version)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert post(client, body, headers).status_code == 202

    [received, observed] = entries()
    assert (received.event_type, observed.event_type) == ("mlflow.webhook_received", "mlflow.alias_observed")
    assert observed.payload == {"model": NAME, "alias": "staging", "version": version, "action": action,
                                "delivery_id": headers[ID]}
    assert (observed.subject_type, observed.subject_id, observed.actor_type, observed.actor_id) == (
        "registered_model", NAME, "service", "mlflow")
    row = stored(headers)
    assert (row.state, row.alias, row.version) == (State.PENDING, "staging", "" if version is None else str(version))
    assert len(callbacks) == 1  # the follow-up, queued only once the transaction has committed


@pytest.mark.django_db
def test_other_deliveries_record_no_alias_change(client: Client, django_capture_on_commit_callbacks: Capture) -> None:
    body, headers = delivery({"name": NAME, "version": "3"}, entity="model_version", action="created")
    with django_capture_on_commit_callbacks(execute=False):
        assert post(client, body, headers).status_code == 202
    assert [e.event_type for e in entries()] == ["mlflow.webhook_received"]
    assert stored(headers).state == State.PENDING


@pytest.mark.django_db
def test_a_prompt_delivery_is_stored_done_with_nothing_to_follow(
    client: Client, django_capture_on_commit_callbacks: Capture
) -> None:
    body, headers = delivery({"name": "support-prompt"}, entity="prompt")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert post(client, body, headers).status_code == 202
    assert stored(headers).state == State.DONE and callbacks == []


@pytest.mark.django_db
@pytest.mark.parametrize("data", [{"name": NAME, "alias": "production", "version": "two"},
                                  {"name": NAME, "alias": "production"},
                                  {"name": NAME, "version": "2"}])
def test_an_alias_delivery_without_a_version_number_or_alias_is_refused_and_writes_nothing(
    client: Client, data: dict[str, str], django_capture_on_commit_callbacks: Capture,
) -> None:
    body, headers = delivery(data, entity="model_version_alias", action="created")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post(client, body, headers)
    assert response.status_code == 400 and response.json()["error"] in ("invalid_field", "missing_field")
    assert ledger_rows() == 0 and not WebhookDelivery.objects.exists()
    assert [c for c in callbacks if c != tasks.summarise_webhook_refusals.delay] == []  # no follow-up


# --- retried until done ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_follow_up_that_fails_stays_pending_and_is_retried_with_backoff_until_done(
    mlflow_store: MlflowStore, client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    # given an out-of-band production alias, delivered and stored, and MLflow then down
    live_in_production(mlflow_store, user("omar", roles.MODEL_OWNER))
    mlflow_store.client.set_registered_model_alias(NAME, "production", "2")
    body, headers = alias_delivery("production", 2)
    with django_capture_on_commit_callbacks(execute=False):
        assert post(client, body, headers).status_code == 202
    mlflow_down(settings, monkeypatch)
    now = timezone.now()

    # when the drain runs: the attempt fails, the delivery stays pending with the error's class only
    assert webhooks.webhook_deliveries_drain(now=now) == {"retry": 1}
    row = stored(headers)
    assert (row.state, row.attempts, row.next_attempt_at) == (State.PENDING, 1, now + timedelta(seconds=5))
    assert row.last_error and "127.0.0.1" not in row.last_error and " " not in row.last_error
    # not due yet: nothing is tried
    assert webhooks.webhook_deliveries_drain(now=now + timedelta(seconds=4)) == {}
    # due: fails again, and waits twice as long
    assert webhooks.webhook_deliveries_drain(now=now + timedelta(seconds=5)) == {"retry": 1}
    row.refresh_from_db()
    assert (row.attempts, row.next_attempt_at) == (2, now + timedelta(seconds=15))

    # when MLflow is back: done, the alias put back
    mlflow_back(settings, mlflow_store)
    assert webhooks.webhook_deliveries_drain(now=now + timedelta(seconds=15)) == {"done": 1}
    row.refresh_from_db()
    assert (row.state, row.attempts, row.last_error) == (State.DONE, 3, "")
    assert mlflow_store.aliases(NAME) == {"production": 1} and len(entries("mlflow.alias_reverted")) == 1


@pytest.mark.django_db
def test_the_backoff_doubles_up_to_its_maximum(settings: Any) -> None:
    settings.MLFLOW_WEBHOOK_DRAIN_INTERVAL = 5.0
    settings.MLFLOW_WEBHOOK_RETRY_MAX_SECONDS = 60
    assert [webhooks.retry_delay(n).total_seconds() for n in (1, 2, 3, 4, 5, 50)] == [5, 10, 20, 40, 60, 60]


@pytest.mark.django_db
def test_a_follow_up_that_crashed_mid_sync_is_claimed_again_once_its_lease_lapses(
    mlflow_store: MlflowStore, client: Client, django_capture_on_commit_callbacks: Capture,
) -> None:
    live_in_production(mlflow_store, user("omar", roles.MODEL_OWNER))
    mlflow_store.client.set_registered_model_alias(NAME, "production", "2")
    body, headers = alias_delivery("production", 2)
    with django_capture_on_commit_callbacks(execute=False):
        assert post(client, body, headers).status_code == 202
    now = timezone.now()
    # a worker claims it and dies before syncing (nothing else happens)
    assert webhooks.webhook_delivery_claim(delivery_id=stored(headers).pk, now=now) is not None

    assert webhooks.webhook_deliveries_drain(now=now + timedelta(seconds=60)) == {}  # still leased to it
    assert mlflow_store.aliases(NAME) == {"production": 2}
    assert webhooks.webhook_deliveries_drain(now=now + webhooks.CLAIM_LEASE) == {"done": 1}
    assert mlflow_store.aliases(NAME) == {"production": 1} and stored(headers).attempts == 2


@pytest.mark.django_db
def test_one_sync_covers_every_delivery_of_the_model_stored_before_it(
    mlflow_store: MlflowStore, client: Client, django_capture_on_commit_callbacks: Capture,
) -> None:
    # given a burst: a version created, its tag set, the staging alias moved, all pending
    live_in_production(mlflow_store, user("omar", roles.MODEL_OWNER))
    sent = [delivery({"name": NAME, "version": "2"}, entity="model_version", action="created"),
            delivery({"name": NAME, "version": "2", "key": "team", "value": "risk"}, entity="model_version_tag",
                     action="set"),
            alias_delivery("staging", 2),
            delivery({"name": "churn", "version": "1"}, entity="model_version", action="created")]
    with django_capture_on_commit_callbacks(execute=False):
        for body, headers in sent:
            assert post(client, body, headers).status_code == 202

    # when the drain runs
    outcome = webhooks.webhook_deliveries_drain()

    # then the first sync of fraud-detector covered its three deliveries (the others were never claimed: the
    # drain found them done when it came to them)
    assert outcome == {"done": 2, "nothing to do": 2}
    rows = [stored(headers) for _, headers in sent]
    assert [r.state for r in rows] == [State.DONE] * 4
    assert [r.attempts for r in rows] == [1, 0, 0, 1]


@pytest.mark.postgres
def test_a_delivery_another_drain_holds_is_skipped_not_waited_for(
    on_postgres: None, committing_db: None, client: Client,
) -> None:
    from django.db import connections

    body, headers = delivery({"name": NAME, "version": "3"}, entity="model_version", action="created")
    with pytest.MonkeyPatch.context() as patch:  # keep it pending: this test is about the claim alone
        patch.setattr(tasks.follow_up_webhook_delivery, "delay", lambda pk: None)
        assert post(client, body, headers).status_code == 202
    row = stored(headers)
    other = connections.create_connection("default")  # a second session: another drain
    try:
        other.set_autocommit(False)
        with other.cursor() as cursor:
            cursor.execute("SELECT id FROM governance_webhookdelivery WHERE id = %s FOR UPDATE", [row.pk])
        started = time.monotonic()
        assert webhooks.webhook_delivery_claim(delivery_id=row.pk, now=timezone.now()) is None
        assert time.monotonic() - started < 2
        other.rollback()
    finally:
        other.close()
    assert webhooks.webhook_delivery_claim(delivery_id=row.pk, now=timezone.now()) is not None


# --- what an attacker can (not) do with deliveries ----------------------------------------------------------


@pytest.mark.django_db
def test_a_replayed_delivery_is_409_queues_nothing_and_leaves_the_outbox_as_it_was(
    mlflow_store: MlflowStore, client: Client, django_capture_on_commit_callbacks: Capture,
) -> None:
    live_in_production(mlflow_store, user("omar", roles.MODEL_OWNER))
    body, headers = alias_delivery("production", 2)
    with django_capture_on_commit_callbacks(execute=False):
        assert post(client, body, headers).status_code == 202
    before = WebhookDelivery.objects.values().get()
    rows = ledger_rows()

    for _ in range(3):  # replayed while still pending, and again after it is done
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = post(client, body, headers)
        assert response.status_code == 409 and response.json()["error"] == "replayed_delivery"
        assert [c for c in callbacks if c != tasks.summarise_webhook_refusals.delay] == []  # no follow-up
        assert ledger_rows() == rows
        assert WebhookDelivery.objects.values().get() == before
        webhooks.webhook_deliveries_drain()
        before = WebhookDelivery.objects.values().get()
        rows = ledger_rows()
    assert before["state"] == State.DONE and before["attempts"] == 1


@pytest.mark.django_db
def test_a_signed_delivery_cannot_promote_it_only_makes_governance_re_read_mlflow(
    mlflow_store: MlflowStore, client: Client, people: Any, django_capture_on_commit_callbacks: Capture,
) -> None:
    # given v1 live in production (alias in MLflow as governance has it) and v2 waiting for approval in staging
    envs = live_in_production(mlflow_store, people.owner)
    v2 = ModelVersion.objects.get(model__name=NAME, version=2)
    make_deployed(v2, envs["dev"], requested_by=people.owner)
    mlflow_store.client.set_registered_model_alias(NAME, "dev", "2")
    waiting = PromotionRequest.objects.create(version=v2, environment=envs["staging"], requested_by=people.owner,
                                              reason="set up by the test")
    requests_before = list(PromotionRequest.objects.order_by("pk").values_list("pk", "state"))

    # when deliveries claim that production now names v2, that v2's staging alias is set, that v2 was created
    sent = [alias_delivery("production", 2), alias_delivery("staging", 2),
            delivery({"name": NAME, "version": "2"}, entity="model_version", action="created")]
    with django_capture_on_commit_callbacks(execute=True):
        for body, headers in sent:
            assert post(client, body, headers).status_code == 202

    # then: no promotion changed state, nothing new is live, MLflow's aliases are untouched (they were right)
    assert list(PromotionRequest.objects.order_by("pk").values_list("pk", "state")) == requests_before
    waiting.refresh_from_db()
    assert waiting.state == PromotionRequest.State.PENDING and not waiting.approvals.exists()
    assert list(LiveDeployment.objects.values_list("environment__name", "version__version")) == [("production", 1),
                                                                                                   ("dev", 2)]
    assert mlflow_store.aliases(NAME) == {"production": 1, "dev": 2}
    assert not [e for e in entries() if e.event_type.startswith("promotion.")]
    assert not ComplianceViolation.objects.exists()
    # what MLflow was said to report is recorded as its word, nothing more
    assert [e.payload["alias"] for e in entries("mlflow.alias_observed")] == ["production", "staging"]
    assert all(r.state == State.DONE for r in WebhookDelivery.objects.all())


# --- the schedule ------------------------------------------------------------------------------------------


def test_the_beat_drains_the_outbox_every_few_seconds_as_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = settings_module(monkeypatch, settings_environ(tmp_path))
    entry = default["CELERY_BEAT_SCHEDULE"]["mlflow-webhook-outbox-drain"]
    assert entry["task"] == tasks.drain_webhook_deliveries.name
    assert entry["schedule"] == timedelta(seconds=5) and default["MLFLOW_WEBHOOK_RETRY_MAX_SECONDS"] == 300
    assert default["MLFLOW_EVIDENCE_REFRESH"] is True  # on, and no environment variable turns it off
    tuned = settings_module(monkeypatch, settings_environ(
        tmp_path, MLFLOW_WEBHOOK_DRAIN_INTERVAL="2", MLFLOW_EVIDENCE_REFRESH="0"))
    assert tuned["CELERY_BEAT_SCHEDULE"]["mlflow-webhook-outbox-drain"]["schedule"] == timedelta(seconds=2)
    assert tuned["MLFLOW_EVIDENCE_REFRESH"] is True
    with pytest.raises(ImproperlyConfigured):
        settings_module(monkeypatch, settings_environ(tmp_path, MLFLOW_WEBHOOK_DRAIN_INTERVAL="0.1"))
