"""/healthz, /readyz and /status.

/readyz checks only what the web process needs (database, cache, signing key) and tells a dead database from
a dead connection; the worker's dependencies (broker, sequencer, witnesses) are reported at /status and never
make the web tier unready (issue #16 §3).
"""
from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import OperationalError, connection
from django.test import Client
from django.utils import timezone

from audit import ledger
from audit.canonical import format_timestamp
from audit.ledger import Actor, Subject
from audit.models import LedgerHead
from tests.ops.helpers import free_port, own_redis

pytestmark = pytest.mark.django_db

TOKEN = "status-token-for-tests-0123456789"
READY = {"ready": True, "checks": {"database": "ok", "cache": "ok", "signing_key": "ok"}}


def ready(client: Client) -> tuple[int, dict[str, Any]]:
    response = client.get("/readyz")
    return response.status_code, response.json()


def status(client: Client) -> dict[str, Any]:
    response = client.get("/status", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    return dict(response.json())


@pytest.fixture
def token(settings: Any) -> str:
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def redis_cache(settings: Any, url: str) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}}


# --- /healthz -------------------------------------------------------------------------------------------


def test_healthz_is_always_200_fast_and_touches_no_database(client: Client, django_assert_num_queries: Any) -> None:
    client.get("/healthz")  # the first request imports every URLconf
    started = time.perf_counter()
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"alive": True}
    assert time.perf_counter() - started < 1.0
    assert response["Cache-Control"].startswith("max-age=0")


# --- /readyz: what the web process needs ------------------------------------------------------------------


def test_ready_when_everything_answers(client: Client) -> None:
    assert ready(client) == (200, READY)


