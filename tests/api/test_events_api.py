"""POST /api/v1/events: runtime events, all or nothing, idempotent by event_id; every bad input is a 400."""
from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit import ledger
from audit.event_types import registry
from audit.ledger import Actor
from audit.models import Entry, PendingEntry
from governance.services.runtime_events import InvalidRuntimeEvents, runtime_events_record
from tests.access.helpers import grant
from tests.api.helpers import problem_of

pytestmark = pytest.mark.django_db

URL = "/api/v1/events"


def drift(**overrides: Any) -> dict[str, Any]:
    event = {
        "event_id": str(uuid.uuid4()),
        "type": "monitoring.data_drift_detected",
        "occurred_at": "2026-11-29T09:29:58+01:00",
        "model": "fraud-detector",
        "version": 1,
        "environment": "production",
        "source": "pipeline",  # the writer token's service account (a token's source is bound to it)
        "metric": "psi",
        "value": 0.31,
        "threshold": 0.2,
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not ...}


def rows() -> tuple[int, int]:
    return PendingEntry.objects.count(), Entry.objects.count()


@pytest.fixture
def writer(token_for, people, res):
    client = token_for(["events:write"])
    # A serving platform reports on the models it may see.
    grant(people.owner, client.service_account.user, res.model, "view_metadata")
    return client


def post(client, body: Any, **kwargs: Any):
    return client.post(URL, body, format="json", **kwargs)


# --- who ----------------------------------------------------------------------------------------------------


def test_a_token_with_events_write_records_a_batch(writer):
    # given
    events = [drift(), drift(type="incident.opened", model=..., version=..., environment=..., metric=...,
                               value=..., threshold=..., incident_id="INC-7", severity="sev2",
                               summary="p99 latency")]
    # when
    response = post(writer, {"events": events})
    # then
    assert response.status_code == 201, response.content
    out = response.json()["events"]
    assert [e["event_id"] for e in out] == [e["event_id"] for e in events]
    assert all(e["created"] and e["seq"] is None and e["pending_id"] for e in out)
    ledger.integrate()
    first, second = Entry.objects.filter(event_type__in=["monitoring.data_drift_detected", "incident.opened"])
    assert (first.actor_type, first.actor_id) == ("service", "pipeline")
    assert (first.subject_type, first.subject_id) == ("model_version", "fraud-detector/1")
    assert first.payload["occurred_at"] == "2026-11-29T08:29:58.000000Z"  # normalised to UTC
    assert "event_id" not in first.payload and "type" not in first.payload
    assert (second.subject_type, second.subject_id) == ("runtime_source", "pipeline")


def test_subject_is_the_environment_when_no_version_is_named(writer):
    post(writer, {"events": [drift(model=..., version=...)]})
    ledger.integrate()
    entry = Entry.objects.get(event_type="monitoring.data_drift_detected")
    assert (entry.subject_type, entry.subject_id) == ("environment", "production")


def test_source_defaults_to_the_service_account(writer):
    assert post(writer, {"events": [drift(source=...)]}).status_code == 201
    assert json.loads(PendingEntry.objects.get(event_type="monitoring.data_drift_detected").payload_json)[
        "source"] == "pipeline"


def test_infosec_may_send_events_with_a_session_and_is_the_actor(people, res, as_user):
    response = post(as_user(people.infosec), {"events": [drift()]})
    assert response.status_code == 201, response.content
    pending = PendingEntry.objects.get(event_type="monitoring.data_drift_detected")
    assert (pending.actor_type, pending.actor_id) == ("user", str(people.infosec.pk))


def test_other_people_and_tokens_without_the_scope_are_refused(people, approver, res, as_user, token_for):
    clients = {
        "owner": as_user(people.owner), "approver": approver and as_user(approver),
        "auditor": as_user(people.auditor), "outsider": as_user(people.outsider),
        "token without events:write": token_for(["ledger:read"]),
    }
    for who, client in clients.items():
        response = post(client, {"events": [drift()]})
        assert response.status_code == 403, who
        problem_of(response)
    assert post(as_user(None), {"events": [drift()]}).status_code == 401
    assert rows() == (PendingEntry.objects.count(), 0)
    assert not PendingEntry.objects.filter(event_type="monitoring.data_drift_detected").exists()


