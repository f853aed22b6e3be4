"""The error format against real endpoints: every refusal is an RFC 9457 problem, never a 500.

Malformed JSON, a wrong content type, an oversized body, unknown fields, wrong types,
a bad enum, an unknown URL, a wrong method, no credentials, and throttling each answer
``application/problem+json`` with the right status, a ``code`` and the request id, and
leave nothing written. Checked with DEBUG on and off.
"""
from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.utils import timezone

from audit.models import PendingEntry
from governance.models import PromotionRequest
from tests.api.helpers import problem_of

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/events"
PROMOTIONS = "/api/v1/promotions"


def event(**overrides: Any) -> dict[str, Any]:
    body = {
        "event_id": str(uuid.uuid4()),
        "type": "monitoring.data_drift_detected",
        "occurred_at": timezone.now().isoformat(),  # no source: a token's is its service account's name
        "metric": "psi",
        "value": 0.31,
        "threshold": 0.2,
    }
    body.update(overrides)
    return body


@pytest.fixture
def writer(token_for: Any) -> Any:
    return token_for(["events:write", "promotions:write", "promotions:read", "models:read"])


@pytest.fixture(params=[True, False], ids=["debug", "no-debug"])
def debug(request: pytest.FixtureRequest, settings: Any) -> bool:
    settings.DEBUG = request.param
    return bool(request.param)


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = problem_of(response)
    assert body["code"] and body["type"].startswith("urn:mlgov:problem:")
    assert response["X-Request-ID"] and body.get("request_id") == response["X-Request-ID"]
    return body


def nothing_written(before: int) -> None:
    assert PendingEntry.objects.count() == before


# --- the body ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [EVENTS, PROMOTIONS])
def test_malformed_json_is_400(writer, debug, path):
    before = PendingEntry.objects.count()
    response = writer.generic("POST", path, '{"events": [', content_type="application/json")
    body = problem(response, 400)
    assert "JSON" in body["detail"]
    nothing_written(before)


@pytest.mark.parametrize("path", [EVENTS, PROMOTIONS])
@pytest.mark.parametrize(("content_type", "payload"), [
    ("application/x-www-form-urlencoded", "events=1"),
    ("text/plain", '{"events": []}'),
    ("multipart/form-data; boundary=xyz", "--xyz--"),
])
def test_a_body_that_is_not_json_is_415(writer, debug, path, content_type, payload):
    before = PendingEntry.objects.count()
    response = writer.generic("POST", path, payload, content_type=content_type)
    body = problem(response, 415)
    assert content_type.split(";")[0] in body["detail"]
    nothing_written(before)


@pytest.mark.parametrize("path", [EVENTS, PROMOTIONS])
def test_a_body_over_the_limit_is_413(writer, debug, settings, path):
    # API_MAX_BODY_BYTES sets DATA_UPLOAD_MAX_MEMORY_SIZE; a small limit keeps the test fast.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    before = PendingEntry.objects.count()
    batch = {"events": [event(detail={"pad": "x" * 1000}) for _ in range(80)]}  # ~90 KB
    response = writer.post(path, batch, format="json")
    body = problem(response, 413)
    assert body["code"] == "too_large"
    nothing_written(before)