def test_database_failing_inside_a_transaction_is_unreachable(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    # A mock, because the test's own transaction must survive: the real outages are the PostgreSQL tests below.
    # Inside an atomic block the check must not close the connection (that would abort the caller's transaction);
    # tests/ops/test_readiness_pg.py makes the real outages, outside any transaction.
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("could not connect to server: secret-host:5432")

    monkeypatch.setattr(connection, "cursor", broken)
    status_code, body = ready(client)
    assert status_code == 503
    assert body == {"ready": False, "checks": {"database": "unreachable", "cache": "ok", "signing_key": "ok"}}
    assert "secret-host" not in str(body)


def test_cache_on_redis_ready_then_down_then_back(client: Client, settings: Any) -> None:
    settings.READY_CACHE_TIMEOUT = 0.3
    with own_redis() as redis:
        redis_cache(settings, redis.url)
        assert ready(client) == (200, READY)

        redis.stop()
        started = time.perf_counter()
        status_code, body = ready(client)
        assert status_code == 503
        assert body["checks"] == {"database": "ok", "cache": "unreachable", "signing_key": "ok"}
        assert str(redis.port) not in str(body)
        assert time.perf_counter() - started < 3

        redis.start()  # same port: the probe's pool reconnects by itself
        assert ready(client) == (200, READY)


def test_a_cache_that_accepts_but_never_answers_fails_within_the_timeout(client: Client, settings: Any) -> None:
    # a listener that takes the connection and never says a word (a hung Redis, a black-holing proxy)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        settings.READY_CACHE_TIMEOUT = 0.2
        redis_cache(settings, f"redis://127.0.0.1:{server.getsockname()[1]}/0")
        started = time.perf_counter()
        status_code, body = ready(client)
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()
    assert (status_code, body["checks"]["cache"]) == (503, "unreachable")
    assert elapsed < 2, elapsed


def test_signing_key_missing(client: Client, settings: Any, tmp_path: Path) -> None:
    settings.LEDGER_SIGNING_KEY = tmp_path / "absent.pem"
    settings.LEDGER_SIGNING_KEY_IS_DEV = False
    status_code, body = ready(client)
    assert status_code == 503
    assert body["checks"]["signing_key"] == "missing"
    assert str(tmp_path) not in str(body)


def test_signing_key_not_a_key(client: Client, settings: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    settings.LEDGER_SIGNING_KEY = bad
    settings.LEDGER_SIGNING_KEY_IS_DEV = False
    status_code, body = ready(client)
    assert (status_code, body["checks"]["signing_key"]) == (503, "invalid")


# --- the worker's dependencies: /status, never readiness ----------------------------------------------------


def _pending_since(seconds: float) -> None:
    when = timezone.now() - timedelta(seconds=seconds)
    ledger.record(event_type="ledger.note_added", actor=Actor.system("tests"), subject=Subject("model", "m"),
                  payload={"text": "waiting"}, timestamp=when)
    LedgerHead.objects.filter(pk=1).update(updated_at=when)


def test_a_stalled_sequencer_is_degraded_status_but_the_web_stays_ready(client: Client, settings: Any,
                                                                         token: str) -> None:
    # given the worker stopped with events pending for ten minutes
    settings.READY_MAX_PENDING_AGE_SECONDS = 60
    _pending_since(600)
    # then every web replica stays ready, and the status says what is wrong
    assert ready(client) == (200, READY)
    body = status(client)
    assert body["status"] == "degraded" and body["degraded"] == ["sequencer"]
    assert body["checks"]["sequencer"] == "lagging"
    ledger.integrate()
    assert status(client) == {"status": "ok", "degraded": [], "checks": {
        "database": "ok", "cache": "ok", "signing_key": "ok", "broker": "in_process", "sequencer": "ok"},
        "scheduler": "off"}  # the tests run tasks themselves: no embedded scheduler


def test_a_young_pending_entry_is_not_lag(client: Client, settings: Any, token: str) -> None:
    settings.READY_MAX_PENDING_AGE_SECONDS = 60
    _pending_since(5)
    assert status(client)["checks"]["sequencer"] == "ok"


def test_backdated_event_with_a_live_sequencer_is_not_lag(client: Client, settings: Any, token: str) -> None:
    # given an event recorded with an old timestamp, while the sequencer advanced a moment ago
    settings.READY_MAX_PENDING_AGE_SECONDS = 60
    ledger.record(event_type="ledger.note_added", actor=Actor.system("tests"), subject=Subject("model", "m"),
                  payload={"text": "imported"}, timestamp=timezone.now() - timedelta(days=3))
    LedgerHead.objects.filter(pk=1).update(updated_at=timezone.now())
    assert status(client)["checks"]["sequencer"] == "ok"


def test_broker_unreachable_is_status_not_readiness(client: Client, settings: Any, token: str) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    settings.READY_BROKER_TIMEOUT = 0.2
    assert ready(client) == (200, READY)
    body = status(client)
    assert body["checks"]["broker"] == "unreachable" and body["degraded"] == ["broker"]
    assert "s3cret" not in str(body) and "127.0.0.1" not in str(body)


def test_broker_reachable(client: Client, settings: Any, token: str) -> None:
    with own_redis() as redis:
        settings.CELERY_TASK_ALWAYS_EAGER = False
        settings.CELERY_BROKER_URL = redis.url
        assert status(client)["checks"]["broker"] == "ok"


def test_status_lists_the_readiness_checks_too(client: Client, settings: Any, tmp_path: Path, token: str) -> None:
    settings.LEDGER_SIGNING_KEY = tmp_path / "absent.pem"
    settings.LEDGER_SIGNING_KEY_IS_DEV = False
    response = client.get("/status", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200  # a dashboard's view, not a probe
    assert response.json()["checks"]["signing_key"] == "missing" and response.json()["degraded"] == ["signing_key"]


def test_status_is_for_the_token_infosec_and_auditors(client: Client, settings: Any, token: str, infosec: User,
                                                      auditor: User, outsider: User) -> None:
    anonymous = client.get("/status")
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"].startswith("Bearer")
    assert b"checks" not in anonymous.content
    assert client.get("/status", HTTP_AUTHORIZATION="Bearer wrong-token-wrong-token").status_code == 401
    assert client.get("/status", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    client.force_login(outsider)
    assert client.get("/status").status_code == 401
    for user in (infosec, auditor):
        client.force_login(user)
        assert client.get("/status").json()["status"] == "ok"


def test_status_is_hidden_from_anonymous_callers_without_a_token(client: Client, settings: Any,
                                                                 auditor: User) -> None:
    settings.METRICS_TOKEN = None
    assert client.get("/status", HTTP_AUTHORIZATION="Bearer anything-at-all-here").status_code == 404
    client.force_login(auditor)
    assert client.get("/status").status_code == 200


def test_probes_refuse_post(client: Client, token: str) -> None:
    assert client.post("/healthz").status_code == 405
    assert client.post("/readyz").status_code == 405
    assert client.post("/status", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def test_timestamp_format_is_what_health_parses() -> None:
    assert format_timestamp(timezone.now()).endswith("Z")
