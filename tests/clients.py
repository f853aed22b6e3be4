"""API clients as a test needs them: a person's session, or a fresh service-account token (fixtures).

Registered for the whole suite by ``pytest_plugins`` in tests/conftest.py. ``token_for(scopes)``
issues a real token to a service account through ``access.services.tokens.api_token_create`` and returns
a client that sends it as a Bearer token.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from rest_framework.test import APIClient

from access.models import ServiceAccount
from access.services.authentication import api_token_address_record
from access.services.service_accounts import service_account_create
from access.services.tokens import api_token_create
from tests.personas import People
from web.api.auth import seen_addresses


@pytest.fixture
def empty_cache() -> None:
    """The cache emptied first: no throttle counts left over from an earlier test."""
    cache.clear()


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
def token_for(people: People) -> Callable[..., APIClient]:
    """``token_for(["events:write"])`` → a client authenticated by a fresh token with those scopes."""
    counter = {"n": 0}

    def make(scopes: list[str], *, account: ServiceAccount | None = None, **kwargs: Any) -> APIClient:
        counter["n"] += 1
        if account is None:
            account = ServiceAccount.objects.filter(name="pipeline").first()
            if account is None:
                # Owned by the requester, not the resources' owner: the owner grants it access in the tests,
                # and nobody may grant their own service account (it counts as them).
                account = service_account_create(actor=people.requester, name="pipeline")
        issued = api_token_create(actor=people.owner if account.owner_id == people.owner.pk else people.infosec,
                                  service_account=account, name=f"t{counter['n']}", scopes=scopes, **kwargs)
        # The test client's address counts as seen: its auth.token_first_use_from_address is written here, in
        # the set-up, not by the first request under test (tests/access/test_authentication_events.py tests it
        # from other addresses).
        api_token_address_record(token=issued.token, origin="127.0.0.1")
        # ... and this process knows it, as it would once that entry committed (the test's transaction never does).
        seen_addresses.add((issued.token.prefix, "127.0.0.1"))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
        client.token = issued.token  # type: ignore[attr-defined]
        client.service_account = account  # type: ignore[attr-defined]
        return client

    return make
