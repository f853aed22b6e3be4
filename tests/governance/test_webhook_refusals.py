"""Unauthenticated callers cannot write to the ledger (issue #3).

Refused webhook deliveries are counted by reason (Prometheus and a database counter),
summarised into the ledger once per closed interval and reason, and each source address
is rate-limited. Only a delivery with a valid signature writes an entry of its own.
"""
from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.test import Client

from audit.event_types import registry
from config.celery import app
from governance import tasks, webhooks
from governance.models import WebhookDelivery, WebhookRefusalCounter
from tests.governance.test_webhooks import (
    SECRET,
    Capture,
    all_events,
    counted,
    delivery,
    ledger_rows,
    post,
    refusals_metric,
)
from tests.settings_helpers import settings_environ, settings_module

pytestmark = pytest.mark.django_db

SUMMARY = "mlflow.webhook_refusals_summarised"
INTERVAL = 3600


@pytest.fixture(autouse=True)
def _webhook_settings(settings: Any) -> None:
    settings.MLFLOW_WEBHOOK_SECRET = SECRET
    settings.MLFLOW_WEBHOOK_TOLERANCE_SECONDS = 300
    settings.MLFLOW_WEBHOOK_RATE = "120/min"
    settings.MLFLOW_WEBHOOK_REFUSAL_INTERVAL = INTERVAL
    cache.clear()  # the rate limit's windows live in the (process-wide) cache


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The endpoint's clock, frozen at ``clock[0]`` (tests move it)."""
    frozen = [float(int(time.time()))]
    monkeypatch.setattr(webhooks, "_clock", lambda: frozen[0])
    return frozen


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    queued: list[str] = []
    monkeypatch.setattr(tasks.sync_model, "delay", queued.append)
    return queued


def _window_end(at: float) -> datetime:
    return datetime.fromtimestamp(at - at % INTERVAL + INTERVAL, tz=UTC)


def summaries() -> list[dict[str, Any]]:
    return all_events(SUMMARY)


# --- a flood of refusals -----------------------------------------------------------------------------------


