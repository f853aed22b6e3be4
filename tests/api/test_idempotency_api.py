"""Idempotency-Key on every unsafe API request (web/api/idempotency.py): replay, refusal, isolation.

The events endpoint is the write used throughout: it writes one ledger entry per event, and its own
``event_id`` idempotency answers a plain resend with ``200 created: false``, so a replayed ``201``
shows the stored response came back rather than the view running again.
"""
from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from access.models import ApiToken
from access.services.tokens import api_token_revoke
from audit.models import PendingEntry
from tests.access.helpers import grant
from tests.api.helpers import problem_of, writes_no_ledger
from web.api.idempotency import lock_id
from web.models import IdempotencyRecord
from web.tasks import purge_idempotency_keys

URL = "/api/v1/events"


def drift(**overrides: Any) -> dict[str, Any]:
    return {"events": [{
        "event_id": str(uuid.uuid4()), "type": "monitoring.data_drift_detected",
        "occurred_at": "2026-11-29T09:29:58+01:00", "model": "fraud-detector", "version": 1,
        "environment": "production", "metric": "psi", "value": 0.31, "threshold": 0.2, **overrides}]}


@pytest.fixture
def writer(token_for, people, res):
    client = token_for(["events:write"])
    grant(people.owner, client.service_account.user, res.model, "view_metadata")
    return client


def post(client: Any, body: Any, key: str | None, **extra: Any) -> Any:
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post(URL, body, format="json", **headers, **extra)


@pytest.mark.django_db
class TestReplay:
    def test_the_same_request_again_replays_the_stored_response_and_writes_once(self, writer):
        body = drift()
        before = PendingEntry.objects.count()
        first = post(writer, body, "order-7781")
        assert first.status_code == 201
        assert first.json()["events"][0]["created"] is True

        again = post(writer, body, "order-7781")

        # the identical response (a resend without the key would be 200 created:false), flagged as a replay
        assert again.status_code == 201
        assert again.content == first.content
        assert again["Idempotent-Replayed"] == "true"
        assert "Idempotent-Replayed" not in first
        assert PendingEntry.objects.count() == before + 1
        assert IdempotencyRecord.objects.count() == 1

    def test_the_same_key_with_another_request_is_a_422_and_writes_nothing(self, writer):
        assert post(writer, drift(), "k-1").status_code == 201
        with writes_no_ledger():
            refused = post(writer, drift(), "k-1")
        assert refused.status_code == 422
        assert problem_of(refused)["code"] == "idempotency_key_reused"
        # the path counts too: the same body sent elsewhere with the key is another request
        other_path = writer.post(URL + "?dry=1", drift(), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
        assert other_path.status_code == 422

    def test_another_principal_with_the_same_key_is_a_request_of_its_own(self, writer, token_for):
        other = token_for(["events:write"])  # another token (of the same account): another principal
        before = PendingEntry.objects.count()
        assert post(writer, drift(), "shared-key").status_code == 201
        grant_ok = post(other, drift(), "shared-key")
        assert grant_ok.status_code == 201, grant_ok.content
        assert "Idempotent-Replayed" not in grant_ok
        assert PendingEntry.objects.count() == before + 2
        assert IdempotencyRecord.objects.count() == 2

    def test_a_stored_4xx_is_replayed_too(self, writer):
        bad = drift(value="not a number")
        first = post(writer, bad, "k-400")
        assert first.status_code == 400
        again = post(writer, bad, "k-400")
        assert again.status_code == 400 and again.content == first.content
        assert again["Idempotent-Replayed"] == "true"

    def test_without_the_header_nothing_changes(self, writer):
        body = drift()
        assert post(writer, body, None).status_code == 201
        resent = post(writer, body, None)
        assert resent.status_code == 200 and resent.json()["events"][0]["created"] is False  # event_id idempotency
        assert IdempotencyRecord.objects.count() == 0

    def test_an_rfc8941_quoted_key_is_the_same_key(self, writer):
        body = drift()
        assert post(writer, body, '"abc-123"').status_code == 201
        assert post(writer, body, "abc-123")["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
class TestRefusals:
    @pytest.mark.parametrize("key", ["", "   ", "x" * 256, "tab\there", "new\x01line", "clé-ünïcode"])
    def test_a_malformed_key_is_a_400_and_writes_nothing(self, writer, key):
        with writes_no_ledger():
            response = post(writer, drift(), key)
        assert response.status_code == 400
        assert problem_of(response)["code"] == "invalid_idempotency_key"
        assert IdempotencyRecord.objects.count() == 0

    def test_a_revoked_token_gets_no_replay(self, writer, people):
        body = drift()
        assert post(writer, body, "k-rev").status_code == 201
        api_token_revoke(actor=people.infosec, token=writer.token, reason="leaked")
        again = post(writer, body, "k-rev")
        assert again.status_code == 401
        assert "Idempotent-Replayed" not in again

    def test_a_session_request_failing_csrf_is_neither_replayed_nor_stored(self, people):
        strict = APIClient(enforce_csrf_checks=True)
        strict.force_login(people.infosec)
        response = strict.post("/api/v1/service-accounts", {"name": "bot-x"}, format="json",
                               HTTP_IDEMPOTENCY_KEY="csrf-1")
        assert response.status_code == 403
        assert IdempotencyRecord.objects.count() == 0

    def test_an_issued_token_is_never_stored_and_never_issued_twice(self, as_user, people):
        session = as_user(people.infosec)
        assert session.post("/api/v1/service-accounts", {"name": "ci-bot"}, format="json",
                            HTTP_IDEMPOTENCY_KEY="acct-1").status_code == 201
        body = {"name": "ci", "scopes": ["access:check"], "expires_in_days": 30}
        url = "/api/v1/service-accounts/ci-bot/tokens"
        issued = session.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="tok-1")
        assert issued.status_code == 201
        plaintext = issued.json()["token"]

        again = session.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="tok-1")

        assert again.status_code == 409
        assert problem_of(again)["code"] == "idempotency_response_not_kept"
        assert plaintext not in again.content.decode()
        assert ApiToken.objects.filter(service_account__name="ci-bot").count() == 1
        record = IdempotencyRecord.objects.get(key="tok-1")
        assert record.body is None and record.status == 201 and record.principal == f"user:{people.infosec.pk}"
        assert all(plaintext.encode() not in bytes(r.body) for r in IdempotencyRecord.objects.exclude(body=None))


