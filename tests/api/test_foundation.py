"""The API's shared behaviour: token authentication, scopes, request ids, the error format."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from access.models import ApiToken
from access.services.tokens import api_token_authenticate, api_token_revoke
from audit.models import PendingEntry
from tests.api.helpers import problem_of

pytestmark = pytest.mark.django_db


def test_a_token_is_stored_hashed_and_only_its_prefix_is_readable(token_for):
    # given
    client = token_for(["ledger:read"])
    token = ApiToken.objects.get(pk=client.token.pk)
    plaintext = client._credentials["HTTP_AUTHORIZATION"].split()[1]
    # then
    assert plaintext not in (token.digest, token.prefix)
    assert token.prefix in plaintext
    assert api_token_authenticate(plaintext) == token
    assert api_token_authenticate(plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")) is None
    assert PendingEntry.objects.filter(event_type="access.api_token_created").count() == 1
    assert plaintext not in PendingEntry.objects.get(event_type="access.api_token_created").payload_json


def test_expired_and_revoked_tokens_are_refused(token_for, people):
    client = token_for(["ledger:read"])
    plaintext = client._credentials["HTTP_AUTHORIZATION"].split()[1]
    ApiToken.objects.filter(pk=client.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api_token_authenticate(plaintext) is None
    ApiToken.objects.filter(pk=client.token.pk).update(expires_at=timezone.now() + timedelta(days=1))
    assert api_token_authenticate(plaintext) is not None
    api_token_revoke(actor=people.requester, token=client.token, reason="leaked in a CI log")  # the account's owner
    assert api_token_authenticate(plaintext) is None


def test_unknown_api_path_is_a_problem_document(as_user, people):
    response = as_user(people.owner).get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert problem_of(response)["code"] == "not_found"


def test_every_response_carries_a_request_id(as_user, people):
    response = as_user(people.owner).get("/api/v1/no-such-thing", HTTP_X_REQUEST_ID="trace-0123456789")
    assert response["X-Request-ID"] == "trace-0123456789"
    # A header that could smuggle text is replaced, not echoed.
    response = as_user(people.owner).get("/api/v1/no-such-thing", HTTP_X_REQUEST_ID="bad id\nx")
    assert response["X-Request-ID"] != "bad id\nx" and len(response["X-Request-ID"]) == 32


def test_a_bad_bearer_token_is_401_with_a_problem_document(as_user):
    client = as_user(None)
    client.credentials(HTTP_AUTHORIZATION="Bearer mlg_nope_nope")
    response = client.get("/api/v1/whoami")
    assert response.status_code == 401
    assert problem_of(response)["detail"] == "invalid, expired or revoked API token"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_whoami_tells_a_token_its_account_and_scopes(token_for, as_user, people):
    body = token_for(["ledger:read", "events:write"]).get("/api/v1/whoami").json()
    assert body["kind"] == "service_account" and body["service_account"] == "pipeline"
    assert body["scopes"] == ["events:write", "ledger:read"]
    assert as_user(None).get("/api/v1/whoami").status_code in (401, 403)
    assert as_user(people.auditor).get("/api/v1/whoami").json()["roles"] == ["auditor"]


def test_the_schema_is_public_and_lists_whoami(as_user):
    response = as_user(None).get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert "/api/v1/whoami" in response.json()["paths"]
