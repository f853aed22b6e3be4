"""/readyz against a real PostgreSQL: a killed connection is replaced (still ready), a dead database is not.

No ``django_db`` mark: the probe must run outside any transaction, as in a request (``committing_db``).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.test import Client

from tests.ops.helpers import free_port

READY = {"ready": True, "checks": {"database": "ok", "cache": "ok", "signing_key": "ok"}}


def ready(client: Client) -> tuple[int, dict[str, Any]]:
    response = client.get("/readyz")
    return response.status_code, response.json()


@pytest.mark.postgres
def test_a_killed_connection_is_replaced_and_the_instance_stays_ready(
    on_postgres: None, committing_db: None, client: Client,
) -> None:
    # given the web process's connection killed by the server (as pg_terminate_backend or a failover does)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    s = connection.settings_dict
    with psycopg.connect(host=s["HOST"] or "127.0.0.1", port=int(s["PORT"] or 5432), user=s["USER"],
                         dbname=s["NAME"], autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)

    # when the readiness probe runs on it: the dead connection is replaced, the database answers
    status_code, body = ready(client)
    assert (status_code, body["checks"]["database"]) == (200, "reconnected")
    assert body["ready"] is True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid
    # and the next probe finds a healthy connection
    assert ready(client) == (200, READY)


@pytest.fixture
def database_moved_away(committing_db: None) -> Iterator[None]:
    """The database made unreachable for real: the connection is closed and its port points at nothing."""
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict["HOST"] = "127.0.0.1"
    connection.settings_dict["PORT"] = str(free_port())
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


@pytest.mark.postgres
def test_a_dead_database_is_unreachable_and_says_nothing_more(
    on_postgres: None, database_moved_away: None, client: Client,
) -> None:
    port = connection.settings_dict["PORT"]
    status_code, body = ready(client)
    assert status_code == 503
    assert body == {"ready": False, "checks": {"database": "unreachable", "cache": "ok", "signing_key": "ok"}}
    assert port not in str(body) and "127.0.0.1" not in str(body)


@pytest.mark.postgres
def test_metrics_say_the_database_is_down_instead_of_failing(
    on_postgres: None, database_moved_away: None, client: Client, settings: Any,
) -> None:
    settings.METRICS_TOKEN = "metrics-token-for-tests-0123456789"
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}")
    assert response.status_code == 200
    text = response.content.decode()
    assert "\ngovernance_metrics_database_up 0.0\n" in text
    assert "governance_ledger_sequencer_lag_seconds" not in text  # no half-read set of gauges
