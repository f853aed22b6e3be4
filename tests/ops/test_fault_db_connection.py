"""Fault test (PostgreSQL): the app's database connection is terminated (``pg_terminate_backend``) from a
second connection while PostgreSQL itself stays up.

Before issue #16 the next request on each worker answered 500. Now a connection dropped between
requests is replaced at the request's start (``CONN_HEALTH_CHECKS``); one dropped under a request is
retried once for a read; a write is never re-run: it answers 503 ``unavailable`` (database) with
``Retry-After`` and writes nothing, and the client retries it (with its ``Idempotency-Key``).

The test client runs the app in this thread, on this thread's connection: terminating that backend
is exactly what happened to each gunicorn worker.
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import psycopg
import pytest
from django.db import close_old_connections, connection

from tests.access.helpers import grant
from tests.api.helpers import problem_of
from web.models import IdempotencyRecord

pytestmark = pytest.mark.postgres


def _dsn() -> str:
    s = connection.settings_dict
    return (f"host={s['HOST'] or '127.0.0.1'} port={s['PORT'] or 5432} dbname={s['NAME']} user={s['USER']}"
            + (f" password={s['PASSWORD']}" if s["PASSWORD"] else ""))


def app_backend() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def terminate_app_connection() -> int:
    """Kill this thread's (the app's) backend from another connection; wait until it is gone."""
    pid = app_backend()
    with psycopg.connect(_dsn(), autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
        deadline = time.monotonic() + 10
        while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone() != (0,):
            assert time.monotonic() < deadline, "the terminated backend did not go away"
            time.sleep(0.02)
    return pid


def ledger_rows() -> int:
    with psycopg.connect(_dsn(), autocommit=True) as other:  # counted outside the app's connection
        row = other.execute("SELECT (SELECT count(*) FROM audit_pendingentry) + (SELECT count(*) FROM audit_entry)")
        return int(row.fetchone()[0])


def drift() -> dict[str, Any]:
    return {"events": [{
        "event_id": str(uuid.uuid4()), "type": "monitoring.data_drift_detected",
        "occurred_at": "2026-11-29T09:29:58+01:00", "model": "fraud-detector", "version": 1,
        "environment": "production", "metric": "psi", "value": 0.31, "threshold": 0.2}]}


@pytest.fixture
def clients(on_postgres: None, committing_db: None, token_for: Any, people: Any, res: Any) -> tuple[Any, Any]:
    reader = token_for(["ledger:read", "models:read"])
    writer = token_for(["events:write"])
    grant(people.owner, writer.service_account.user, res.model, "view_metadata")
    return reader, writer


def test_the_connections_are_persistent_and_health_checked() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    assert connection.settings_dict["CONN_HEALTH_CHECKS"] is True
    assert connection.settings_dict["CONN_MAX_AGE"] == 60


def test_a_read_on_a_dropped_connection_is_retried_once_and_answers(clients, caplog) -> None:
    reader, _ = clients
    assert reader.get("/api/v1/ledger/entries").status_code == 200
    dead = terminate_app_connection()
    caplog.set_level(logging.INFO, logger="web.outage")

    response = reader.get("/api/v1/ledger/entries")

    assert response.status_code == 200, response.content
    assert app_backend() != dead
    assert any("retrying once" in r.getMessage() for r in caplog.records)
    # and a model read too (the token is authenticated again on the new connection)
    terminate_app_connection()
    assert reader.get("/api/v1/models").status_code == 200


def test_a_write_on_a_dropped_connection_is_a_503_and_writes_nothing(clients) -> None:
    _, writer = clients
    assert writer.post("/api/v1/events", drift(), format="json").status_code == 201
    before = ledger_rows()
    terminate_app_connection()

    refused = writer.post("/api/v1/events", drift(), format="json")

    assert refused.status_code == 503
    body = problem_of(refused)
    assert body["code"] == "unavailable" and "database" in body["detail"]
    assert refused["Retry-After"].isdigit()
    assert "127.0.0.1" not in refused.content.decode() and "5432" not in refused.content.decode()
    assert ledger_rows() == before

    # with an Idempotency-Key: the 503 is not stored, so the retry runs (once) and succeeds
    body = drift()
    terminate_app_connection()
    first = writer.post("/api/v1/events", body, format="json", HTTP_IDEMPOTENCY_KEY="after-drop")
    assert first.status_code == 503
    assert ledger_rows() == before
    retry = writer.post("/api/v1/events", body, format="json", HTTP_IDEMPOTENCY_KEY="after-drop")
    assert retry.status_code == 201 and "Idempotent-Replayed" not in retry
    assert ledger_rows() == before + 1
    assert IdempotencyRecord.objects.filter(key="after-drop", status=201).count() == 1


def test_a_connection_dropped_between_requests_is_replaced_at_the_next_request(clients, as_user, people) -> None:
    session = as_user(people.auditor)
    assert session.get("/console/").status_code == 200
    terminate_app_connection()

    # what Django does when a request starts (the test client skips it): with CONN_HEALTH_CHECKS the
    # persistent connection is checked before its first use and replaced, so even the session and
    # the signed-in user, loaded by middleware before any view, find a working connection
    close_old_connections()
    response = session.get("/console/")

    assert response.status_code == 200
