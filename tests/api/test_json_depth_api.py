"""JSON nested too deeply is a 400 wherever it enters the API, with nothing written; the bound is
``audit.canonical.MAX_DEPTH`` (64 levels) for a ledger payload and ``MAX_BODY_DEPTH`` (72) for a body.

The attack: a few kilobytes of brackets in a runtime event's free-form ``detail`` (or in a policy)
used to reach Python's recursion limit while parsing, validating or canonicalising: a 500.
"""
from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from audit import ledger
from audit.canonical import MAX_DEPTH
from audit.models import Entry, PendingEntry
from governance.models import PromotionPolicy
from tests.api.helpers import problem_of
from tests.personas import People
from web.api.parsers import MAX_BODY_DEPTH

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/events"
PLACEHOLDER = '"__nested__"'


def nested_text(depth: int) -> str:
    """JSON text of an object nesting ``depth`` objects (built as text: json.dumps would recurse)."""
    return '{"d":' * (depth - 1) + "{}" + "}" * (depth - 1)


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"d": value}
    return value


def drift_body(detail_depth: int) -> bytes:
    event = {
        "event_id": str(uuid.uuid4()), "type": "monitoring.data_drift_detected",
        # No model named: the token's service account would need to see it (runtime events refuse invisible models).
        "occurred_at": "2026-11-29T09:29:58Z", "metric": "psi", "value": 0.31, "threshold": 0.2,
        "detail": "__nested__",
    }
    return json.dumps({"events": [event]}).replace(PLACEHOLDER, nested_text(detail_depth)).encode()


def rows() -> tuple[int, int]:
    return PendingEntry.objects.count(), Entry.objects.count()


@pytest.fixture
def writer(token_for, res):
    client = token_for(["events:write"])
    client.raise_request_exception = False
    return client


@pytest.fixture(autouse=True)
def _production_errors(settings) -> None:
    settings.DEBUG = False


def post_raw(client: Any, url: str, raw: bytes, method: str = "POST") -> Any:
    return client.generic(method, url, raw, content_type="application/json")


@pytest.mark.parametrize("depth", [480, 10_000])
def test_a_deeply_nested_event_detail_is_a_400_and_writes_nothing(writer, depth: int) -> None:
    before = rows()
    response = post_raw(writer, EVENTS, drift_body(depth))
    assert response.status_code == 400, response.content[:300]
    assert f"nests arrays and objects deeper than {MAX_BODY_DEPTH} levels" in problem_of(response)["detail"]
    assert rows() == before


def test_a_detail_just_beyond_the_payload_bound_is_a_400_from_the_ledger_and_writes_nothing(writer) -> None:
    # Shallow enough for the parser (the envelope's margin), one level too deep for a ledger payload:
    # the payload {"detail": <63 levels>} nests 64 levels; 64 levels of detail make it 65.
    before = rows()
    response = post_raw(writer, EVENTS, drift_body(MAX_DEPTH))
    assert response.status_code == 400, response.content[:300]
    assert f"deeper than {MAX_DEPTH} levels" in problem_of(response)["detail"]
    assert rows() == before


def test_a_detail_at_the_bound_is_recorded_as_sent(writer) -> None:
    response = post_raw(writer, EVENTS, drift_body(MAX_DEPTH - 1))
    assert response.status_code == 201, response.content[:300]
    ledger.integrate()
    entry = Entry.objects.get(event_type="monitoring.data_drift_detected")
    assert entry.payload["detail"] == nested(MAX_DEPTH - 1)


def test_sixty_levels_of_detail_are_accepted(writer) -> None:
    assert post_raw(writer, EVENTS, drift_body(60)).status_code == 201


def test_a_deeply_nested_top_level_array_is_a_400(writer) -> None:
    before = rows()
    response = post_raw(writer, EVENTS, b"[" * 20_000 + b"]" * 20_000)
    assert response.status_code == 400
    assert "deeper than" in problem_of(response)["detail"]
    assert rows() == before


@pytest.mark.parametrize("depth", [480, 10_000])
def test_a_deeply_nested_policy_is_a_400_and_changes_nothing(as_user, people: People, depth: int) -> None:
    client = as_user(people.infosec)
    client.raise_request_exception = False
    before = (rows(), list(PromotionPolicy.objects.values_list("pk", "rules")))
    raw = json.dumps({"rules": {"approvals": [], "gates": "__nested__"}}).replace(PLACEHOLDER, nested_text(depth))
    response = post_raw(client, "/api/v1/policies/staging", raw.encode(), method="PUT")
    assert response.status_code == 400, response.content[:300]
    assert "deeper than" in problem_of(response)["detail"]
    assert (rows(), list(PromotionPolicy.objects.values_list("pk", "rules"))) == before


def test_a_policy_nested_within_the_bound_is_refused_for_its_shape_not_a_500(as_user, people: People) -> None:
    client = as_user(people.infosec)
    client.raise_request_exception = False
    before = rows()
    response = client.put("/api/v1/policies/staging", {"rules": {"approvals": [], "gates": [nested(60)]}},
                          format="json")
    assert response.status_code == 400, response.content[:300]
    assert rows() == before