def test_a_flood_of_1000_bad_deliveries_writes_nothing_and_is_summarised_once_per_reason(
    client: Client, settings: Any, clock: list[float], django_capture_on_commit_callbacks: Capture,
    syncs: list[str],
) -> None:
    settings.MLFLOW_WEBHOOK_RATE = "100000/min"  # this test is about the ledger, not the limit
    reasons = ("bad_signature", "method_not_allowed", "stale_timestamp")
    before, metrics = ledger_rows(), {r: refusals_metric(r) for r in reasons}
    sent_ids: list[str] = []

    with django_capture_on_commit_callbacks(execute=True):
        for i in range(1000):
            if i % 3 == 0:
                body, headers = delivery(secret="not-the-secret", timestamp=int(clock[0]))
                expected = 401
            elif i % 3 == 1:
                body, headers = delivery(timestamp=int(clock[0]))
                expected = 405
            else:
                body, headers = delivery(timestamp=int(clock[0]) - 1000)
                expected = 400
            sent_ids.append(headers["X-MLflow-Delivery-Id"])
            response = post(client, body, headers, method="get" if expected == 405 else "post")
            assert response.status_code == expected

    # Nothing in the ledger, not even pending; counted per reason in both places.
    assert ledger_rows() == before
    expected_counts = {"bad_signature": 334, "method_not_allowed": 333, "stale_timestamp": 333}
    for reason, count in expected_counts.items():
        assert refusals_metric(reason) == metrics[reason] + count
        assert counted(reason) == count
    assert WebhookRefusalCounter.objects.count() == 3 and not WebhookDelivery.objects.exists() and syncs == []

    # While the interval is open, summarising writes nothing.
    end = _window_end(clock[0])
    assert webhooks.webhook_refusals_summarise(now=end - timedelta(seconds=1)) == 0
    assert ledger_rows() == before

    # Once it has closed: exactly one entry per reason, with the counts and nothing of the callers.
    assert webhooks.webhook_refusals_summarise(now=end) == 3
    written = {s["reason"]: s for s in summaries()}
    assert len(summaries()) == 3 and set(written) == set(expected_counts)
    frozen_at = datetime.fromtimestamp(clock[0], tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    for reason, count in expected_counts.items():
        assert written[reason] == {
            "reason": reason, "count": count, "first_at": frozen_at, "last_at": frozen_at,
            "window_start": (end - timedelta(seconds=INTERVAL)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "interval_seconds": INTERVAL,
        }
    text = json.dumps(summaries())
    assert "127.0.0.1" not in text and not any(i in text for i in sent_ids)
    assert ledger_rows() == before + 3

    # Idempotent: a second run (the beat after the lazy one) writes nothing more.
    assert webhooks.webhook_refusals_summarise(now=end + timedelta(minutes=5)) == 0
    assert ledger_rows() == before + 3

    # And a valid signed delivery still gets 202 and its own entry.
    body, headers = delivery(timestamp=int(clock[0]))
    assert post(client, body, headers).status_code == 202
    assert len(all_events("mlflow.webhook_received")) == 1


def test_without_beat_the_first_refusal_of_a_new_interval_summarises_the_closed_one(
    client: Client, clock: list[float], django_capture_on_commit_callbacks: Capture,
) -> None:
    # The embedded setup (eager Celery, no beat): the lazy path alone must produce the summary.
    # Two refusals an interval ago; the summary they queued ran while it was open (so it is not run
    # here: the task reads the real time, which has left that interval already).
    clock[0] = time.time() - INTERVAL
    with django_capture_on_commit_callbacks(execute=False):
        for _ in range(2):
            assert post(client, *delivery(secret="nope", timestamp=int(clock[0]))).status_code == 401
    assert summaries() == [] and counted("bad_signature") == 2

    clock[0] = time.time()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert post(client, *delivery(timestamp=int(clock[0])), method="get").status_code == 405

    assert len(callbacks) == 1  # the summary task, queued after commit
    [summary] = summaries()
    assert (summary["reason"], summary["count"]) == ("bad_signature", 2)
    assert counted("method_not_allowed") == 1  # its own interval is still open


def test_a_refusal_counted_after_its_interval_was_summarised_goes_to_the_next_interval() -> None:
    # A refusal whose clock reading is older than the summary that just ran (a slow request): its count
    # must neither be lost nor change an interval already in the ledger.
    at = datetime(2026, 12, 7, 10, 59, 59, tzinfo=UTC)
    webhooks.webhook_refusal_count(reason="bad_signature", at=at)
    assert webhooks.webhook_refusals_summarise(now=datetime(2026, 12, 7, 11, 0, tzinfo=UTC)) == 1

    webhooks.webhook_refusal_count(reason="bad_signature", at=at)

    assert webhooks.webhook_refusals_summarise(now=datetime(2026, 12, 7, 11, 30, tzinfo=UTC)) == 0
    assert webhooks.webhook_refusals_summarise(now=datetime(2026, 12, 7, 12, 0, tzinfo=UTC)) == 1
    assert [(s["count"], s["window_start"]) for s in summaries()] == [
        (1, "2026-12-07T10:00:00.000000Z"), (1, "2026-12-07T11:00:00.000000Z")]


def test_summarised_counters_are_forgotten_after_the_retention() -> None:
    at = datetime(2026, 1, 1, 10, 30, tzinfo=UTC)
    webhooks.webhook_refusal_count(reason="bad_signature", at=at)
    webhooks.webhook_refusals_summarise(now=at + timedelta(hours=1))
    assert WebhookRefusalCounter.objects.count() == 1
    webhooks.webhook_refusals_summarise(now=at + timedelta(hours=1) + webhooks.COUNTER_RETENTION + timedelta(1))
    assert not WebhookRefusalCounter.objects.exists() and len(summaries()) == 1


def test_the_beat_runs_the_summary_task_which_is_idempotent() -> None:
    entry = django_settings.CELERY_BEAT_SCHEDULE["mlflow-webhook-refusals-summarise"]
    assert entry["task"] == "governance.tasks.summarise_webhook_refusals" in app.tasks
    assert entry["schedule"] <= timedelta(minutes=5)
    webhooks.webhook_refusal_count(reason="bad_signature", at=datetime.now(UTC) - timedelta(hours=2))

    assert tasks.summarise_webhook_refusals.delay().get() == 1
    assert tasks.summarise_webhook_refusals.delay().get() == 0
    assert len(summaries()) == 1


def test_the_refused_entry_type_stays_registered_for_the_history() -> None:
    assert "mlflow.webhook_refused" in registry
    assert "no longer written" in registry.get("mlflow.webhook_refused").description
    assert set(registry.get(SUMMARY).fields) == {
        "reason", "count", "first_at", "last_at", "window_start", "interval_seconds"}


def test_a_refusal_is_still_answered_when_the_database_cannot_count_it(
    client: Client, monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(**_: Any) -> None:
        raise DatabaseError("database is locked")

    monkeypatch.setattr(webhooks, "webhook_refusal_count", broken)
    response = post(client, *delivery(secret="nope"))
    assert response.status_code == 401 and response.json()["error"] == "bad_signature"


# --- the rate limit ----------------------------------------------------------------------------------------


def _valid(at: float) -> tuple[bytes, dict[str, str]]:
    return delivery(timestamp=int(at))


def test_over_the_rate_limit_a_source_gets_429_with_retry_after_and_nothing_is_written(
    client: Client, settings: Any, clock: list[float], django_capture_on_commit_callbacks: Capture,
    syncs: list[str],
) -> None:
    settings.MLFLOW_WEBHOOK_RATE = "3/min"
    clock[0] = clock[0] - clock[0] % 60 + 15  # 45 s before the window ends
    for _ in range(3):
        assert post(client, *_valid(clock[0])).status_code == 202
    before, metric = ledger_rows(), refusals_metric("rate_limited")

    # Even a valid delivery is turned away: the limit comes before anything is read or checked.
    with django_capture_on_commit_callbacks(execute=True):
        over = post(client, *_valid(clock[0]))
        flood = [post(client, *delivery(secret="nope")).status_code for _ in range(20)]

    assert over.status_code == 429 and over["Retry-After"] == "45"
    assert over.json() == {"error": "rate_limited", "detail": "too many deliveries from this address: retry after 45 s"}
    assert set(flood) == {429}
    assert ledger_rows() == before and WebhookDelivery.objects.count() == 3
    assert counted("rate_limited") == 21 and refusals_metric("rate_limited") == metric + 21
    assert counted("bad_signature") == 0  # never got as far as the signature

    # Another source has its own budget; the next window opens the limit again.
    other = Client(REMOTE_ADDR="10.1.2.3")
    assert post(other, *_valid(clock[0])).status_code == 202
    clock[0] += 45
    assert post(client, *_valid(clock[0])).status_code == 202


@pytest.mark.parametrize(("rate", "parsed"), [("120/min", (120, 60)), ("5/s", (5, 1)), ("1000/hour", (1000, 3600)),
                                               (" 7/day ", (7, 86400))])
def test_parse_rate(rate: str, parsed: tuple[int, int]) -> None:
    assert webhooks.parse_rate(rate) == parsed


@pytest.mark.parametrize("rate", ["", "0/min", "-1/min", "120", "120/fortnight", "many/min", "1.5/s"])
def test_parse_rate_refuses_nonsense(rate: str) -> None:
    with pytest.raises(ValueError, match="is not"):
        webhooks.parse_rate(rate)


def test_a_malformed_rate_stops_the_process_at_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # config/settings.py executed in this process: what it raises is what stops a process at start-up.
    with pytest.raises(ImproperlyConfigured, match="MLFLOW_WEBHOOK_RATE"):
        settings_module(monkeypatch, settings_environ(tmp_path, MLFLOW_WEBHOOK_RATE="lots/min"))
