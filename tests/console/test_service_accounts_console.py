"""Console pages of service accounts and API tokens (``access/console_tokens.py``).

Personas come from tests/personas.py: rita (model-owner) owns the ``fraud-pipeline`` account,
olga is another model owner, ines InfoSec, audrey an auditor, sam a data steward, otto an outsider.
What is under test goes through the pages; ``access.services.grants`` and ``access.services.tokens`` decide, and a
refusal is a message (or a 404 page) with nothing written. The token's plaintext must appear on the
page answering the POST that issued it, and nowhere else.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from access.models import ApiToken, ServiceAccount
from access.services import tokens
from audit.models import Entry, PendingEntry
from tests.access.helpers import ledger, snapshot
from tests.console.helpers import client_for, messages_of
from tests.personas import People, make_user

pytestmark = pytest.mark.django_db

LIST = "/console/access/service-accounts/"
CREATE = "/console/access/service-accounts/+new/"
TOKEN_RE = re.compile(r"mlg_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}")


def detail_url(name: str = "fraud-pipeline") -> str:
    return reverse("console-service-account", args=[name])


def issue_url(name: str = "fraud-pipeline") -> str:
    return reverse("console-token-issue", args=[name])


def revoke_url(token: ApiToken) -> str:
    return reverse("console-token-revoke", args=[token.service_account.name, token.pk])


def issue_form(**overrides: Any) -> dict[str, Any]:
    return {"name": "ci", "scopes": ["access:check", "models:read"], "expires_in_days": "30", **overrides}


def state() -> dict[str, Any]:
    """Everything these pages could write: the access rows, the ledger intake, and every token's state."""
    return {
        "rows": snapshot(),
        "tokens": list(ApiToken.objects.order_by("pk").values_list("pk", "revoked_at", "revoked_by", "revoke_reason")),
        "accounts": list(ServiceAccount.objects.order_by("pk").values_list("pk", "name", "owner", "disabled_at")),
    }


@contextmanager
def nothing_written() -> Iterator[None]:
    before = state()
    yield
    assert state() == before


def issue(user: User, account: ServiceAccount, **kwargs: Any) -> tokens.IssuedToken:
    """Setup: a token issued through the service (as the owner would)."""
    return tokens.api_token_create(actor=user, service_account=account, name=kwargs.pop("name", "ci"),
                                   scopes=kwargs.pop("scopes", ["access:check"]), **kwargs)


def browser(user: User) -> tuple[Client, str]:
    """A client that enforces CSRF, with the token a page it opened gave it (as a browser has)."""
    client = client_for(user, csrf=True)
    assert client.get(LIST).status_code == 200
    return client, client.cookies["csrftoken"].value


# --- the owner's path: create, issue (shown once), use ---------------------------------------------------