def test_sessions_need_a_csrf_token(people, res):
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    client.force_login(people.infosec)
    response = post(client, {"events": [drift()]})
    assert response.status_code == 403
    assert "CSRF" in problem_of(response)["detail"]


# --- idempotency, all or nothing -------------------------------------------------------------------------------


def test_a_retried_batch_writes_nothing(writer):
    body = {"events": [drift(), drift(value=0.5)]}
    first = post(writer, body)
    before = rows()
    again = post(writer, body)
    assert again.status_code == 200
    assert rows() == before
    assert [e["pending_id"] for e in again.json()["events"]] == [e["pending_id"] for e in first.json()["events"]]
    assert not any(e["created"] for e in again.json()["events"])
    # once integrated, a retry answers with the seqs
    ledger.integrate()
    before = rows()
    third = post(writer, body)
    assert third.status_code == 200 and rows() == before
    assert all(isinstance(e["seq"], int) for e in third.json()["events"])


def test_a_retry_that_adds_an_event_records_only_the_new_one(writer):
    event = drift()
    post(writer, {"events": [event]})
    before = rows()
    response = post(writer, {"events": [event, drift()]})
    assert response.status_code == 201
    assert [e["created"] for e in response.json()["events"]] == [False, True]
    assert rows() == (before[0] + 1, before[1])


def test_the_same_event_id_with_other_content_is_409(writer):
    event = drift()
    post(writer, {"events": [event]})
    before = rows()
    response = post(writer, {"events": [drift(), {**event, "value": 0.99}]})
    assert response.status_code == 409
    assert event["event_id"] in problem_of(response)["detail"]
    assert rows() == before


def test_a_batch_with_one_bad_event_writes_nothing(writer):
    before = rows()
    events = [drift() for _ in range(5)] + [drift(value="high")] + [drift()]
    response = post(writer, {"events": events})
    assert response.status_code == 400
    assert problem_of(response)["errors"][0]["field"] == "events[5]"
    assert "'value' must be of type number" in problem_of(response)["errors"][0]["message"]
    assert rows() == before


def test_the_service_refuses_a_bad_batch_before_writing(res):
    before = rows()
    with pytest.raises(InvalidRuntimeEvents) as exc:
        runtime_events_record(actor=Actor.service("x"), events=[drift(), drift(type="model.registered")])
    assert exc.value.errors[0]["field"] == "events[1].type"
    assert rows() == before


# --- bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, field, words", [
    ({"type": "promotion.deployed"}, "events[0].type", "not a runtime event type"),
    ({"type": "nope"}, "events[0].type", "not a runtime event type"),
    ({"type": ...}, "events[0].type", "missing"),
    ({"event_id": "not-a-uuid"}, "events[0].event_id", "UUID"),
    ({"event_id": ...}, "events[0].event_id", "UUID"),
    ({"event_id": 12}, "events[0].event_id", "UUID"),
    ({"occurred_at": "2026-11-29T09:29:58"}, "events[0].occurred_at", "time zone"),
    ({"occurred_at": "yesterday"}, "events[0].occurred_at", "time zone"),
    ({"occurred_at": ...}, "events[0]", "'occurred_at' is required"),
    ({"metric": ...}, "events[0]", "'metric' is required"),
    ({"colour": "red"}, "events[0]", "unknown field(s): 'colour'"),
    ({"version": "1"}, "events[0]", "'version' must be of type int"),
    ({"version": True}, "events[0]", "'version' must be of type int"),
    ({"model": ..., "version": 1}, "events[0].version", "needs a model"),
    ({"model": "no-such-model"}, "events[0].version", "no model version no-such-model/1"),
    ({"version": 99}, "events[0].version", "no model version fraud-detector/99"),
    ({"version": ..., "model": "no-such-model"}, "events[0].model", "no registered model"),
    ({"environment": "mars"}, "events[0].environment", "no environment named 'mars'"),
    ({"source": "x" * 301}, "events[0].source", "at most 300"),
    ({"source": "bad\nname"}, "events[0].source", "control characters"),
    ({"source": ""}, "events[0].source", "non-empty"),
])
def test_a_bad_event_is_400_naming_its_index(writer, change, field, words):
    before = rows()
    response = post(writer, {"events": [drift(**change)]})
    assert response.status_code == 400, response.content
    errors = problem_of(response)["errors"]
    assert any(e["field"] == field and words in e["message"] for e in errors), errors
    assert rows() == before


