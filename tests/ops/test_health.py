"""/healthz and /readyz: each dependency down makes the instance not ready, saying which one."""
from __future__ import annotations

import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError, connection
from django.test import Client
from django.utils import timezone

from audit import ledger
from audit.canonical import format_timestamp
from audit.ledger import Actor, Subject
from audit.models import LedgerHead

pytestmark = pytest.mark.django_db


def ready(client: Client) -> tuple[int, dict[str, Any]]:
    response = client.get("/readyz")
    return response.status_code, response.json()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_healthz_is_always_200_fast_and_touches_no_database(client: Client, django_assert_num_queries: Any) -> None:
    client.get("/healthz")  # the first request imports every URLconf
    started = time.perf_counter()
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"alive": True}
    assert time.perf_counter() - started < 1.0
    assert response["Cache-Control"].startswith("max-age=0")


def test_ready_when_everything_answers(client: Client) -> None:
    status, body = ready(client)
    assert status == 200
    assert body == {"ready": True, "checks": {"database": "ok", "broker": "in_process", "signing_key": "ok",
                                              "sequencer": "ok"}}


def test_database_down(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("could not connect to server: secret-host:5432")

    monkeypatch.setattr(connection, "cursor", broken)
    status, body = ready(client)
    assert status == 503
    assert body["ready"] is False
    assert body["checks"]["database"] == "unreachable"
    assert body["checks"]["sequencer"] == "unknown"
    assert "secret-host" not in str(body)


def test_broker_unreachable(client: Client, settings: Any) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = f"redis://:s3cret@127.0.0.1:{closed_port()}/0"
    settings.READY_BROKER_TIMEOUT = 0.2
    status, body = ready(client)
    assert status == 503
    assert body["checks"]["broker"] == "unreachable"
    assert body["checks"]["database"] == "ok"
    assert "s3cret" not in str(body) and "127.0.0.1" not in str(body)


def test_broker_reachable(client: Client, settings: Any) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        settings.CELERY_TASK_ALWAYS_EAGER = False
        settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{server.getsockname()[1]}/0"
        status, body = ready(client)
    assert (status, body["checks"]["broker"]) == (200, "ok")


def test_signing_key_missing(client: Client, settings: Any, tmp_path: Path) -> None:
    settings.LEDGER_SIGNING_KEY = tmp_path / "absent.pem"
    settings.LEDGER_SIGNING_KEY_IS_DEV = False
    status, body = ready(client)
    assert status == 503
    assert body["checks"]["signing_key"] == "missing"
    assert str(tmp_path) not in str(body)


def test_signing_key_not_a_key(client: Client, settings: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    settings.LEDGER_SIGNING_KEY = bad
    settings.LEDGER_SIGNING_KEY_IS_DEV = False
    status, body = ready(client)
    assert (status, body["checks"]["signing_key"]) == (503, "invalid")


def _pending_since(seconds: float) -> None:
    when = timezone.now() - timedelta(seconds=seconds)
    ledger.record(event_type="ledger.note_added", actor=Actor.system("tests"), subject=Subject("model", "m"),
                  payload={"text": "waiting"}, timestamp=when)
    LedgerHead.objects.filter(pk=1).update(updated_at=when)


def test_sequencer_lagging(client: Client, settings: Any) -> None:
    settings.READY_MAX_PENDING_AGE_SECONDS = 60
    _pending_since(600)
    status, body = ready(client)
    assert status == 503
    assert body["checks"]["sequencer"] == "lagging"
    ledger.integrate()
    assert ready(client)[0] == 200


def test_a_young_pending_entry_is_not_lag(client: Client, settings: Any) -> None:
    settings.READY_MAX_PENDING_AGE_SECONDS = 60
    _pending_since(5)
    assert ready(client) == (200, {"ready": True, "checks": {"database": "ok", "broker": "in_process",
                                                             "signing_key": "ok", "sequencer": "ok"}})


def test_backdated_event_with_a_live_sequencer_is_not_lag(client: Client, settings: Any) -> None:
    # given an event recorded with an old timestamp, while the sequencer advanced a moment ago
    settings.READY_MAX_PENDING_AGE_SECONDS = 60
    ledger.record(event_type="ledger.note_added", actor=Actor.system("tests"), subject=Subject("model", "m"),
                  payload={"text": "imported"}, timestamp=timezone.now() - timedelta(days=3))
    LedgerHead.objects.filter(pk=1).update(updated_at=timezone.now())
    assert ready(client)[1]["checks"]["sequencer"] == "ok"


def test_probes_refuse_post(client: Client) -> None:
    assert client.post("/healthz").status_code == 405
    assert client.post("/readyz").status_code == 405


def test_timestamp_format_is_what_health_parses() -> None:
    assert format_timestamp(timezone.now()).endswith("Z")
