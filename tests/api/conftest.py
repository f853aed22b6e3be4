"""Shared API test fixtures: personas, service-account tokens, and a client that speaks JSON.

Personas (``people`` from tests/access/personas.py plus an approver) sign in with a
session; ``token_for(scopes)`` issues a real token to a service account through
``access.services.tokens.api_token_create`` and returns a client that sends it as a Bearer token.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from access import roles
from access.models import ServiceAccount
from access.services.tokens import api_token_create
from tests.access.personas import People, make_user, people, res, service_account  # noqa: F401


@pytest.fixture(autouse=True)
def _fresh_throttle_cache() -> None:
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def approver(db: None) -> User:
    return make_user("approver", roles.APPROVER, roles.MODEL_RISK)


def _client_for(user: User | None) -> APIClient:
    client = APIClient(enforce_csrf_checks=False)
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def as_user() -> Callable[[User | None], APIClient]:
    """``as_user(people.owner)`` → a session client; ``as_user(None)`` → anonymous."""
    return _client_for


@pytest.fixture
def token_for(people: People) -> Callable[..., APIClient]:  # noqa: F811
    """``token_for(["events:write"])`` → a client authenticated by a fresh token with those scopes."""
    counter = {"n": 0}

    def make(scopes: list[str], *, account: ServiceAccount | None = None, **kwargs: Any) -> APIClient:
        counter["n"] += 1
        if account is None:
            account = ServiceAccount.objects.filter(name="pipeline").first()
            if account is None:
                from access.services.service_accounts import service_account_create

                # Owned by the requester, not the resources' owner: the owner grants it access in the tests,
                # and nobody may grant their own service account (it counts as them).
                account = service_account_create(actor=people.requester, name="pipeline")
        issued = api_token_create(actor=people.owner if account.owner_id == people.owner.pk else people.infosec,
                                  service_account=account, name=f"t{counter['n']}", scopes=scopes, **kwargs)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
        client.token = issued.token  # type: ignore[attr-defined]
        client.service_account = account  # type: ignore[attr-defined]
        return client

    return make


def problem_of(response: Any) -> dict[str, Any]:
    """The RFC 9457 body of an error response (asserts the format)."""
    assert response["Content-Type"].startswith("application/problem+json"), response["Content-Type"]
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body), body
    assert body["status"] == response.status_code
    return body
