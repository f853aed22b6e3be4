"""Issuing and revoking API tokens from the admin: shown once, audited, owner or InfoSec only."""
from __future__ import annotations

import pytest
from django.test import Client

from access.models import ApiToken
from audit.models import PendingEntry
from tests.access.personas import people, service_account  # noqa: F401

pytestmark = pytest.mark.django_db


def _issue(client: Client, account_pk: int, **data: object) -> object:
    payload = {"action": "issue_token", "_selected_action": [account_pk], "confirm": "yes", **data}
    return client.post("/admin/access/serviceaccount/", payload)


def test_owner_issues_a_token_shown_once_and_stored_hashed(people, service_account):  # noqa: F811
    # given
    client = Client()
    client.force_login(service_account.owner)
    # when
    response = _issue(client, service_account.pk, name="ci", scopes=["events:write"], expires_in_days=30)
    # then
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get(service_account=service_account)
    html = response.content.decode()
    plaintext = html.split('id="token"')[1].split(">")[1].split("<")[0]
    assert plaintext.startswith("mlg_" + token.prefix)
    assert plaintext not in token.digest
    entry = PendingEntry.objects.get(event_type="access.api_token_created")
    assert plaintext not in entry.payload_json
    # Revoking from the token list is audited too.
    response = client.post("/admin/access/apitoken/", {"action": "revoke", "_selected_action": [token.pk],
                                                       "confirm": "yes", "text": "rotated"})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert PendingEntry.objects.filter(event_type="access.api_token_revoked").count() == 1


def test_an_outsider_with_admin_access_cannot_issue_tokens_for_someone_elses_account(people, service_account):  # noqa: F811
    # given: a data steward can open the admin but does not own the account
    client = Client()
    client.force_login(people.steward)
    # when
    response = _issue(client, service_account.pk, name="x", scopes=["events:write"], expires_in_days=30)
    # then
    assert response.status_code in (302, 403)
    assert not ApiToken.objects.exists()
    assert not PendingEntry.objects.filter(event_type="access.api_token_created").exists()


def test_unknown_scope_is_refused_by_the_form(people, service_account):  # noqa: F811
    client = Client()
    client.force_login(service_account.owner)
    response = _issue(client, service_account.pk, name="ci", scopes=["root"], expires_in_days=30)
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not ApiToken.objects.exists()
