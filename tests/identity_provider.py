"""A real OpenID provider for the suite: ``oidc_provider`` (session-scoped).

It runs tests/idp/server.js -- panva's oidc-provider, OpenID Certified -- under the system Node, with
one confidential client for the console (code flow, PKCE S256 required, ``client_secret_post`` as
mozilla-django-oidc sends by default), a fresh RS256 key per run and its own sign-in pages: a password
form, then a one-time-code page when the client asks for the two-factor acr (``acr_values``) or the
person ticks "Use my second factor". The ID token carries ``groups``, ``amr``, ``acr``, ``auth_time``,
``email``, ``name`` and ``preferred_username``.

The people are the cast of tests/personas.py, by username, each with the IdP groups that map to their
roles (``ROLE_GROUPS``, the inverse of ``OIDC_ROLE_MAP``), password ``IDP_PASSWORD`` and one-time code
``OTP``; plus ``nora``, who has an IdP account and no local user (first sign-in creates her).

Redirect URIs: ``/console/sso/callback/`` (and ``/console/login/`` after logout) on 127.0.0.1,
localhost and Django's ``testserver``, on any port -- a convenience of this test provider only (see
server.js), because the relying party's port is picked at run time.

Registered for the whole suite in tests/conftest.py ``pytest_plugins``. Skips (with the reason) only
when ``node`` is not installed; a failing ``npm ci`` or server is an error, not a skip.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from access import roles
from tests.idp.launch import (
    ACR_2FA,
    ACR_PASSWORD,
    CLIENT_ID,
    IDP_PASSWORD,
    OTP,
    ROLE_GROUPS,
    ROLE_MAP,
    UNMAPPED_GROUP,
    Account,
    IdentityProvider,
    IdpBrowser,
    SignInRefused,
    make_account,
    node_available,
    start,
    stop,
)
from tests.personas import CAST, TEAM

__all__ = ["ACR_2FA", "ACR_PASSWORD", "CLIENT_ID", "IDP_PASSWORD", "OTP", "ROLE_GROUPS", "ROLE_MAP",
           "UNMAPPED_GROUP", "Account", "IdentityProvider", "IdpBrowser", "SignInRefused", "persona_accounts"]


def persona_accounts() -> dict[str, Account]:
    """The cast of tests/personas.py at the IdP, plus ``nora`` (no local user yet, model-owner). The
    requester also has the ordinary ``fraud-team`` group, as in the cast."""
    accounts = {username: make_account(username, role_names, extra_groups=(TEAM,) if attribute == "requester" else ())
                for attribute, (username, role_names) in CAST.items()}
    accounts["nora"] = make_account("nora", (roles.MODEL_OWNER,))
    return accounts


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityProvider]:
    """The suite's running test IdP (one per xdist worker), with the personas as its people."""
    if not node_available():
        pytest.skip("node/npm is not installed: the test OpenID provider (tests/idp, oidc-provider) cannot run")
    idp = start(persona_accounts(), tmp_path_factory.mktemp("idp"))
    try:
        yield idp
    finally:
        stop(idp.process)
