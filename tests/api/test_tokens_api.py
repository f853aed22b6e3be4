"""``/api/v1/service-accounts…``: accounts and their tokens, people only; the plaintext is shown once."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from access.models import ApiToken, ServiceAccount
from audit.models import Entry, PendingEntry
from tests.access.helpers import writes_nothing
from tests.api.helpers import problem_of
from tests.personas import People

pytestmark = pytest.mark.django_db

UserClient = Callable[[User | None], APIClient]
TokenClient = Callable[..., APIClient]
BASE = "/api/v1/service-accounts"


@pytest.fixture
def account(people: People) -> ServiceAccount:
    from access.services.service_accounts import service_account_create

    return service_account_create(actor=people.requester, name="fraud-pipeline", description="nightly training")


def _issue(client: APIClient, account: str = "fraud-pipeline", **body: Any) -> Any:
    return client.post(f"{BASE}/{account}/tokens", {"name": "ci", "scopes": ["access:check"], **body}, format="json")


# --- service accounts ---------------------------------------------------------------------------------------


def test_a_model_owner_creates_a_service_account_they_own(people: People, as_user: UserClient) -> None:
    # when
    response = as_user(people.requester).post(BASE, {"name": "fraud-pipeline", "description": "nightly"},
                                              format="json")
    # then
    assert response.status_code == 201, response.content
    created = ServiceAccount.objects.get(name="fraud-pipeline").created_at  # set by the server: from the row
    assert response.json() == {
        "name": "fraud-pipeline", "description": "nightly", "owner": "rita", "username": "svc-fraud-pipeline",
        "created_at": f"{created:%Y-%m-%dT%H:%M:%S.%f}Z", "disabled_at": None,
    }
    assert ServiceAccount.objects.get(name="fraud-pipeline").owner == people.requester
    assert PendingEntry.objects.filter(event_type="access.service_account_created").count() == 1


@pytest.mark.parametrize("body, field", [
    ({"name": "bad name!"}, "name"),
    ({"name": "ok", "owner": "olga"}, "owner"),  # unknown field: the owner is always the caller
    ({"name": "ok", "description": "x" * 301}, "description"),
    ({}, "name"),
])
def test_bad_service_account_input_is_a_400_and_writes_nothing(people: People, as_user: UserClient,
                                                               body: dict[str, Any], field: str) -> None:
    with writes_nothing():
        response = as_user(people.requester).post(BASE, body, format="json")
    assert response.status_code == 400
    assert field in {e["field"] for e in problem_of(response)["errors"]}


def test_people_without_the_role_and_tokens_cannot_create_service_accounts(
    people: People, as_user: UserClient, token_for: TokenClient,
) -> None:
    with writes_nothing():
        assert as_user(people.outsider).post(BASE, {"name": "x"}, format="json").status_code == 403
        assert as_user(people.auditor).post(BASE, {"name": "x"}, format="json").status_code == 403
    client = token_for(list(__import__("access.services.tokens").services.tokens.SCOPES))  # every scope there is
    before = ServiceAccount.objects.count()
    response = client.post(BASE, {"name": "x"}, format="json")
    assert response.status_code == 403
    assert "not available to API tokens" in problem_of(response)["detail"]
    assert ServiceAccount.objects.count() == before
    assert as_user(None).post(BASE, {"name": "x"}, format="json").status_code in (401, 403)


def test_accounts_are_visible_to_their_owner_infosec_and_auditors_only(
    people: People, account: ServiceAccount, as_user: UserClient,
) -> None:
    for who in (people.requester, people.infosec, people.auditor):
        assert [a["name"] for a in as_user(who).get(BASE).json()["results"]] == ["fraud-pipeline"]
        assert as_user(who).get(f"{BASE}/fraud-pipeline").status_code == 200
    for who in (people.owner, people.outsider, people.steward):
        assert as_user(who).get(BASE).json()["results"] == []
        response = as_user(who).get(f"{BASE}/fraud-pipeline")
        assert response.status_code == 404
        assert problem_of(response)["code"] == "not_found"


# --- tokens --------------------------------------------------------------------------------------------------


def test_the_owner_issues_a_token_shown_once_and_never_logged(
    people: People, account: ServiceAccount, as_user: UserClient, caplog: pytest.LogCaptureFixture,
) -> None:
    # when
    caplog.set_level(logging.DEBUG)
    response = _issue(as_user(people.requester), scopes=["access:check", "access:read"], expires_in_days=30)
    # then: the plaintext is in this response, with no-store
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    plaintext = body["token"]
    assert plaintext.startswith(f"mlg_{body['prefix']}_")
    assert body["scopes"] == ["access:check", "access:read"]
    assert body["active"] is True and body["created_by"] == "rita"
    # and nowhere else: not in the list, not in the ledger, not in the logs, not stored
    listing = as_user(people.requester).get(f"{BASE}/fraud-pipeline/tokens")
    assert listing.status_code == 200
    assert plaintext not in listing.content.decode()
    assert [t["prefix"] for t in listing.json()["results"]] == [body["prefix"]]
    assert "token" not in listing.json()["results"][0]
    from audit.ledger import integrate

    integrate()
    ledger_text = " ".join(PendingEntry.objects.values_list("payload_json", flat=True)) + " ".join(
        Entry.objects.values_list("payload_json", flat=True))
    assert body["prefix"] in ledger_text
    assert plaintext not in ledger_text
    # the secret part (it may itself contain "_": cut the known prefix rather than split)
    assert plaintext.startswith(f"mlg_{body['prefix']}_")
    assert plaintext.removeprefix(f"mlg_{body['prefix']}_") not in caplog.text
    assert plaintext not in str(list(ApiToken.objects.values()))
    # and it works, with its scopes
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert client.get("/api/v1/whoami").json()["service_account"] == "fraud-pipeline"


def test_infosec_may_issue_for_any_account_others_may_not(
    people: People, account: ServiceAccount, as_user: UserClient,
) -> None:
    assert _issue(as_user(people.infosec)).status_code == 201
    with writes_nothing():
        response = _issue(as_user(people.auditor))  # may see it, may not mint
        assert response.status_code == 403
        assert problem_of(response)["code"] == "not_permitted"
        for who in (people.owner, people.outsider, people.steward):
            assert _issue(as_user(who)).status_code == 404  # cannot see it at all
    assert ApiToken.objects.count() == 1


@pytest.mark.parametrize("body, field", [
    ({"scopes": ["access:everything"]}, "scopes.0"),
    ({"scopes": []}, "scopes"),
    ({"expires_in_days": 366}, "expires_in_days"),  # beyond the maximum
    ({"expires_in_days": 0}, "expires_in_days"),
    ({"name": ""}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"plaintext": "mlg_mine"}, "plaintext"),  # unknown field
])
def test_bad_token_input_is_a_400_and_writes_nothing(
    people: People, account: ServiceAccount, as_user: UserClient, body: dict[str, Any], field: str,
) -> None:
    with writes_nothing():
        response = _issue(as_user(people.requester), **body)
    assert response.status_code == 400, response.content
    assert field in {e["field"] for e in problem_of(response)["errors"]}
    assert ApiToken.objects.count() == 0


def test_no_token_may_list_mint_or_revoke_tokens(
    people: People, token_for: TokenClient, as_user: UserClient,
) -> None:
    from access.services import tokens

    client = token_for(sorted(tokens.SCOPES))  # account "pipeline" owned by rita, every scope
    before = ApiToken.objects.count()
    assert client.get(f"{BASE}/pipeline/tokens").status_code == 403
    assert _issue(client, "pipeline").status_code == 403
    response = client.post(f"{BASE}/pipeline/tokens/{client.token.pk}/revoke", {"reason": "x"}, format="json")
    assert response.status_code == 403
    assert ApiToken.objects.count() == before
    assert ApiToken.objects.get(pk=client.token.pk).revoked_at is None
    # reads of the account itself are fine with access:read
    assert client.get(f"{BASE}/pipeline").status_code == 404  # the account's own user owns nothing
    assert as_user(people.requester).get(f"{BASE}/pipeline/tokens").status_code == 200


def test_a_revoked_token_stops_working_at_once(people: People, account: ServiceAccount, as_user: UserClient) -> None:
    # given
    issued = _issue(as_user(people.requester), scopes=["access:check"]).json()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued['token']}")
    assert client.get("/api/v1/whoami").status_code == 200
    # when
    response = as_user(people.requester).post(f"{BASE}/fraud-pipeline/tokens/{issued['id']}/revoke",
                                              {"reason": "leaked in a CI log"}, format="json")
    # then
    assert response.status_code == 200, response.content
    assert response.json()["active"] is False and response.json()["revoked_by"] == "rita"
    assert response.json()["revoke_reason"] == "leaked in a CI log"
    assert client.get("/api/v1/whoami").status_code == 401
    assert [e for e in PendingEntry.objects.filter(event_type="access.api_token_revoked")]
    # revoking again is a conflict that writes nothing
    with writes_nothing():
        again = as_user(people.requester).post(f"{BASE}/fraud-pipeline/tokens/{issued['id']}/revoke",
                                               {"reason": "again"}, format="json")
    assert again.status_code == 409


def test_revoking_needs_a_reason_and_the_right_account(
    people: People, account: ServiceAccount, as_user: UserClient,
) -> None:
    issued = _issue(as_user(people.requester)).json()
    from access.services.service_accounts import service_account_create

    service_account_create(actor=people.requester, name="other")
    with writes_nothing():
        assert as_user(people.requester).post(f"{BASE}/fraud-pipeline/tokens/{issued['id']}/revoke", {},
                                              format="json").status_code == 400
        # the token is not one of this account's
        assert as_user(people.requester).post(f"{BASE}/other/tokens/{issued['id']}/revoke", {"reason": "x"},
                                              format="json").status_code == 404
        assert as_user(people.outsider).post(f"{BASE}/fraud-pipeline/tokens/{issued['id']}/revoke",
                                             {"reason": "x"}, format="json").status_code == 404
        assert as_user(people.auditor).post(f"{BASE}/fraud-pipeline/tokens/{issued['id']}/revoke",
                                            {"reason": "x"}, format="json").status_code == 403
    assert ApiToken.objects.get(pk=issued["id"]).revoked_at is None


def test_token_and_account_lists_have_bounded_queries(
    people: People, account: ServiceAccount, as_user: UserClient, django_assert_max_num_queries: Any,
) -> None:
    from access.services.service_accounts import service_account_create
    from access.services.tokens import api_token_create, api_token_revoke

    for i in range(8):
        issued = api_token_create(actor=people.requester, service_account=account, name=f"t{i}",
                                  scopes=["access:check"])
        if i % 2:
            api_token_revoke(actor=people.requester, token=issued.token, reason="rotated")
        service_account_create(actor=people.requester, name=f"bot-{i}")
    client = as_user(people.requester)
    with django_assert_max_num_queries(8):
        response = client.get(f"{BASE}/fraud-pipeline/tokens")
    assert response.json()["count"] == 8
    with django_assert_max_num_queries(8):
        response = client.get(BASE)
    assert response.json()["count"] == 9