def test_unknown_types_are_named_by_index_among_good_ones(writer):
    response = post(writer, {"events": [drift(), drift(), drift(type="deployment.exploded")]})
    assert response.status_code == 400
    assert problem_of(response)["errors"][0]["field"] == "events[2].type"


def test_a_duplicate_event_id_within_a_batch_is_400(writer):
    event = drift()
    response = post(writer, {"events": [event, drift(), {**event}]})
    assert response.status_code == 400
    error = problem_of(response)["errors"][0]
    assert error["field"] == "events[2].event_id" and "events[0]" in error["message"]
    assert not PendingEntry.objects.filter(event_type="monitoring.data_drift_detected").exists()


@pytest.mark.parametrize("body, words", [
    ({"events": []}, "at least one"),
    ({}, "JSON object"),
    ({"events": [], "extra": 1}, "JSON object"),
    ([], "JSON object"),
    ({"events": {"a": 1}}, "list"),
    ({"events": ["x"]}, "JSON object"),
    ({"events": [None]}, "JSON object"),
])
def test_a_malformed_batch_is_400(writer, body, words):
    response = post(writer, body)
    assert response.status_code == 400
    assert words in problem_of(response)["detail"]


def test_more_than_1000_events_is_400_not_413(writer):
    response = post(writer, {"events": [drift() for _ in range(1001)]})
    assert response.status_code == 400
    assert "at most 1000" in problem_of(response)["detail"]
    assert not PendingEntry.objects.filter(event_type="monitoring.data_drift_detected").exists()