def test_a_body_just_under_the_limit_is_read(writer, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    response = writer.post(EVENTS, {"events": [event(detail={"pad": "x" * 1000}) for _ in range(40)]},
                           format="json")
    assert response.status_code == 201, response.content[:300]


def test_unknown_fields_are_400_naming_the_field(writer, debug):
    before = PendingEntry.objects.count()
    response = writer.post(EVENTS, {"events": [event(severity_level="high")]}, format="json")
    body = problem(response, 400)
    assert any(e["field"].startswith("events[0]") and "severity_level" in e["field"] + e["message"]
               for e in body["errors"]), body
    response = writer.post(PROMOTIONS, {"model": "fraud-detector", "version": 1, "environment": "staging",
                                        "reason": "x", "canary": [5, 100]}, format="json")
    body = problem(response, 400)
    assert {"field": "canary", "message": "unknown field"} in body["errors"], body
    nothing_written(before)


def test_an_unknown_top_level_key_of_the_events_batch_is_400(writer, debug):
    response = writer.post(EVENTS, {"events": [event()], "dry_run": True}, format="json")
    body = problem(response, 400)
    assert body["errors"] and all(e["field"] for e in body["errors"])


@pytest.mark.parametrize(("overrides", "field"), [
    ({"value": "high"}, "events[0].value"),
    ({"occurred_at": "yesterday"}, "events[0].occurred_at"),
    ({"event_id": 42}, "events[0].event_id"),
    ({"version": "three"}, "events[0].version"),
    ({"detail": ["not", "an", "object"]}, "events[0].detail"),
])
def test_wrong_types_in_an_event_are_400_naming_the_field(writer, debug, overrides, field):
    before = PendingEntry.objects.count()
    response = writer.post(EVENTS, {"events": [event(), event(**overrides)]}, format="json")
    body = problem(response, 400)
    # The second event is named (by index; the offending key is in the field path or the message).
    name = field.split(".")[-1]
    assert any(e["field"].startswith("events[1]") and name in e["field"] + e["message"] for e in body["errors"]), body
    assert not any(e["field"].startswith("events[0]") for e in body["errors"]), body
    nothing_written(before)  # all or nothing: the valid first event was not written either


@pytest.mark.parametrize("payload", [
    {"model": "fraud-detector", "version": "seven", "environment": "staging", "reason": "r"},
    {"model": ["fraud-detector"], "version": 1, "environment": "staging", "reason": "r"},
    {"model": "fraud-detector", "version": 1, "environment": "staging", "reason": {"why": 1}},
    [{"model": "fraud-detector"}],
    "just a string",
    None,
])
def test_wrong_types_in_a_promotion_request_are_400(writer, debug, payload):
    before = PromotionRequest.objects.count()
    response = writer.generic("POST", PROMOTIONS, json.dumps(payload), content_type="application/json")
    body = problem(response, 400)
    assert body["errors"] or body["detail"]
    assert PromotionRequest.objects.count() == before


def test_a_bad_enum_is_400_listing_the_choices(writer, debug):
    response = writer.post(EVENTS, {"events": [event(type="monitoring.vibes_detected")]}, format="json")
    body = problem(response, 400)
    assert body["errors"][0]["field"].startswith("events[0]")
    response = writer.post(PROMOTIONS, {"model": "fraud-detector", "version": 1, "environment": "staging",
                                        "reason": "r", "strategy": "yolo"}, format="json")
    body = problem(response, 400)
    assert [e["field"] for e in body["errors"]] == ["strategy"], body
    assert "yolo" in body["errors"][0]["message"]


def test_an_empty_batch_and_an_oversized_batch_are_400(writer):
    assert problem(writer.post(EVENTS, {"events": []}, format="json"), 400)["errors"]
    body = problem(writer.post(EVENTS, {"events": [event() for _ in range(1001)]}, format="json"), 400)
    assert "1000" in body["detail"] or "1,000" in body["detail"]


# --- routing and authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/no-such-thing", "/api/v1/promotions/999999", "/api/v2/events",
                                  "/api/v1/models/no-such-model"])
def test_unknown_urls_and_objects_are_404(writer, settings, path):
    settings.DEBUG = False
    body = problem(writer.get(path), 404)
    assert body["code"] == "not_found"


@pytest.mark.parametrize("path", ["/api/v1/no-such-thing", "/api/v2/events"])
def test_an_unknown_api_url_is_a_problem_even_with_debug_on(writer, settings, path):
    settings.DEBUG = True
    assert problem(writer.get(path), 404)["code"] == "not_found"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", EVENTS), ("DELETE", EVENTS), ("DELETE", "/api/v1/whoami"),
    ("PUT", PROMOTIONS),
])
def test_a_wrong_method_is_405(writer, debug, method, path):
    body = problem(writer.generic(method, path), 405)
    assert method in body["detail"]


