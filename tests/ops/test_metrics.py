"""/metrics: restricted to the METRICS_TOKEN bearer or InfoSec, and its numbers move with the system."""
from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.models import Checkpoint, LedgerHead, PendingEntry
from audit.services.checkpoints import checkpoint_create
from audit.services.integrity import verification_run
from tests.ops.helpers import notes
from web.metrics import CELERY_TASKS

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-for-tests-0123456789"


@pytest.fixture
def token(settings: Any) -> str:
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client: Client, token: str = TOKEN) -> str:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def value(text: str, name: str, **labels: str) -> float | None:
    label_re = "".join(f'(?=[^}}]*{k}="{re.escape(v)}")' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}(?:\{{{label_re}[^}}]*\}})?\s+(\S+)$"
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else None


def test_refused_without_the_token(client: Client, token: str) -> None:
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token-wrong-token").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    assert b"governance_" not in response.content


def test_hidden_when_no_token_is_configured(client: Client, settings: Any) -> None:
    settings.METRICS_TOKEN = None
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything-at-all-here").status_code == 404


def test_signed_in_non_infosec_is_refused(client: Client, token: str, auditor: User, outsider: User) -> None:
    for user in (auditor, outsider):
        client.force_login(user)
        assert client.get("/metrics").status_code == 401


def test_infosec_session_may_read(client: Client, settings: Any, infosec: User) -> None:
    settings.METRICS_TOKEN = None
    client.force_login(infosec)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"governance_ledger_entries" in response.content


def test_numbers_move(client: Client, token: str) -> None:
    # given a first scrape
    before = scrape(client)
    entries = value(before, "governance_ledger_entries_total")
    assert entries is not None
    healthz_before = value(before, "governance_http_requests_total", route="ops-healthz", status="200") or 0
    assert value(before, "governance_ledger_verification_ok", mode="full") is None

    # when entries are recorded (two pending), a checkpoint and a verification happen, requests are served
    notes(4)
    checkpoint_create()
    verification_run(mode="full")
    from audit import ledger
    from audit.ledger import Actor, Subject

    for _ in range(2):
        ledger.record(event_type="ledger.note_added", actor=Actor.system("t"), subject=Subject("model", "x"),
                      payload={"text": "pending"})
    client.get("/healthz")
    client.get("/healthz")

    # then the next scrape shows it
    after = scrape(client)
    head = LedgerHead.objects.get(pk=1).tree_size
    assert head >= entries + 4
    assert value(after, "governance_ledger_entries_total") == head
    assert value(after, "governance_ledger_pending_entries") == PendingEntry.objects.count() >= 2
    assert value(after, "governance_ledger_sequencer_lag_seconds") is not None
    assert value(after, "governance_http_requests_total", route="ops-healthz", method="GET", status="200") == (
        healthz_before + 2
    )
    assert value(after, "governance_ledger_verification_ok", mode="full") == 1
    assert value(after, "governance_ledger_checkpoint_tree_size") == Checkpoint.objects.latest("id").tree_size
    assert value(after, "governance_ledger_checkpoint_age_seconds") is not None
    assert value(after, "governance_promotions", state="pending") == 0
    assert value(after, "governance_access_grants_expiring", within="24h") == 0
    # the raw path is never a label: routes are names
    assert 'route="/healthz"' not in after


def test_celery_outcomes_are_counted() -> None:
    from audit.tasks import integrate_pending

    before = CELERY_TASKS.labels("audit.tasks.integrate_pending", "success")._value.get()
    integrate_pending.apply()
    after = CELERY_TASKS.labels("audit.tasks.integrate_pending", "success")._value.get()
    assert after == before + 1


def test_worker_serves_its_counters_when_asked(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import urllib.request

    from web import metrics

    started: list[Any] = []
    real = metrics.start_http_server

    def spy(port: int, **kwargs: Any) -> Any:
        result = real(port, **kwargs)
        started.append(result)
        return result

    monkeypatch.setattr(metrics, "start_http_server", spy)
    settings.CELERY_METRICS_PORT = None
    metrics._serve_worker_metrics()
    assert started == []

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.CELERY_METRICS_PORT = port
    settings.CELERY_METRICS_ADDR = "127.0.0.1"
    metrics._serve_worker_metrics()
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "governance_celery_tasks_total" in body
    finally:
        server, thread = started[0]
        server.shutdown()
        thread.join(timeout=5)