def test_wrong_content_type_is_415_and_malformed_json_400(writer):
    response = writer.post(URL, "events=1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    problem_of(response)
    response = writer.post(URL, '{"events": [', content_type="application/json")
    assert response.status_code == 400
    problem_of(response)


def test_every_runtime_type_is_accepted_with_its_registered_fields(writer):
    samples = {"str": "x", "int": 1, "number": 1.5, "bool": True, "object": {}, "list": [], "any": "x"}
    events = []
    for name in registry.runtime_names():
        fields = {k: samples[f.kind] for k, f in registry.get(name).fields.items() if f.required}
        fields.update(event_id=str(uuid.uuid4()), type=name, occurred_at="2026-11-29T10:00:00Z", source="pipeline")
        events.append(fields)
    response = post(writer, {"events": events})
    assert response.status_code == 201, response.content


# --- cost ---------------------------------------------------------------------------------------------------


def test_a_batch_costs_a_bounded_number_of_queries(writer, res):
    from governance.models import ModelVersion

    for v in range(3, 40):
        ModelVersion.objects.create(model=res.model, version=v, data_classification="internal")
    post(writer, {"events": [drift()]})  # warm up the token

    def cost(n: int) -> int:
        events = [drift(version=3 + i % 37, environment=("production", "dev")[i % 2]) for i in range(n)]
        with CaptureQueriesContext(connection) as ctx:
            assert post(writer, {"events": events}).status_code == 201
        return len(ctx)

    small, large = cost(5), cost(400)
    # Never a query per event; SQLite alone splits a large INSERT by its bound-variable limit.
    slack = 0 if connection.vendor == "postgresql" else 4
    assert small <= large <= small + slack, (small, large)
    assert large <= 16


@pytest.mark.parametrize("value", [{"a": 1}, ["x"], 7])
def test_names_of_the_wrong_json_type_are_400(writer, value):
    for key in ("source", "model", "environment"):
        response = post(writer, {"events": [drift(**{key: value})]})
        assert response.status_code == 400, (key, response.content)
        assert f"events[0].{key}" in {e["field"] for e in problem_of(response)["errors"]}


def test_an_event_id_is_canonicalised_so_a_retry_in_capitals_is_the_same_event(writer):
    event = drift()
    first = post(writer, {"events": [event]}).json()["events"][0]
    shouting = post(writer, {"events": [{**event, "event_id": event["event_id"].upper()}]})
    assert shouting.status_code == 200
    assert shouting.json()["events"][0] == {**first, "created": False}
    assert shouting.json()["events"][0]["event_id"] == event["event_id"]


# --- a token speaks for its own service account only (issue 9f) ------------------------------------------------


def test_a_token_cannot_claim_another_source_and_nothing_of_the_batch_is_written(writer):
    # given: a batch of good events and one that claims to come from another system
    before = rows()
    events = [drift(), drift(source=...), drift(source="evidently")]
    # when
    response = post(writer, {"events": events})
    # then: a 400 naming the event, and none of the batch is written
    assert response.status_code == 400
    errors = problem_of(response)["errors"]
    assert [e["field"] for e in errors] == ["events[2].source"]
    assert "'pipeline'" in errors[0]["message"]
    assert rows() == before


def test_infosec_with_a_session_may_still_name_the_source(people, res, as_user):
    response = post(as_user(people.infosec), {"events": [drift(source="evidently")]})
    assert response.status_code == 201, response.content


def _without_request_id(response) -> dict[str, Any]:
    body = problem_of(response)
    body.pop("request_id", None)
    return body


@pytest.mark.parametrize("naming", [{"version": ...}, {}])
def test_a_model_the_token_cannot_see_is_refused_exactly_like_a_missing_one(people, token_for, res, naming):
    # given: a token whose service account holds no grant on fraud-detector (it exists, it is invisible)
    from governance.models import ModelVersion, RegisteredModel

    hidden = RegisteredModel.objects.create(name="hidden-model", owner=people.owner)
    ModelVersion.objects.create(model=hidden, version=1, data_classification="internal")
    client = token_for(["events:write"])
    before = rows()
    # when: it names the invisible model, and then one that does not exist (same shape otherwise)
    seen = post(client, {"events": [drift(source=..., environment=..., model="hidden-model", **naming)]})
    unseen = post(client, {"events": [drift(source=..., environment=..., model="no-such-model", **naming)]})
    # then: the same answer but for the name, and nothing written
    assert seen.status_code == unseen.status_code == 400
    assert json.dumps(_without_request_id(seen)).replace("hidden-model", "X") == \
        json.dumps(_without_request_id(unseen)).replace("no-such-model", "X")
    assert rows() == before


def test_an_invisible_model_among_good_events_writes_nothing(people, writer, res):
    from governance.models import RegisteredModel

    RegisteredModel.objects.create(name="hidden-model", owner=people.owner)
    before = rows()
    response = post(writer, {"events": [drift(), drift(model="hidden-model", version=...)]})
    assert response.status_code == 400
    assert [e["field"] for e in problem_of(response)["errors"]] == ["events[1].model"]
    assert rows() == before


def test_the_service_binds_a_service_account_and_checks_visibility_in_one_query(people, res):
    from access.services.service_accounts import service_account_create

    account = service_account_create(actor=people.owner, name="serving")
    grant(people.infosec, account.user, res.model, "view_metadata")
    events = [drift(source=..., version=1 + i % 2) for i in range(50)]
    with CaptureQueriesContext(connection) as ctx:
        runtime_events_record(actor=Actor.service("serving"), events=events, service_account=account)
    lookups = [q["sql"] for q in ctx.captured_queries if "governance_modelversion" in q["sql"]]
    assert len(lookups) == 1
    ledger.integrate()
    assert {e.payload["source"] for e in Entry.objects.filter(event_type="monitoring.data_drift_detected")} == {
        "serving"}
    with pytest.raises(InvalidRuntimeEvents):
        runtime_events_record(actor=Actor.service("serving"), events=[drift(source="pipeline")],
                              service_account=account)
