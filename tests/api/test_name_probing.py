"""Name probing through list filters (issue 9c): an unknown and an invisible name answer the same.

A persona with no role lists grants and access requests filtered by a principal or
a resource that exists (but is invisible to it) and by one that does not exist; the
two full responses must be identical (200, an empty page), while a malformed filter
stays a 400 whatever exists.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from access.services.access_requests import access_request_create
from access.services.service_accounts import service_account_create
from tests.access.helpers import grant, writes_nothing
from tests.api.helpers import problem_of
from tests.catalog import Resources
from tests.personas import People

pytestmark = pytest.mark.django_db

UserClient = Callable[[User | None], APIClient]
GRANTS = "/api/v1/grants"
REQUESTS = "/api/v1/access-requests"


@pytest.fixture
def hidden(people: People, res: Resources) -> None:
    """Rows the outsider may not see, on every name the probes use."""
    bot = service_account_create(actor=people.requester, name="rita-bot")
    grant(people.owner, people.requester, res.confidential, "read_data")
    grant(people.infosec, people.team, res.restricted, "read_data")
    grant(people.owner, bot.user, res.internal, "train_on")
    access_request_create(actor=people.requester, resource=res.confidential, permission="train_on",
                              duration_days=30, justification="churn model features")


def _answer(client: APIClient, url: str, params: dict[str, str]) -> tuple[int, Any]:
    response = client.get(url, params)
    return response.status_code, response.json()


EMPTY = {"count": 0, "next": None, "previous": None, "results": []}

PROBES = [
    (GRANTS, "principal", "user:rita", "user:no-such-person"),
    (GRANTS, "principal", "service:rita-bot", "service:no-such-bot"),
    (GRANTS, "principal", "group:fraud-team", "group:no-such-team"),
    (GRANTS, "resource", "dataset:customers", "dataset:no-such-data"),
    (GRANTS, "resource", "dataset:kyc-documents", "dataset:no-such-kyc"),
    (GRANTS, "resource", "registered_model:fraud-detector", "registered_model:no-such-model"),
    (GRANTS, "resource", "environment:production", "environment:no-such-env"),
    (REQUESTS, "resource", "dataset:customers", "dataset:no-such-data"),
    (REQUESTS, "resource", "registered_model:fraud-detector", "registered_model:no-such-model"),
]


@pytest.mark.parametrize(("url", "field", "existing", "missing"), PROBES)
def test_an_invisible_name_answers_exactly_like_a_missing_one(
    people: People, hidden: None, as_user: UserClient, url: str, field: str, existing: str, missing: str,
) -> None:
    # given: a person with no role at all
    client = as_user(people.outsider)
    # when
    with writes_nothing():
        seen = _answer(client, url, {field: existing})
        unseen = _answer(client, url, {field: missing})
    # then: the same full answer, an empty page
    assert seen == unseen == (200, EMPTY)


@pytest.mark.parametrize(("url", "field", "value"), [
    (GRANTS, "principal", "nobody"), (GRANTS, "principal", "robot:rita"), (GRANTS, "resource", "nonsense"),
    (GRANTS, "resource", "dataset:"), (REQUESTS, "resource", "nonsense"), (REQUESTS, "resource", "table:x"),
])
def test_a_malformed_filter_is_a_400_that_does_not_depend_on_existence(
    people: People, hidden: None, as_user: UserClient, url: str, field: str, value: str,
) -> None:
    client = as_user(people.outsider)
    response = client.get(url, {field: value})
    assert response.status_code == 400
    assert problem_of(response)["errors"][0]["field"] == field


def test_filters_still_find_what_the_caller_may_see(people: People, res: Resources, hidden: None,
                                                    as_user: UserClient) -> None:
    # the requester sees her own grant and her team's, by any way of naming them
    client = as_user(people.requester)
    assert client.get(GRANTS, {"principal": "user:rita"}).json()["count"] == 1
    assert client.get(GRANTS, {"principal": "group:fraud-team"}).json()["count"] == 1
    assert client.get(GRANTS, {"resource": "dataset:kyc-documents"}).json()["count"] == 1
    assert client.get(REQUESTS, {"resource": "dataset:customers"}).json()["count"] == 1
    # InfoSec sees every row behind every name
    infosec = as_user(people.infosec)
    assert infosec.get(GRANTS, {"principal": "service:rita-bot"}).json()["count"] == 1
    assert infosec.get(GRANTS, {"resource": "dataset:customers"}).json()["count"] == 1

