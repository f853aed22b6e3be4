"""Name probing through the access check and granting: an unknown principal and one the caller may not
see answer the same, full response for full response.

The attacks: anyone allowed to call ``POST /api/v1/access/check`` or ``POST /api/v1/grants`` sends
``user:<guess>`` and reads "no user named X" (400) for a wrong guess and something else for a right
one, so usernames, service-account and group names could be enumerated. Now the access check
answers both "not allowed" with the body of a principal without a grant (and writes nothing), and
granting settles who may grant on the resource before it looks the principal up; an owner who may
grant gets one 400 for unknown, closed and disabled principals alike.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from access.models import ServiceAccount
from access.services.service_accounts import service_account_create
from audit.models import PendingEntry
from tests.access.helpers import grant, soon, writes_nothing
from tests.api.helpers import problem_of
from tests.catalog import Resources
from tests.personas import People, make_user

pytestmark = pytest.mark.django_db

UserClient = Callable[[User | None], APIClient]
TokenClient = Callable[..., APIClient]
CHECK = "/api/v1/access/check"
GRANTS = "/api/v1/grants"


def _answer(client: APIClient, url: str, body: dict[str, Any]) -> tuple[int, Any]:
    """Status and full body, without the per-request id of a problem document."""
    response = client.post(url, body, format="json")
    data = response.json()
    if isinstance(data, dict):
        data.pop("request_id", None)
    return response.status_code, data


@pytest.fixture
def hidden(people: People, res: Resources) -> None:
    """rita, her bot and her team exist and hold grants the outsider may not see; the outsider may see
    the datasets ``customers`` (confidential) and ``payments-internal`` through a grant of their own."""
    bot = service_account_create(actor=people.requester, name="rita-bot")
    grant(people.owner, people.requester, res.confidential, "read_data")
    grant(people.owner, bot.user, res.confidential, "read_data")
    grant(people.owner, people.team, res.confidential, "read_data")
    grant(people.owner, people.outsider, res.confidential, "train_on")
    grant(people.owner, people.outsider, res.internal, "read_data")


CHECK_PROBES = [("user:rita", "user:no-such-person"), ("service:rita-bot", "service:no-such-bot"),
                ("group:fraud-team", "group:no-such-team")]


@pytest.mark.parametrize(("existing", "missing"), CHECK_PROBES)
def test_the_access_check_answers_an_invisible_principal_like_an_unknown_one(
    people: People, hidden: None, as_user: UserClient, existing: str, missing: str,
) -> None:
    client = as_user(people.outsider)
    body = {"resource": "dataset:customers", "permission": "read_data"}
    with writes_nothing():
        seen = _answer(client, CHECK, {**body, "principal": existing})
        unseen = _answer(client, CHECK, {**body, "principal": missing})
    # rita may read customers, but the outsider may not learn that, nor that rita exists
    assert seen == unseen == (200, {"allowed": False, "reason": "no active grant of read_data on dataset:customers",
                                    "grant_id": None, "level": "confidential", "expires_at": None})


def test_a_token_gets_the_same_answer_for_an_unknown_principal_and_one_without_a_grant(
    people: People, res: Resources, token_for: TokenClient,
) -> None:
    client = token_for(["access:check"])
    body = {"resource": "dataset:customers", "permission": "read_data"}
    before = PendingEntry.objects.count()
    unknown = _answer(client, CHECK, {**body, "principal": "user:no-such-person"})
    assert PendingEntry.objects.count() == before  # nobody to record
    known = _answer(client, CHECK, {**body, "principal": "user:otto"})
    assert known == unknown and known[1]["allowed"] is False


def test_a_visible_principal_still_gets_the_true_answer(people: People, hidden: None, as_user: UserClient) -> None:
    body = {"resource": "dataset:customers", "permission": "read_data", "principal": "user:rita"}
    assert _answer(as_user(people.infosec), CHECK, body)[1]["allowed"] is True
    assert _answer(as_user(people.owner), CHECK, body)[1]["allowed"] is True  # a grant on olga's data
    mine = {"resource": "dataset:customers", "permission": "train_on", "principal": "user:otto"}
    assert _answer(as_user(people.outsider), CHECK, mine)[1]["allowed"] is True


def _grant_body(principal: str, resource: str = "dataset:payments-internal") -> dict[str, str]:
    return {"principal": principal, "resource": resource, "permission": "read_data",
            "expires_at": soon(20).isoformat(), "justification": "probe"}


@pytest.mark.parametrize(("existing", "missing"), CHECK_PROBES)
def test_granting_without_the_right_answers_the_same_whoever_is_named(
    people: People, hidden: None, as_user: UserClient, existing: str, missing: str,
) -> None:
    client = as_user(people.outsider)
    with writes_nothing():
        seen = _answer(client, GRANTS, _grant_body(existing))
        unseen = _answer(client, GRANTS, _grant_body(missing))
        # and on a resource the caller cannot see: the resource's 400, whoever is named
        hidden_seen = _answer(client, GRANTS, _grant_body(existing, "dataset:kyc-documents"))
        hidden_unseen = _answer(client, GRANTS, _grant_body(missing, "dataset:kyc-documents"))
    assert seen == unseen and seen[0] == 403
    assert seen[1]["detail"] == "only InfoSec or the owner of dataset:payments-internal may grant access to it"
    assert hidden_seen == hidden_unseen and hidden_seen[0] == 400


def test_a_token_without_the_right_learns_nothing_either(people: People, hidden: None,
                                                        token_for: TokenClient) -> None:
    client = token_for(["access:write"])  # the requester's pipeline: it owns no data
    with writes_nothing():
        seen = _answer(client, GRANTS, _grant_body("user:rita", "dataset:customers"))
        unseen = _answer(client, GRANTS, _grant_body("user:no-such-person", "dataset:customers"))
    assert seen == unseen and seen[0] in (400, 403)


def test_an_owner_gets_one_400_for_unknown_closed_and_disabled_principals(
    people: People, res: Resources, as_user: UserClient,
) -> None:
    make_user("gone").__class__.objects.filter(username="gone").update(is_active=False)
    old_bot = service_account_create(actor=people.requester, name="old-bot")
    ServiceAccount.objects.filter(pk=old_bot.pk).update(disabled_at=timezone.now())
    client = as_user(people.owner)
    with writes_nothing():
        answers = {ref: _answer(client, GRANTS, _grant_body(ref))
                   for ref in ("user:gone", "user:no-such-person")}
        bots = {ref: _answer(client, GRANTS, _grant_body(ref)) for ref in ("service:old-bot", "service:no-bot")}
    # the full answers, once the name the caller sent is blanked out, are the same
    assert _blank(answers["user:gone"], "gone") == _blank(answers["user:no-such-person"], "no-such-person")
    assert _blank(bots["service:old-bot"], "old-bot") == _blank(bots["service:no-bot"], "no-bot")
    status, body = answers["user:gone"]
    assert status == 400
    assert body["errors"] == [{"field": "principal", "message": "no user named 'gone' that you may name here"}]


def _blank(answer: tuple[int, Any], name: str) -> str:
    return json.dumps(answer, sort_keys=True).replace(f"'{name}'", "'?'")


def test_an_owner_still_grants_to_a_named_colleague(people: People, res: Resources, as_user: UserClient) -> None:
    response = as_user(people.owner).post(GRANTS, _grant_body("user:otto"), format="json")
    assert response.status_code == 201, response.content
    assert problem_of(as_user(people.owner).post(GRANTS, _grant_body("user:olga"), format="json"))["status"] == 403
