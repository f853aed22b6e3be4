"""How a sign-in is stored in the session and the multi-factor rule that reads it (access/authn.py).

The services' use of the rule (which actions need it, refusals writing nothing) is tested with each
service; this module covers the rule itself and the session value it trusts.
"""
from __future__ import annotations

from typing import Any

import pytest
from django.contrib.sessions.backends.db import SessionStore

from access import authn
from access.errors import StepUpRequired
from audit.context import Authentication, authentication_bound, current_authentication


@pytest.fixture
def mfa_on(settings: Any) -> Any:
    settings.MFA_REQUIRED = True
    settings.MFA_MAX_AGE_SECONDS = 900
    settings.OIDC_MFA_AMR = ["mfa", "otp"]
    settings.OIDC_MFA_ACR = ["urn:example:loa:2fa"]
    return settings


def test_second_factor_is_decided_from_the_configured_amr_or_acr(mfa_on: Any) -> None:
    assert authn.mfa_satisfied(amr=["pwd", "otp"], acr="")
    assert authn.mfa_satisfied(amr=["pwd"], acr="urn:example:loa:2fa")
    assert not authn.mfa_satisfied(amr=["pwd"], acr="urn:example:loa:1")
    assert not authn.mfa_satisfied(amr=[], acr="")


def test_a_password_sign_in_never_counts_as_multi_factor(mfa_on: Any) -> None:
    session = SessionStore()
    stored = authn.session_store(session, method="password", amr=["otp"], acr="urn:example:loa:2fa")
    assert stored.mfa is False
    assert authn.from_session(session) == stored


def test_an_oidc_sign_in_round_trips_through_the_session(mfa_on: Any) -> None:
    session = SessionStore()
    stored = authn.session_store(session, method="oidc", auth_time=1_700_000_000, amr=["pwd", "otp"], acr="x")
    assert stored == Authentication(method="oidc", auth_time=1_700_000_000, mfa=True, amr=("pwd", "otp"), acr="x")
    assert authn.from_session(session) == stored


_FOREIGN = [None, "oidc", {"method": "oidc"}, {"method": "oidc", "auth_time": "soon", "mfa": True}]


@pytest.mark.parametrize("raw", _FOREIGN)
def test_a_session_value_this_code_did_not_write_is_no_sign_in(raw: object) -> None:
    session = SessionStore()
    session[authn.SESSION_KEY] = raw
    assert authn.from_session(session) is None


def test_an_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown sign-in method"):
        authn.session_store(SessionStore(), method="magic-link")


def test_the_rule_allows_everything_when_off(settings: Any) -> None:
    settings.MFA_REQUIRED = False
    assert current_authentication() is None
    authn.require_recent_mfa(actor=object(), action="approving a promotion")


def test_no_interactive_sign_in_is_refused_when_on(mfa_on: Any) -> None:
    with pytest.raises(StepUpRequired, match="API token, a command or a task"):
        authn.require_recent_mfa(actor=object(), action="approving a promotion")


def test_a_sign_in_without_a_second_factor_is_refused(mfa_on: Any) -> None:
    password = Authentication(method="password", auth_time=1_000, mfa=False)
    with authentication_bound(password), pytest.raises(StepUpRequired, match="with a password"):
        authn.require_recent_mfa(actor=object(), action="approving a promotion", now=1_010)
    oidc = Authentication(method="oidc", auth_time=1_000, mfa=False, amr=("pwd",))
    with authentication_bound(oidc), pytest.raises(StepUpRequired, match="without a second factor"):
        authn.require_recent_mfa(actor=object(), action="approving a promotion", now=1_010)


def test_a_second_factor_counts_only_while_recent(mfa_on: Any) -> None:
    signed_in = Authentication(method="oidc", auth_time=1_000, mfa=True, amr=("pwd", "otp"))
    with authentication_bound(signed_in):
        authn.require_recent_mfa(actor=object(), action="approving a promotion", now=1_000 + 900)
        with pytest.raises(StepUpRequired, match="within the last 15 minutes; yours was 15 minutes ago"):
            authn.require_recent_mfa(actor=object(), action="approving a promotion", now=1_000 + 901)
    assert current_authentication() is None