@pytest.mark.django_db
def test_an_expired_key_starts_afresh_and_the_purge_deletes_expired_records(writer):
    assert post(writer, drift(), "k-old").status_code == 201
    IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    fresh = post(writer, drift(), "k-old")  # another body: no 422 once the first expired

    assert fresh.status_code == 201 and "Idempotent-Replayed" not in fresh
    assert IdempotencyRecord.objects.count() == 1
    IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    post(writer, drift(), "k-new")
    assert purge_idempotency_keys() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["k-new"]


@pytest.mark.django_db
def test_the_schema_documents_the_header_on_every_unsafe_operation_and_only_there():
    schema = Client().get("/api/v1/schema/?format=json").json()
    unsafe = safe = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            if method in ("post", "put", "patch", "delete"):
                unsafe += 1
                assert "Idempotency-Key" in names, (method, path)
                assert {"409", "422", "503"} <= set(operation["responses"]), (method, path)
            else:
                safe += 1
                assert "Idempotency-Key" not in names, (method, path)
                assert "503" in operation["responses"], (method, path)
    assert unsafe > 20 and safe > 20


# --- PostgreSQL: concurrent duplicates ------------------------------------------------------------------


def _dsn() -> str:
    s = connection.settings_dict
    return (f"host={s['HOST'] or '127.0.0.1'} port={s['PORT'] or 5432} dbname={s['NAME']} user={s['USER']}"
            + (f" password={s['PASSWORD']}" if s["PASSWORD"] else ""))


@pytest.mark.postgres
def test_a_duplicate_while_the_first_is_in_flight_is_a_409_with_retry_after(on_postgres, committing_db, writer):
    body = drift()
    principal = f"token:{writer.token.pk}"
    # the first request "in flight": its transaction-scoped lock, held by another connection
    with psycopg.connect(_dsn(), autocommit=False) as other:
        other.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id(principal, "k-busy")])
        before = PendingEntry.objects.count()
        busy = post(writer, body, "k-busy")
        assert busy.status_code == 409
        assert problem_of(busy)["code"] == "idempotency_in_progress"
        assert int(busy["Retry-After"]) >= 1
        assert PendingEntry.objects.count() == before
        assert not IdempotencyRecord.objects.exists()
        other.rollback()
    assert post(writer, body, "k-busy").status_code == 201


@pytest.mark.postgres
def test_two_concurrent_duplicates_write_one_entry(on_postgres, committing_db, writer):
    body = drift()
    auth = writer._credentials["HTTP_AUTHORIZATION"]
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def send() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=auth)
        barrier.wait()
        try:
            results.append(post(client, body, "k-race"))
        finally:
            connection.close()

    before = PendingEntry.objects.count()
    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    statuses = sorted(r.status_code for r in results)
    assert statuses in ([201, 201], [201, 409]), statuses
    if statuses == [201, 201]:  # the second came after the first committed: a replay
        assert sum(r.get("Idempotent-Replayed") == "true" for r in results) == 1
    assert PendingEntry.objects.count() == before + 1
    assert IdempotencyRecord.objects.count() == 1