def test_an_owner_creates_an_account_and_issues_a_token_shown_exactly_once(
    people: People, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client, csrf = browser(people.requester)
    # when: rita creates an account through the form
    created = client.post(CREATE, {"name": "fraud-pipeline", "description": "nightly training",
                                   "csrfmiddlewaretoken": csrf}, follow=True)
    # then
    assert created.redirect_chain == [(detail_url(), 302)]
    assert messages_of(created)[0].startswith("Service account fraud-pipeline is created; you own it.")
    account = ServiceAccount.objects.get(name="fraud-pipeline")
    assert (account.owner, account.description) == (people.requester, "nightly training")
    assert "Issue a token" in created.content.decode()

    # when: she issues a token
    issued = client.post(issue_url(), {**issue_form(), "csrfmiddlewaretoken": csrf})
    # then: the page answering the POST shows it, once, uncached
    assert issued.status_code == 200
    assert issued.templates[0].name == "console/token_issued.html"
    assert "no-store" in issued["Cache-Control"] and issued["Pragma"] == "no-cache"
    body = issued.content.decode()
    [plaintext] = TOKEN_RE.findall(body)
    assert body.count(plaintext) == 1
    assert "Copy it now: it will not be shown again" in body
    token = ApiToken.objects.get()
    assert plaintext.startswith(f"mlg_{token.prefix}_")
    assert token.digest not in body
    assert (token.name, token.scopes, token.created_by) == ("ci", ["access:check", "models:read"], people.requester)
    assert timezone.now() + timedelta(days=29) < token.expires_at <= timezone.now() + timedelta(
        days=30)
    # ... and nowhere else: not in the messages, the session, a cookie or a header
    assert not list(issued.context["messages"])
    assert all(plaintext not in str(s.get_decoded()) for s in Session.objects.all())
    assert all(plaintext not in c.value for c in issued.cookies.values())
    assert all(plaintext not in v for _, v in issued.items())

    # the token works, with the scopes chosen
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    whoami = api.get("/api/v1/whoami")
    assert whoami.status_code == 200
    assert whoami.json()["service_account"] == "fraud-pipeline"
    assert whoami.json()["scopes"] == ["access:check", "models:read"]

    # the ledger has the issue, not the token
    [entry] = ledger("access.api_token_created")
    assert entry == {"service_account": "fraud-pipeline", "token_id": token.pk, "name": "ci", "prefix": token.prefix,
                     "scopes": ["access:check", "models:read"],
                     "expires_at": f"{token.expires_at:%Y-%m-%dT%H:%M:%S.%f}Z"}  # the row's, in the ledger's form
    # The secret may itself contain "_" (base64url): cut the known prefix, don't split on "_".
    secret = plaintext.removeprefix(f"mlg_{token.prefix}_")
    assert len(secret) >= 20
    assert not Entry.objects.filter(payload_json__contains=secret).exists()
    assert not PendingEntry.objects.filter(payload_json__contains=secret).exists()

    # a second look at the account (and the list) shows the prefix, never the token
    again = client.get(detail_url())
    assert again.status_code == 200
    page = again.content.decode()
    assert f"mlg_{token.prefix}_…" in page
    assert secret not in page and token.digest not in page and not TOKEN_RE.search(page)
    listing = client.get(LIST).content.decode()
    assert "fraud-pipeline" in listing and secret not in listing and token.digest not in listing

    # and no log line carried it
    assert caplog.records
    assert secret not in caplog.text
    assert all(secret not in str(r.args) for r in caplog.records)


def test_the_list_shows_owner_description_active_tokens_and_last_use(people: People,
                                                                     service_account: ServiceAccount) -> None:
    # given: two live tokens, one revoked, one expired; one was used
    live = issue(people.requester, service_account).token
    issue(people.requester, service_account, name="second")
    gone = issue(people.requester, service_account, name="old").token
    tokens.api_token_revoke(actor=people.requester, token=gone, reason="rotated")
    expired = issue(people.requester, service_account, name="expired").token
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    used = timezone.now().replace(year=2031, month=1, day=2, hour=3, minute=4)
    ApiToken.objects.filter(pk=live.pk).update(last_used_at=used)
    # when
    response = client_for(people.requester).get(LIST)
    # then
    row = response.context["page"].object_list[0]
    assert (row.name, row.owner, row.description, row.active_tokens, row.last_used_at) == (
        "fraud-pipeline", people.requester, "nightly training", 2, used)
    body = response.content.decode()
    assert "nightly training" in body and "2031-01-02" in body


def test_the_account_page_lists_tokens_with_their_revocation(people: People, service_account: ServiceAccount) -> None:
    # given
    token = issue(people.requester, service_account, scopes=["ledger:read", "events:write"]).token
    tokens.api_token_revoke(actor=people.infosec, token=token, reason="leaked in a CI log")
    # when
    response = client_for(people.requester).get(detail_url())
    # then
    [row] = response.context["rows"]
    assert row["status"] == "revoked"
    body = response.content.decode()
    assert "<code>events:write</code> <code>ledger:read</code>" in body
    assert "by ines: leaked in a CI log" in body
    assert 'action="' + revoke_url(token) not in body  # nothing left to revoke


# --- revoking -------------------------------------------------------------------------------------------


def test_infosec_revokes_a_token_with_a_reason(people: People, service_account: ServiceAccount) -> None:
    # given
    issued = issue(people.requester, service_account)
    client, csrf = browser(people.infosec)
    # when
    response = client.post(revoke_url(issued.token), {"reason": "leaked in a CI log", "csrfmiddlewaretoken": csrf},
                           follow=True)
    # then
    assert response.redirect_chain == [(detail_url(), 302)]
    assert messages_of(response) == [
        f"Token ci (mlg_{issued.token.prefix}_…) of fraud-pipeline is revoked; it is refused from now on."]
    token = ApiToken.objects.get()
    assert (token.revoked_by, token.revoke_reason) == (people.infosec, "leaked in a CI log")
    [entry] = ledger("access.api_token_revoked")
    assert entry["reason"] == "leaked in a CI log" and entry["prefix"] == token.prefix
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    assert api.get("/api/v1/whoami").status_code == 401


def test_the_owner_revokes_and_comes_back_to_the_page_they_were_on(people: People,
                                                                    service_account: ServiceAccount) -> None:
    token = issue(people.requester, service_account).token
    response = client_for(people.requester).post(revoke_url(token), {"reason": "rotated", "next": LIST + "?page=1"})
    assert response.status_code == 302 and response["Location"] == LIST + "?page=1"
    assert ApiToken.objects.get().revoked_by == people.requester


@pytest.mark.parametrize("reason", ["", "   "])
def test_revoking_without_a_reason_is_refused(people: People, service_account: ServiceAccount, reason: str) -> None:
    token = issue(people.requester, service_account).token
    with nothing_written():
        response = client_for(people.requester).post(revoke_url(token), {"reason": reason}, follow=True)
    assert messages_of(response) == ["a reason (1 to 500 characters) is required to revoke a token"]


def test_revoking_a_revoked_token_is_refused(people: People, service_account: ServiceAccount) -> None:
    token = issue(people.requester, service_account).token
    tokens.api_token_revoke(actor=people.requester, token=token, reason="rotated")
    with nothing_written():
        response = client_for(people.infosec).post(revoke_url(token), {"reason": "again"}, follow=True)
    assert messages_of(response) == ["the token is already revoked"]


def test_a_token_of_another_account_is_a_404(people: People, service_account: ServiceAccount) -> None:
    from access.services.service_accounts import service_account_create

    other = service_account_create(actor=people.requester, name="serving", description="")
    token = issue(people.requester, other).token
    url = reverse("console-token-revoke", args=["fraud-pipeline", token.pk])
    with nothing_written():
        assert client_for(people.requester).post(url, {"reason": "x"}).status_code == 404


# --- issuing: refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("form, message", [
    (issue_form(scopes=[]), "No token was issued: scopes must be a non-empty list."),
    (issue_form(scopes=["access:check", "root:all"]),
     f"No token was issued: unknown scope(s): root:all; known: {', '.join(sorted(tokens.SCOPES))}."),
    (issue_form(expires_in_days="0"), "No token was issued: expires_in_days must be a whole number from 1 to 365."),
    (issue_form(expires_in_days="366"), "No token was issued: expires_in_days must be a whole number from 1 to 365."),
    (issue_form(expires_in_days="-5"), "No token was issued: the expiry is a whole number of days from 1 to 365."),
    (issue_form(expires_in_days="1.5"), "No token was issued: the expiry is a whole number of days from 1 to 365."),
    (issue_form(expires_in_days="soon"), "No token was issued: the expiry is a whole number of days from 1 to 365."),
    (issue_form(expires_in_days=""), "No token was issued: the expiry is a whole number of days from 1 to 365."),
    (issue_form(expires_in_days="99999999999999999999"),
     "No token was issued: the expiry is a whole number of days from 1 to 365."),
    (issue_form(name="  "), "No token was issued: a token name is 1 to 100 characters."),
    (issue_form(name="x" * 101), "No token was issued: a token name is 1 to 100 characters."),
])
def test_bad_token_input_is_refused_and_writes_nothing(people: People, service_account: ServiceAccount,
                                                       form: dict[str, Any], message: str) -> None:
    with nothing_written():
        response = client_for(people.requester).post(issue_url(), form, follow=True)
    assert response.redirect_chain == [(detail_url(), 302)]
    assert messages_of(response) == [message]
    assert not TOKEN_RE.search(response.content.decode())


