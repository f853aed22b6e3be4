"""Access-governance API: visibility selectors, grants, access requests, reviews and the access check."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from access.models import AccessRequest, Dataset, Grant, ReviewCampaign, ServiceAccount
from access.selectors import access_requests_visible_to, datasets_visible_to, grants_visible_to
from access.services.access_requests import access_request_create
from access.services.checks import check
from access.services.grants import grant_revoke
from access.services.reviews import review_campaign_start
from access.services.service_accounts import service_account_create
from audit.models import PendingEntry
from tests.access.helpers import grant, noon_in, soon, writes_nothing
from tests.api.helpers import problem_of
from tests.catalog import Resources
from tests.personas import People, fresh, make_user

pytestmark = pytest.mark.django_db

UserClient = Callable[[User | None], APIClient]
TokenClient = Callable[..., APIClient]


# --- visibility selectors ----------------------------------------------------------------------------------


def _names(qs: Any) -> set[str]:
    return {d.name for d in qs}


def test_datasets_visible_to_roles_owner_and_grantees(people: People, res: Resources,
                                                       django_assert_num_queries: Any) -> None:
    # given: the requester's team holds read_data on the internal dataset, a service account of mona's
    # holds train_on on the public one, and the requester once had (now revoked) access to customers
    grant(people.owner, people.team, res.internal, "read_data")
    mona = make_user("mona", "model-owner")
    sa = service_account_create(actor=mona, name="mona-bot")
    grant(people.owner, sa.user, res.public, "train_on")
    revoked = grant(people.infosec, people.requester, res.confidential, "read_data")
    grant_revoke(actor=people.infosec, grant=revoked, reason="no longer needed")
    everything = set(Dataset.objects.values_list("name", flat=True))
    # then
    for who in (people.infosec, people.auditor, people.steward):
        assert _names(datasets_visible_to(fresh(who))) == everything
    assert _names(datasets_visible_to(fresh(people.owner))) == everything  # owns them all
    assert _names(datasets_visible_to(fresh(people.requester))) == {"payments-internal"}
    assert _names(datasets_visible_to(fresh(mona))) == {"fx-rates"}
    assert _names(datasets_visible_to(fresh(sa.user))) == {"fx-rates"}
    assert _names(datasets_visible_to(fresh(people.outsider))) == set()
    assert _names(datasets_visible_to(make_user("nobody"))) == set()
    # one statement for the list, roles included
    requester = fresh(people.requester)
    with django_assert_num_queries(2):  # the role lookup (cached on the user) and the list itself
        list(datasets_visible_to(requester))
    with django_assert_num_queries(1):
        list(datasets_visible_to(requester))


def test_an_inactive_user_sees_nothing(people: People, res: Resources) -> None:
    people.infosec.is_active = False
    people.infosec.save()
    assert not datasets_visible_to(fresh(people.infosec)).exists()
    assert not grants_visible_to(fresh(people.infosec)).exists()
    assert not access_requests_visible_to(fresh(people.infosec)).exists()


def test_grants_visible_to_owner_grantee_and_roles(people: People, res: Resources) -> None:
    # given
    other_owner = make_user("oscar", "model-owner")
    foreign = Dataset.objects.create(name="foreign", owner=other_owner, level="internal", effective_level="internal")
    to_team = grant(people.owner, people.team, res.internal, "read_data")
    to_outsider = grant(other_owner, people.outsider, foreign, "read_data")
    sa = service_account_create(actor=people.requester, name="rita-bot")
    to_bot = grant(other_owner, sa.user, foreign, "train_on")
    on_model = grant(people.owner, people.outsider, res.model, "view_metadata")
    all_ids = {to_team.pk, to_outsider.pk, to_bot.pk, on_model.pk}

    def ids(user: User) -> set[int]:
        return set(grants_visible_to(fresh(user)).values_list("pk", flat=True))

    # then
    for who in (people.infosec, people.auditor, people.steward):
        assert ids(who) == all_ids
    assert ids(people.owner) == {to_team.pk, on_model.pk}  # grants on what olga owns
    assert ids(other_owner) == {to_outsider.pk, to_bot.pk}
    assert ids(people.requester) == {to_team.pk, to_bot.pk}  # via her team and her service account
    assert ids(people.outsider) == {to_outsider.pk, on_model.pk}
    assert ids(make_user("nobody")) == set()


def test_access_requests_visible_to_requester_principal_owner_and_infosec(people: People, res: Resources) -> None:
    # given: rita asks for her service account; mona asks for herself
    sa = service_account_create(actor=people.requester, name="rita-bot")
    mona = make_user("mona", "model-owner")
    for_bot = access_request_create(
        actor=people.requester, for_service_account=sa, resource=res.internal, permission="read_data",
        duration_days=30, justification="training features",
    )
    for_mona = access_request_create(
        actor=mona, resource=res.model, permission="view_metadata", duration_days=30, justification="curious",
    )

    def ids(user: User) -> set[int]:
        return set(access_requests_visible_to(fresh(user)).values_list("pk", flat=True))

    # then
    both = {for_bot.pk, for_mona.pk}
    assert ids(people.infosec) == both
    assert ids(people.auditor) == both
    assert ids(people.owner) == both  # owns the dataset and the model
    assert ids(people.requester) == {for_bot.pk}
    assert ids(sa.user) == {for_bot.pk}
    assert ids(mona) == {for_mona.pk}
    assert ids(people.outsider) == set()
    assert ids(people.steward) == set()
    assert AccessRequest.objects.count() == 2 and Grant.objects.count() == 0
    assert ServiceAccount.objects.count() == 1


# --- grants ---------------------------------------------------------------------------------------------------

GRANTS = "/api/v1/grants"


def _soon_iso(days: float = 30) -> str:
    from tests.access.helpers import soon

    return soon(days).isoformat()


def test_the_owner_grants_through_the_api(people: People, res: Resources, as_user: UserClient,
                                          token_for: TokenClient) -> None:
    bot = token_for(["access:check"])
    # when
    response = as_user(people.owner).post(GRANTS, {
        "principal": "service:pipeline", "resource": "dataset:payments-internal", "permission": "read_data",
        "expires_at": _soon_iso(60), "justification": "nightly features"}, format="json")
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["principal"], body["resource"], body["status"], body["granted_by"]) == (
        "service:pipeline", "dataset:payments-internal", "active", "olga")
    assert Grant.objects.get(pk=body["id"]).user == bot.service_account.user
    assert as_user(people.owner).get(f"{GRANTS}/{body['id']}").json() == body


@pytest.mark.parametrize("who, body, status, field", [
    # restricted data: only InfoSec may grant
    ("owner", {"resource": "dataset:kyc-documents"}, 403, None),
    ("outsider", {}, 400, "resource"),  # cannot see the dataset: named like a missing one
    ("requester", {"principal": "user:otto"}, 400, "resource"),
    ("owner", {"principal": "user:olga"}, 403, None),  # to oneself
    ("owner", {"principal": "user:ghost"}, 400, "principal"),
    ("owner", {"principal": "olga"}, 400, "principal"),
    ("owner", {"principal": "robot:olga"}, 400, "principal"),
    ("owner", {"resource": "table:customers"}, 400, "resource"),
    ("owner", {"permission": "own"}, 400, "permission"),
    ("owner", {"permission": "deploy_to"}, 400, None),  # not a dataset permission
    ("owner", {"expires_at": "2020-01-01T00:00:00Z"}, 400, None),
    ("owner", {"expires_at": "next week"}, 400, "expires_at"),
    ("owner", {"days": 400}, 400, None),  # beyond the 180 days of internal data
    ("owner", {"justification": ""}, 400, "justification"),
    ("owner", {"request": 3}, 400, "request"),  # unknown field
])
def test_refused_grants_write_nothing(people: People, res: Resources, as_user: UserClient, who: str,
                                      body: dict[str, Any], status: int, field: str | None) -> None:
    payload = {"principal": "user:otto", "resource": "dataset:payments-internal", "permission": "read_data",
               "expires_at": _soon_iso(30), "justification": "needed"}
    if "days" in body:
        payload["expires_at"] = _soon_iso(body.pop("days"))
    payload.update(body)
    with writes_nothing():
        response = as_user(getattr(people, who)).post(GRANTS, payload, format="json")
    assert response.status_code == status, response.content
    problem = problem_of(response)
    if field:
        assert field in {e["field"] for e in problem["errors"]}


def test_grant_list_filters_visibility_and_bounded_queries(
    people: People, res: Resources, as_user: UserClient, django_assert_max_num_queries: Any,
) -> None:
    # given
    g1 = grant(people.owner, people.requester, res.internal, "read_data", days=3)
    g2 = grant(people.infosec, people.team, res.restricted, "read_data", days=20)
    g3 = grant(people.owner, people.outsider, res.model, "view_metadata", days=60)
    grant_revoke(actor=people.owner, grant=g3, reason="done")
    for i in range(10):
        grant(people.owner, make_user(f"extra{i}"), res.public, "view_metadata", days=90)
    client = as_user(people.infosec)

    def ids(**params: Any) -> list[int]:
        response = client.get(GRANTS, params)
        assert response.status_code == 200, response.content
        return [g["id"] for g in response.json()["results"]]

    # then
    assert ids(principal="user:rita") == [g1.pk]
    assert ids(principal="group:fraud-team") == [g2.pk]
    assert ids(resource="dataset:kyc-documents") == [g2.pk]
    assert ids(permission="view_metadata", status="revoked") == [g3.pk]
    assert ids(expiring_within_days=7) == [g1.pk]
    assert set(ids(expiring_within_days=30)) == {g1.pk, g2.pk}
    for bad in ({"status": "gone"}, {"principal": "nobody"}, {"permission": "x"}, {"expiring_within_days": -1},
                {"sort": "id"}):
        assert client.get(GRANTS, bad).status_code == 400
    # the requester sees her own grant and her team's, not the others
    assert {g["id"] for g in as_user(people.requester).get(GRANTS).json()["results"]} == {g1.pk, g2.pk}
    assert as_user(people.requester).get(f"{GRANTS}/{g3.pk}").status_code == 404
    assert as_user(people.outsider).get(f"{GRANTS}/{g1.pk}").status_code == 404
    with django_assert_max_num_queries(10):
        assert len(ids()) == 13


def test_revoking_a_grant(people: People, res: Resources, as_user: UserClient) -> None:
    g = grant(people.owner, people.requester, res.internal)
    with writes_nothing():
        assert as_user(people.requester).post(f"{GRANTS}/{g.pk}/revoke", {"reason": "x"},
                                              format="json").status_code == 403  # sees it, may not revoke
        assert as_user(people.outsider).post(f"{GRANTS}/{g.pk}/revoke", {"reason": "x"},
                                             format="json").status_code == 404
        assert as_user(people.owner).post(f"{GRANTS}/{g.pk}/revoke", {}, format="json").status_code == 400
        assert as_user(people.owner).post(f"{GRANTS}/{g.pk}/revoke", {"reason": "x" * 301},
                                          format="json").status_code == 400
    response = as_user(people.owner).post(f"{GRANTS}/{g.pk}/revoke", {"reason": "project over"}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["revoked_by"]) == ("revoked", "olga")
    assert not check(people.requester, "read_data", res.internal)
    with writes_nothing():
        assert as_user(people.owner).post(f"{GRANTS}/{g.pk}/revoke", {"reason": "again"},
                                          format="json").status_code == 409


def test_grant_scopes(people: People, res: Resources, token_for: TokenClient) -> None:
    g = grant(people.owner, people.requester, res.internal)
    reader = token_for(["access:check"])
    assert reader.get(GRANTS).status_code == 403
    writer = token_for(["access:read"])
    with writes_nothing():
        assert writer.post(f"{GRANTS}/{g.pk}/revoke", {"reason": "x"}, format="json").status_code == 403


# --- access requests --------------------------------------------------------------------------------------

REQUESTS = "/api/v1/access-requests"


def _ask(client: APIClient, **body: Any) -> Any:
    payload = {"resource": "dataset:customers", "permission": "read_data", "duration_days": 30,
               "justification": "churn model features", **body}
    return client.post(REQUESTS, payload, format="json")


def test_request_approve_and_the_grant_follows(people: People, res: Resources, as_user: UserClient) -> None:
    # given: rita asks for a dataset she cannot see yet
    response = _ask(as_user(people.requester))
    assert response.status_code == 201, response.content
    request_id = response.json()["id"]
    assert response.json()["principal"] == "user:rita" and response.json()["state"] == "pending"
    # when: the owner approves
    response = as_user(people.owner).post(f"{REQUESTS}/{request_id}/approve", {"comment": "ok"}, format="json")
    # then
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "approved" and response.json()["grant_id"] is not None
    assert check(people.requester, "read_data", res.confidential)
    assert as_user(people.requester).get("/api/v1/datasets/customers").status_code == 200


def test_a_request_for_a_service_account(people: People, res: Resources, as_user: UserClient) -> None:
    service_account_create(actor=people.requester, name="rita-bot")
    response = _ask(as_user(people.requester), service_account="rita-bot")
    assert response.status_code == 201, response.content
    assert response.json()["principal"] == "service:rita-bot"
    with writes_nothing():  # not her account: as if it did not exist
        response = _ask(as_user(people.owner), service_account="rita-bot")
    assert response.status_code == 400
    assert "service_account" in {e["field"] for e in problem_of(response)["errors"]}


@pytest.mark.parametrize("who, body, status, field", [
    ("outsider", {}, 403, None),  # no governance role
    ("requester", {"duration_days": 91}, 400, None),  # confidential data: 90 days at most
    ("requester", {"duration_days": 0}, 400, "duration_days"),
    ("requester", {"permission": "deploy_to"}, 400, None),
    ("requester", {"permission": "sudo"}, 400, "permission"),
    ("requester", {"resource": "dataset:nope"}, 400, "resource"),
    ("requester", {"resource": "customers"}, 400, "resource"),
    ("requester", {"justification": ""}, 400, "justification"),
    ("requester", {"state": "approved"}, 400, "state"),  # unknown field
])
def test_refused_requests_write_nothing(people: People, res: Resources, as_user: UserClient, who: str,
                                        body: dict[str, Any], status: int, field: str | None) -> None:
    with writes_nothing():
        response = _ask(as_user(getattr(people, who)), **body)
    assert response.status_code == status, response.content
    if field:
        assert field in {e["field"] for e in problem_of(response)["errors"]}


def test_deciding_on_requests_is_for_the_right_people_only(
    people: People, res: Resources, as_user: UserClient, token_for: TokenClient,
) -> None:
    request_id = _ask(as_user(people.requester)).json()["id"]
    bot = token_for(sorted(__import__("access.services.tokens").services.tokens.SCOPES))
    with writes_nothing():
        # self-approval
        response = as_user(people.requester).post(f"{REQUESTS}/{request_id}/approve", {"comment": "me"},
                                                  format="json")
        assert response.status_code == 403
        # may not see it
        for action in ("approve", "reject", "withdraw"):
            assert as_user(people.outsider).post(f"{REQUESTS}/{request_id}/{action}", {"comment": "x"},
                                                 format="json").status_code == 404
        assert as_user(people.steward).get(f"{REQUESTS}/{request_id}").status_code == 404
        # no token may decide, whatever its scopes
        for action in ("approve", "reject"):
            response = bot.post(f"{REQUESTS}/{request_id}/{action}", {"comment": "x"}, format="json")
            assert response.status_code == 403
            assert "not available to API tokens" in problem_of(response)["detail"]
        # the auditor sees it, may not decide
        assert as_user(people.auditor).get(f"{REQUESTS}/{request_id}").status_code == 200
        assert as_user(people.auditor).post(f"{REQUESTS}/{request_id}/approve", {"comment": "x"},
                                            format="json").status_code == 403
        # a comment is required, unknown fields refused
        assert as_user(people.owner).post(f"{REQUESTS}/{request_id}/reject", {}, format="json").status_code == 400
        assert as_user(people.owner).post(f"{REQUESTS}/{request_id}/reject", {"comment": "no", "reason": "x"},
                                          format="json").status_code == 400
        # only the requester withdraws
        assert as_user(people.owner).post(f"{REQUESTS}/{request_id}/withdraw", {},
                                          format="json").status_code == 403
    response = as_user(people.owner).post(f"{REQUESTS}/{request_id}/reject", {"comment": "use the extract"},
                                          format="json")
    assert response.status_code == 200 and response.json()["state"] == "rejected"
    with writes_nothing():
        assert as_user(people.requester).post(f"{REQUESTS}/{request_id}/withdraw", {},
                                              format="json").status_code == 409


def test_the_requester_withdraws(people: People, res: Resources, as_user: UserClient) -> None:
    request_id = _ask(as_user(people.requester)).json()["id"]
    response = as_user(people.requester).post(f"{REQUESTS}/{request_id}/withdraw", {"reason": "not needed"},
                                              format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["state"], response.json()["decision_comment"]) == ("withdrawn", "not needed")


def test_request_list_visibility_filters_and_queries(
    people: People, res: Resources, as_user: UserClient, django_assert_max_num_queries: Any,
) -> None:
    for i in range(6):
        asker = make_user(f"asker{i}", "model-owner")
        _ask(as_user(asker), resource="dataset:fx-rates" if i % 2 else "registered_model:fraud-detector",
             permission="view_metadata")
    mine = _ask(as_user(people.requester)).json()["id"]
    client = as_user(people.owner)
    with django_assert_max_num_queries(10):
        response = client.get(REQUESTS)
    assert response.json()["count"] == 7
    assert client.get(REQUESTS, {"resource": "dataset:fx-rates"}).json()["count"] == 3
    assert client.get(REQUESTS, {"state": "withdrawn"}).json()["count"] == 0
    assert client.get(REQUESTS, {"state": "maybe"}).status_code == 400
    assert [r["id"] for r in as_user(people.requester).get(REQUESTS).json()["results"]] == [mine]
    assert as_user(people.outsider).get(REQUESTS).json()["count"] == 0


# --- reviews --------------------------------------------------------------------------------------------------

REVIEWS = "/api/v1/reviews"


def test_a_review_through_the_api(people: People, res: Resources, as_user: UserClient,
                                  token_for: TokenClient) -> None:
    # given
    g_conf = grant(people.owner, people.requester, res.confidential)
    g_restricted = grant(people.infosec, people.requester, res.restricted, days=20)
    grant(people.owner, people.requester, res.public)  # public: not reviewed
    bot = token_for(sorted(__import__("access.services.tokens").services.tokens.SCOPES))
    deadline = _soon_iso(14)
    # only InfoSec starts one, and no token
    with writes_nothing():
        assert as_user(people.owner).post(REVIEWS, {"name": "Q4", "deadline": deadline},
                                          format="json").status_code == 403
        assert bot.post(REVIEWS, {"name": "Q4", "deadline": deadline}, format="json").status_code == 403
        assert as_user(people.infosec).post(REVIEWS, {"name": "Q4", "deadline": deadline, "levels": ["secret"]},
                                            format="json").status_code == 400
        assert as_user(people.infosec).post(REVIEWS, {"name": "Q4", "deadline": "2020-01-01T00:00:00Z"},
                                            format="json").status_code == 400
    # when
    response = as_user(people.infosec).post(REVIEWS, {"name": "Q4", "deadline": deadline}, format="json")
    assert response.status_code == 201, response.content
    campaign_id = response.json()["id"]
    assert {i["grant"]["id"] for i in response.json()["items"]} == {g_conf.pk, g_restricted.pk}
    # then: the owner reviews the items on her datasets; the steward reviews nothing and sees nothing
    mona = make_user("mona", "model-owner")
    detail = as_user(people.owner).get(f"{REVIEWS}/{campaign_id}").json()
    assert {i["reviewer"] for i in detail["items"]} == {"olga"}
    [item] = [i for i in detail["items"] if i["grant"]["id"] == g_conf.pk]
    assert as_user(people.requester).get(f"{REVIEWS}/{campaign_id}").status_code == 404
    assert as_user(mona).get(f"{REVIEWS}/{campaign_id}").status_code == 404
    assert as_user(people.outsider).get(f"{REVIEWS}/{campaign_id}").status_code == 404
    assert [c["id"] for c in as_user(people.auditor).get(REVIEWS).json()["results"]] == [campaign_id]
    assert as_user(people.outsider).get(REVIEWS).json()["results"] == []
    decide = f"{REVIEWS}/{campaign_id}/items/{item['id']}/decide"
    with writes_nothing():
        assert as_user(people.owner).post(decide, {"decision": "approve"}, format="json").status_code == 400
        assert as_user(people.owner).post(decide, {"decision": "certified"}, format="json").status_code == 400
        assert as_user(people.outsider).post(decide, {"decision": "certify"}, format="json").status_code == 404
        assert bot.post(decide, {"decision": "certify"}, format="json").status_code == 403
    response = as_user(people.owner).post(decide, {"decision": "revoke", "comment": "left the team"},
                                          format="json")
    assert response.status_code == 200, response.content
    assert response.json()["decision"] == "revoked" and response.json()["grant"]["status"] == "revoked"
    assert not check(people.requester, "read_data", res.confidential)
    with writes_nothing():
        assert as_user(people.owner).post(decide, {"decision": "certify"}, format="json").status_code == 409


# --- the access check -----------------------------------------------------------------------------------------

CHECK = "/api/v1/access/check"


def test_the_access_check_for_a_service(people: People, res: Resources, token_for: TokenClient,
                                        django_assert_max_num_queries: Any) -> None:
    client = token_for(["access:check"])
    until = noon_in(30)
    g = grant(people.owner, client.service_account.user, res.confidential, "read_data", until=until)
    body = {"principal": "service:pipeline", "resource": "dataset:customers", "permission": "read_data"}
    client.post(CHECK, body, format="json")  # warm up (last_used_at is written at most once a minute)
    # when
    with django_assert_max_num_queries(6):
        response = client.post(CHECK, body, format="json")
    # then
    assert response.status_code == 200, response.content
    assert response.json() == {"allowed": True, "reason": f"allowed by grant #{g.pk}", "grant_id": g.pk,
                               "level": "confidential", "expires_at": f"{until:%Y-%m-%d}T12:00:00Z"}
    assert response.json()["expires_at"].startswith(g.expires_at.strftime("%Y-%m-%dT%H:%M"))
    # a denial on sensitive data is an answer, and is recorded
    response = client.post(CHECK, {**body, "permission": "train_on"}, format="json")
    assert response.status_code == 200
    assert response.json()["allowed"] is False and response.json()["expires_at"] is None
    assert PendingEntry.objects.filter(event_type="access.check_denied").count() == 1
    # through a group, and on a model and an environment
    grant(people.owner, people.team, res.model, "deploy_to")
    assert client.post(CHECK, {"principal": "user:rita", "resource": "registered_model:fraud-detector",
                               "permission": "deploy_to"}, format="json").json()["allowed"] is True
    assert client.post(CHECK, {"principal": "group:fraud-team", "resource": "environment:production",
                               "permission": "deploy_to"}, format="json").json()["allowed"] is False


@pytest.mark.parametrize("body, field", [
    ({"principal": "service"}, "principal"),  # an unknown principal is "not allowed": test_principal_probing
    ({"principal": "robot:x"}, "principal"),
    ({"resource": "dataset:ghost"}, "resource"),
    ({"resource": "bucket:customers"}, "resource"),
    ({"permission": "deploy_to"}, "permission"),  # does not apply to a dataset
    ({"permission": "sudo"}, "permission"),
    ({"at": "2026-01-01T00:00:00Z"}, "at"),
])
def test_bad_access_checks_are_400(people: People, res: Resources, token_for: TokenClient,
                                   body: dict[str, Any], field: str) -> None:
    client = token_for(["access:check"])
    payload = {"principal": "user:rita", "resource": "dataset:customers", "permission": "read_data", **body}
    with writes_nothing():
        response = client.post(CHECK, payload, format="json")
    assert response.status_code == 400, response.content
    assert field in {e["field"] for e in problem_of(response)["errors"]}


def test_the_access_check_needs_its_scope_and_people_see_only_their_resources(
    people: People, res: Resources, token_for: TokenClient, as_user: UserClient,
) -> None:
    body = {"principal": "user:rita", "resource": "dataset:customers", "permission": "read_data"}
    assert token_for(["access:read"]).post(CHECK, body, format="json").status_code == 403
    assert as_user(people.owner).post(CHECK, body, format="json").json()["allowed"] is False
    assert as_user(people.infosec).post(CHECK, body, format="json").status_code == 200
    response = as_user(people.outsider).post(CHECK, body, format="json")
    assert response.status_code == 400  # a dataset otto cannot see is like one that does not exist
    assert as_user(None).post(CHECK, body, format="json").status_code in (401, 403)


def test_review_list_and_detail_have_bounded_queries(
    people: People, res: Resources, as_user: UserClient, django_assert_max_num_queries: Any,
) -> None:
    for i in range(12):
        grant(people.owner, make_user(f"reader{i}"), res.confidential)
    for i in range(3):
        review_campaign_start(actor=people.infosec, name=f"R{i}", deadline=soon(10))
    campaign_id = ReviewCampaign.objects.order_by("-id").values_list("pk", flat=True)[0]
    client = as_user(people.auditor)
    with django_assert_max_num_queries(6):
        assert client.get(REVIEWS).json()["count"] == 3
    with django_assert_max_num_queries(10):
        assert len(client.get(f"{REVIEWS}/{campaign_id}").json()["items"]) == 12


# --- the schema -----------------------------------------------------------------------------------------------

OUR_TAGS = {"datasets", "lineage", "grants", "access-requests", "reviews", "access-check", "service-accounts"}


def test_every_access_operation_is_documented_with_examples_and_problems(as_user: UserClient) -> None:
    schema = as_user(None).get("/api/v1/schema/", {"format": "json"}).json()
    ours = [(path, method, op) for path, ops in schema["paths"].items() for method, op in ops.items()
            if set(op.get("tags", [])) & OUR_TAGS]
    assert len(ours) == 30
    ids = [op["operationId"] for _, _, op in ours]
    assert len(ids) == len(set(ids))
    for path, method, op in ours:
        ok = [code for code in op["responses"] if code.startswith("2")]
        assert ok, (path, method)
        assert "application/json" in op["responses"][ok[0]]["content"], (path, method)
        for code in ("400", "401", "403", "404"):
            assert "application/problem+json" in op["responses"][code]["content"], (path, method, code)
        if method == "post":
            body = op["requestBody"]["content"]["application/json"]
            assert body.get("examples"), (path, method)
        else:
            assert op["responses"][ok[0]]["content"]["application/json"].get("examples"), (path, method)
