"""API tokens in the admin: listed read-only without their digest; issued and revoked in the console only."""
from __future__ import annotations

import pytest
from django.test import Client

from access.models import ApiToken
from access.services import tokens
from audit.models import PendingEntry

pytestmark = pytest.mark.django_db


def _client(user: object) -> Client:
    client = Client()
    client.force_login(user)  # type: ignore[arg-type]
    return client


def _issue(client: Client, account_pk: int, **data: object) -> object:
    payload = {"action": "issue_token", "_selected_action": [account_pk], "confirm": "yes", **data}
    return client.post("/admin/access/serviceaccount/", payload)


def test_the_owner_cannot_issue_tokens_in_the_admin(people, service_account):
    # the owner is a model owner: no admin at all; the console's token page is where tokens are issued
    response = _issue(_client(service_account.owner), service_account.pk, name="ci", scopes=["events:write"],
                      expires_in_days=30)
    assert response.status_code == 302  # type: ignore[attr-defined]
    assert not ApiToken.objects.exists()
    assert not PendingEntry.objects.filter(event_type="access.api_token_created").exists()


def test_infosec_finds_no_token_action_in_the_admin(people, service_account):
    client = _client(people.infosec)
    response = _issue(client, service_account.pk, name="ci", scopes=["events:write"], expires_in_days=30)
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert 'id="token"' not in response.content.decode()  # type: ignore[attr-defined]
    assert not ApiToken.objects.exists()
    assert not PendingEntry.objects.filter(event_type="access.api_token_created").exists()


def test_tokens_are_listed_without_digest_and_not_revoked_from_the_admin(people, service_account):
    issued = tokens.api_token_create(actor=service_account.owner, service_account=service_account, name="ci",
                                     scopes=["events:write"], expires_in_days=30)
    token = ApiToken.objects.get()
    client = _client(people.auditor)
    listing = client.get("/admin/access/apitoken/")
    assert listing.status_code == 200 and token.prefix in listing.content.decode()
    page = client.get(f"/admin/access/apitoken/{token.pk}/change/").content.decode()
    assert token.digest not in page and issued.plaintext not in page
    before = PendingEntry.objects.count()
    for user in (people.infosec, people.auditor):
        _client(user).post("/admin/access/apitoken/", {"action": "revoke", "_selected_action": [token.pk],
                                                       "confirm": "yes", "text": "rotated"})
    token.refresh_from_db()
    assert token.revoked_at is None
    assert PendingEntry.objects.count() == before