def test_the_expiry_defaults_to_the_apis_default(people: People, service_account: ServiceAccount) -> None:
    form = issue_form()
    del form["expires_in_days"]
    assert client_for(people.requester).post(issue_url(), form).status_code == 200
    token = ApiToken.objects.get()
    assert (token.expires_at - token.created_at).days == tokens.DEFAULT_DAYS


def test_a_disabled_account_gets_no_token(people: People, service_account: ServiceAccount) -> None:
    # given: the admin disabled it (setup, not under test)
    ServiceAccount.objects.filter(pk=service_account.pk).update(disabled_at=timezone.now())
    # when
    with nothing_written():
        response = client_for(people.requester).post(issue_url(), issue_form(), follow=True)
    # then
    assert messages_of(response) == ["No token was issued: service account 'fraud-pipeline' is disabled."]
    assert "The account is disabled: no token can be issued to it." in response.content.decode()


# --- personas -------------------------------------------------------------------------------------------


def test_infosec_sees_every_account_and_may_issue(people: People, service_account: ServiceAccount) -> None:
    client = client_for(people.infosec)
    assert [a.name for a in client.get(LIST).context["page"].object_list] == ["fraud-pipeline"]
    page = client.get(detail_url())
    assert page.context["may_issue"] is True
    response = client.post(issue_url(), issue_form(scopes=["ledger:read"]))
    assert response.status_code == 200 and TOKEN_RE.search(response.content.decode())
    assert ApiToken.objects.get().created_by == people.infosec