@pytest.mark.parametrize(("method", "path"), [("POST", EVENTS), ("GET", PROMOTIONS), ("GET", "/api/v1/models"),
                                              ("GET", "/api/v1/ledger/entries")])
def test_no_credentials_is_401_or_403(as_user, debug, method, path):
    response = as_user(None).generic(method, path, "{}", content_type="application/json")
    assert response.status_code in (401, 403)
    problem(response, response.status_code)


def test_a_token_without_the_scope_is_403_naming_it(token_for, debug):
    response = token_for(["ledger:read"]).post(EVENTS, {"events": [event()]}, format="json")
    body = problem(response, 403)
    assert "events:write" in body["detail"]


def test_a_session_post_without_csrf_is_403(people, debug):
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    client.force_login(people.infosec)
    response = client.post(EVENTS, {"events": [event()]}, format="json")
    body = problem(response, 403)
    assert "CSRF" in body["detail"]


def test_throttled_is_429_with_retry_after(token_for, settings, debug):
    # The throttle reads API_THROTTLE_RATE at request time.
    settings.API_THROTTLE_RATE = "3/min"
    client = token_for(["models:read"])
    statuses = [client.get("/api/v1/models").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    response = client.get("/api/v1/models")
    body = problem(response, 429)
    assert 0 < int(response["Retry-After"]) <= 60
    assert body["code"] == "throttled"
    # Another token has its own budget.
    assert token_for(["models:read"]).get("/api/v1/models").status_code == 200


# --- never a 500 ---------------------------------------------------------------------------------------------


def test_an_unexpected_error_is_a_500_problem_with_the_request_id(writer, settings, monkeypatch):
    # The one 500 the API can give: a bug. It still speaks the format and leaks nothing.
    settings.DEBUG = False
    import audit.api_events

    def boom(**kwargs: Any) -> None:
        raise RuntimeError("secret internals: dsn=postgres://user:pw@db")

    monkeypatch.setattr(audit.api_events, "runtime_events_record", boom)
    writer.raise_request_exception = False
    response = writer.post(EVENTS, {"events": [event()]}, format="json", HTTP_X_REQUEST_ID="trace-500-abcdef")
    body = problem(response, 500)
    assert body["request_id"] == "trace-500-abcdef"
    assert "secret" not in response.content.decode() and "postgres" not in response.content.decode()


@pytest.mark.parametrize("raw", [
    b"\xff\xfe\x00garbage", b'{"events": [{"event_id": "\\ud800"}]}', b'{"events": {"a": 1}}',
    b'{"events": [1, "two", null, []]}', b"", b'{"events": [{"type": null, "event_id": null}]}', b"1e999999",
    pytest.param(b'{"events": [' + b"[" * 5000 + b"]" * 5000 + b"]}", id="deeply-nested"),
])
def test_hostile_bodies_are_4xx_never_500(writer, settings, raw):
    settings.DEBUG = False
    writer.raise_request_exception = False
    response = writer.generic("POST", EVENTS, raw, content_type="application/json")
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    problem(response, response.status_code)


def test_every_response_carries_a_request_id(writer, as_user):
    responses = [
        writer.get("/api/v1/whoami"),
        writer.post(EVENTS, {"events": [event()]}, format="json"),
        writer.get("/api/v1/nope"),
        as_user(None).get("/api/v1/models"),
        writer.get("/api/v1/schema/?format=json"),
    ]
    for response in responses:
        assert len(response["X-Request-ID"]) >= 8, response


def test_a_post_to_an_unknown_api_url_is_a_404_problem_not_a_csrf_page(as_user, people):
    # A session client enforcing CSRF: the unknown URL must still answer as the API does.
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    client.force_login(people.infosec)
    response = client.post("/api/v1/service-accounts/%C3%B4%C2%AF/tokens", {}, format="json")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/problem+json")
