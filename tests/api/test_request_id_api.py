"""The request id of an API call is in the ledger entries it wrote, and the ledger API finds them by it."""
from __future__ import annotations

import uuid

import pytest

from audit.ledger import integrate
from audit.models import Entry

pytestmark = pytest.mark.django_db


def _event() -> dict[str, object]:
    return {"event_id": str(uuid.uuid4()), "type": "incident.opened", "occurred_at": "2026-11-29T09:00:00Z",
            "incident_id": "INC-1", "severity": "sev2", "summary": "latency"}


def test_entries_written_by_a_call_carry_its_request_id_and_can_be_listed_by_it(token_for):
    # given
    writer = token_for(["events:write"])
    reader = token_for(["ledger:read"])
    # when
    response = writer.post("/api/v1/events", {"events": [_event(), _event()]}, format="json",
                           HTTP_X_REQUEST_ID="deploy-7781-step2")
    assert response.status_code == 201, response.content
    writer.post("/api/v1/events", {"events": [_event()]}, format="json", HTTP_X_REQUEST_ID="another-call-01")
    integrate()
    # then
    assert Entry.objects.filter(request_id="deploy-7781-step2", event_type="incident.opened").count() == 2
    listed = reader.get("/api/v1/ledger/entries", {"request_id": "deploy-7781-step2"}).json()["results"]
    assert [e["event_type"] for e in listed] == ["incident.opened", "incident.opened"]
    assert {e["request_id"] for e in listed} == {"deploy-7781-step2"}
    one = reader.get(f"/api/v1/ledger/entries/{listed[0]['seq']}").json()
    assert '"request_id":"deploy-7781-step2"' in one["canonical_body"]


def test_a_malformed_request_id_filter_is_a_400(token_for):
    response = token_for(["ledger:read"]).get("/api/v1/ledger/entries", {"request_id": "bad id"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "request_id"