def test_an_auditor_reads_but_cannot_issue_nor_revoke(people: People, service_account: ServiceAccount) -> None:
    # given
    token = issue(people.requester, service_account).token
    client = client_for(people.auditor)
    # when / then: read-only pages, without forms
    assert [a.name for a in client.get(LIST).context["page"].object_list] == ["fraud-pipeline"]
    assert "New service account" not in client.get(LIST).content.decode()
    page = client.get(detail_url())
    body = page.content.decode()
    assert page.status_code == 200 and f"mlg_{token.prefix}_…" in body
    assert issue_url() not in body and revoke_url(token) not in body
    # and the actions are refused by the services
    with nothing_written():
        issued = client.post(issue_url(), issue_form(), follow=True)
        revoked = client.post(revoke_url(token), {"reason": "audit finding"}, follow=True)
        created = client.post(CREATE, {"name": "auditor-bot"}, follow=True)
    assert messages_of(issued) == ["No token was issued: only the service account's owner or InfoSec may issue its "
                                   "tokens."]
    assert messages_of(revoked) == ["only the service account's owner or InfoSec may revoke its tokens"]
    assert messages_of(created) == ["No service account was created: only InfoSec or a model-owner may create "
                                    "service accounts."]


@pytest.mark.parametrize("who", ["outsider", "owner", "steward"])
def test_someone_elses_account_is_a_404_and_nothing_is_written(people: People, service_account: ServiceAccount,
                                                                who: str) -> None:
    # given: olga is a model owner too, but not this account's; sam a steward; otto has no role
    token = issue(people.requester, service_account).token
    client = client_for(getattr(people, who))
    # then
    assert client.get(detail_url()).status_code == 404
    assert list(client.get(LIST).context["page"].object_list) == []
    assert "fraud-pipeline" not in client.get(LIST).content.decode()
    with nothing_written():
        assert client.post(issue_url(), issue_form()).status_code == 404
        assert client.post(revoke_url(token), {"reason": "mine now"}).status_code == 404


@pytest.mark.parametrize("who", ["outsider", "steward"])
def test_people_without_the_role_cannot_create_an_account(people: People, who: str) -> None:
    client = client_for(getattr(people, who))
    assert "New service account" not in client.get(LIST).content.decode()
    with nothing_written():
        response = client.post(CREATE, {"name": "sneaky", "description": ""}, follow=True)
    assert messages_of(response) == ["No service account was created: only InfoSec or a model-owner may create "
                                     "service accounts."]


@pytest.mark.parametrize("form, message", [
    ({"name": "bad name!"}, "a service account name is letters, digits, '-' and '_'"),
    ({"name": ""}, "a service account name is letters, digits, '-' and '_'"),
    ({"name": "ok", "description": "x" * 301}, "the description is longer than 300 characters"),
    ({"name": "fraud-pipeline"}, "a service account or user named 'fraud-pipeline' already exists"),
])
def test_bad_account_input_is_refused(people: People, service_account: ServiceAccount, form: dict[str, str],
                                      message: str) -> None:
    with nothing_written():
        response = client_for(people.owner).post(CREATE, form, follow=True)
    assert response.redirect_chain == [(LIST, 302)]
    assert messages_of(response) == [f"No service account was created: {message}."]


def test_anonymous_visitors_are_sent_to_sign_in(people: People, service_account: ServiceAccount) -> None:
    for url in (LIST, detail_url()):
        response = client_for(None).get(url)
        assert response.status_code == 302 and "/console/login/" in response["Location"]
    with nothing_written():
        assert client_for(None).post(issue_url(), issue_form()).status_code == 302


# --- HTTP rules -----------------------------------------------------------------------------------------


def test_the_actions_are_post_only(people: People, service_account: ServiceAccount) -> None:
    token = issue(people.requester, service_account).token
    client = client_for(people.requester)
    with nothing_written():
        for url in (CREATE, issue_url(), revoke_url(token)):
            assert client.get(url).status_code == 405, url
    assert client.post(LIST).status_code == 405
    assert client.post(detail_url()).status_code == 405


def test_the_actions_need_a_csrf_token(people: People, service_account: ServiceAccount) -> None:
    token = issue(people.requester, service_account).token
    client = client_for(people.requester, csrf=True)
    with nothing_written():
        assert client.post(CREATE, {"name": "other"}).status_code == 403
        assert client.post(issue_url(), issue_form()).status_code == 403
        assert client.post(revoke_url(token), {"reason": "rotated"}).status_code == 403


def test_the_forms_carry_a_working_csrf_token(people: People, service_account: ServiceAccount) -> None:
    token = issue(people.requester, service_account).token
    client, csrf = browser(people.requester)
    assert client.post(revoke_url(token), {"reason": "rotated", "csrfmiddlewaretoken": csrf}).status_code == 302
    assert ApiToken.objects.get().revoked_at is not None


# --- cost -----------------------------------------------------------------------------------------------


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_the_list_costs_the_same_with_more_accounts_and_tokens(people: People,
                                                                service_account: ServiceAccount) -> None:
    from access.services.service_accounts import service_account_create

    client = client_for(people.infosec)
    issue(people.requester, service_account)
    few = _queries(client, LIST)
    for i in range(6):
        account = service_account_create(actor=people.owner, name=f"pipeline-{i}", description=f"job {i}")
        for _ in range(3):
            issue(people.owner, account)
    assert _queries(client_for(people.infosec), LIST) == few
    assert few <= 8


def test_the_account_page_costs_the_same_with_more_tokens(people: People, service_account: ServiceAccount) -> None:
    owner = make_user("tess", "infosec")
    issue(people.requester, service_account)
    few = _queries(client_for(people.requester), detail_url())
    for i in range(8):
        token = issue(people.requester, service_account, name=f"t{i}").token
        if i % 2:
            tokens.api_token_revoke(actor=owner, token=token, reason="rotated")
    assert _queries(client_for(people.requester), detail_url()) == few
    assert few <= 8
