"""The test OpenID provider itself (tests/idp, ``oidc_provider``): what the console's SSO tests rely on.

Driven over real HTTP with urllib, as mozilla-django-oidc and a browser would: discovery, JWKS, the
code flow with PKCE and the password/one-time-code pages, the token exchange with
``client_secret_post``, the ID token's signature checked with PyJWT (what mozilla-django-oidc uses)
against the published JWKS, and the refusals (wrong password or code, no PKCE, foreign redirect URI).
"""
from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import jwt
import pytest
from django.core.exceptions import SuspiciousOperation
from django.test import RequestFactory
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from access import roles
from tests.identity.oidc_helpers import (
    CALLBACK,
    Authorization,
    get_json,
    sign_in_and_get_claims,
    verified_claims,
)
from tests.identity_provider import (
    ACR_2FA,
    ACR_PASSWORD,
    OTP,
    ROLE_GROUPS,
    ROLE_MAP,
    UNMAPPED_GROUP,
    IdentityProvider,
    IdpBrowser,
    SignInRefused,
    persona_accounts,
)


def test_discovery_describes_the_provider(oidc_provider: IdentityProvider) -> None:
    discovery = get_json(f"{oidc_provider.issuer}/.well-known/openid-configuration")
    assert discovery["issuer"] == oidc_provider.issuer
    assert oidc_provider.issuer.startswith("http://127.0.0.1:")
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert discovery["id_token_signing_alg_values_supported"] == ["RS256"]
    assert set(discovery["acr_values_supported"]) == {ACR_PASSWORD, ACR_2FA}
    assert "client_secret_post" in discovery["token_endpoint_auth_methods_supported"]
    assert {"groups", "amr", "acr", "auth_time", "email", "name", "preferred_username"} <= set(
        discovery["claims_supported"])
    for endpoint in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                     "end_session_endpoint"):
        assert discovery[endpoint].startswith(oidc_provider.issuer + "/"), endpoint


def test_jwks_publishes_one_rs256_public_key_and_nothing_private(oidc_provider: IdentityProvider) -> None:
    (key,) = get_json(oidc_provider.jwks_endpoint)["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig" and key["kid"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key), "private key material published"


def test_settings_point_the_console_at_the_provider(oidc_provider: IdentityProvider) -> None:
    settings = oidc_provider.settings()
    assert settings["OIDC_OP_ISSUER"] == oidc_provider.issuer
    assert settings["OIDC_OP_JWKS_ENDPOINT"] == oidc_provider.jwks_endpoint
    assert settings["OIDC_OP_LOGOUT_ENDPOINT"] == oidc_provider.end_session_endpoint
    assert settings["OIDC_ROLE_MAP"]["ml-approvers"] == "approver"
    assert settings["OIDC_ROLE_MAP"]["sec-team"] == "infosec"
    env = oidc_provider.env()
    assert json.loads(env["OIDC_ROLE_MAP"]) == ROLE_MAP
    assert env["OIDC_USE_PKCE"] == "1" and env["OIDC_RP_SIGN_ALGO"] == "RS256"
    assert all(isinstance(value, str) for value in env.values())


def test_every_role_has_an_idp_group_and_the_personas_have_theirs() -> None:
    assert set(ROLE_GROUPS) == set(roles.ROLES)
    assert set(ROLE_MAP.values()) == set(roles.ROLES)
    accounts = persona_accounts()
    assert accounts["adam"].groups == ("ml-approvers", UNMAPPED_GROUP)
    assert accounts["rita"].groups == ("ml-owners", "fraud-team", UNMAPPED_GROUP)
    assert set(accounts["ds-creator"].groups) >= {"ml-approvers", "model-risk-team", "sec-team", "ml-owners"}
    assert accounts["otto"].groups == (UNMAPPED_GROUP,)
    assert "nora" in accounts


def test_code_flow_with_second_factor_asked_gives_otp_amr_and_groups(oidc_provider: IdentityProvider) -> None:
    before = int(time.time())
    claims = sign_in_and_get_claims(oidc_provider, "adam", otp=True, acr_values=ACR_2FA)
    assert claims["iss"] == oidc_provider.issuer
    assert claims["aud"] == oidc_provider.client_id
    assert claims["sub"] == "adam"
    assert claims["preferred_username"] == "adam"
    assert claims["email"] == "adam@example.test"
    assert claims["name"] == "Adam"
    assert claims["groups"] == ["ml-approvers", UNMAPPED_GROUP]
    assert claims["amr"] == ["pwd", "otp"]
    assert claims["acr"] == ACR_2FA
    assert before - 1 <= claims["auth_time"] <= int(time.time()) + 1


def test_a_tampered_id_token_fails_verification(oidc_provider: IdentityProvider) -> None:
    authorization = Authorization(oidc_provider)
    callback = oidc_provider.browser().sign_in(authorization.url, "otto")
    status, tokens = authorization.exchange(authorization.code_from(callback))
    assert status == 200
    header, payload, signature = tokens["id_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["groups"] = ["sec-team"]  # otto promotes himself
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        verified_claims(oidc_provider, f"{header}.{forged}.{signature}")


def test_password_only_sign_in_has_pwd_amr_and_the_one_factor_acr(oidc_provider: IdentityProvider) -> None:
    claims = sign_in_and_get_claims(oidc_provider, "ines")
    assert claims["amr"] == ["pwd"]
    assert claims["acr"] == ACR_PASSWORD
    assert claims["groups"] == ["sec-team", UNMAPPED_GROUP]


def test_ticking_use_my_second_factor_asks_the_code_without_acr_values(oidc_provider: IdentityProvider) -> None:
    claims = sign_in_and_get_claims(oidc_provider, "mira", otp=True)
    assert claims["amr"] == ["pwd", "otp"]
    assert claims["acr"] == ACR_2FA


def test_the_groups_claim_is_in_the_id_token_with_only_openid_email(oidc_provider: IdentityProvider) -> None:
    # mozilla-django-oidc's default scopes are "openid email"
    claims = sign_in_and_get_claims(oidc_provider, "adam", scope="openid email")
    assert claims["groups"] == ["ml-approvers", UNMAPPED_GROUP]
    assert claims["email"] == "adam@example.test"


def test_a_wrong_password_is_refused_with_the_form_again(oidc_provider: IdentityProvider) -> None:
    authorization = Authorization(oidc_provider)
    with pytest.raises(SignInRefused, match="Wrong username or password"):
        oidc_provider.browser().sign_in(authorization.url, "adam", password="not-" + OTP)
    with pytest.raises(SignInRefused, match="Wrong username or password"):
        oidc_provider.browser().sign_in(Authorization(oidc_provider).url, "nobody-here", password="x")


def test_a_wrong_one_time_code_is_refused_and_the_right_one_then_accepted(oidc_provider: IdentityProvider) -> None:
    authorization = Authorization(oidc_provider, acr_values=ACR_2FA)
    browser = oidc_provider.browser()
    with pytest.raises(SignInRefused, match="Wrong one-time code") as refused:
        browser.sign_in(authorization.url, "adam", otp="000000")
    # the same interaction goes on: the code page again, and the right code finishes it
    action = oidc_provider.issuer + refused.value.page.split('action="', 1)[1].split('"', 1)[0]
    back, _ = browser.follow(action, {"otp": OTP})
    status, tokens = authorization.exchange(authorization.code_from(back))
    assert status == 200
    assert verified_claims(oidc_provider, tokens["id_token"])["amr"] == ["pwd", "otp"]


def test_five_wrong_codes_send_the_person_back_to_the_password(oidc_provider: IdentityProvider) -> None:
    authorization = Authorization(oidc_provider, acr_values=ACR_2FA)
    browser = oidc_provider.browser()
    with pytest.raises(SignInRefused) as refused:
        browser.sign_in(authorization.url, "adam", otp="000000")
    action = oidc_provider.issuer + refused.value.page.split('action="', 1)[1].split('"', 1)[0]
    for wrong in ("000001", "000002", "000003"):
        back, page = browser.follow(action, {"otp": wrong})
        assert back == "" and "Wrong one-time code" in page
    back, page = browser.follow(action, {"otp": "000004"})
    assert back == "" and "Too many wrong codes" in page and 'name="password"' in page
    # the right code no longer finishes this sign-in: the password is asked again
    back, page = browser.follow(action, {"otp": OTP})
    assert back == "" and "Sign in with your password first" in page


def test_second_factor_asked_and_no_code_given_never_redirects_back(oidc_provider: IdentityProvider) -> None:
    with pytest.raises(SignInRefused) as refused:
        oidc_provider.browser().sign_in(Authorization(oidc_provider, acr_values=ACR_2FA).url, "adam")
    assert 'name="otp"' in refused.value.page


def test_step_up_after_a_password_sign_in_asks_again_for_both_factors(oidc_provider: IdentityProvider) -> None:
    browser = oidc_provider.browser()
    first = Authorization(oidc_provider)
    assert browser.sign_in(first.url, "adam")  # a session at the IdP with a password only
    again = Authorization(oidc_provider)
    silent = browser.sign_in(again.url, "adam", password="unused")
    assert again.code_from(silent)  # the IdP session answers silently when nothing more is asked
    step_up = Authorization(oidc_provider, acr_values=ACR_2FA, max_age="0")
    back, page = browser.follow(step_up.url)
    assert back == "" and 'name="password"' in page  # not silently: the sign-in form first
    callback = browser.sign_in(step_up.url, "adam", otp=True)
    status, tokens = step_up.exchange(step_up.code_from(callback))
    assert status == 200
    assert verified_claims(oidc_provider, tokens["id_token"])["acr"] == ACR_2FA


def test_the_token_endpoint_refuses_a_wrong_pkce_verifier_and_a_reused_code(oidc_provider: IdentityProvider) -> None:
    authorization = Authorization(oidc_provider)
    code = authorization.code_from(oidc_provider.browser().sign_in(authorization.url, "adam"))
    status, body = authorization.exchange(code, verifier=secrets.token_urlsafe(48))
    assert status == 400 and body["error"] == "invalid_grant"
    status, body = authorization.exchange(code)
    assert status == 200 and body["id_token"]
    # a code is good for one exchange only
    status, body = authorization.exchange(code)
    assert status == 400 and body["error"] == "invalid_grant"


def test_an_authorization_request_without_pkce_is_refused(oidc_provider: IdentityProvider) -> None:
    authorization = Authorization(oidc_provider, pkce=False)
    back, _ = IdpBrowser(oidc_provider).follow(authorization.url)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back).query))
    assert query["error"] == "invalid_request" and "PKCE" in query["error_description"]
    assert "code" not in query


@pytest.mark.parametrize("redirect_uri", [
    "http://evil.example/console/sso/callback/",
    "http://127.0.0.1:8000/console/sso/callback/evil",
    "http://127.0.0.1:8000/elsewhere/",
    "https://127.0.0.1/console/sso/callback/",
    "http://user@127.0.0.1:8000/console/sso/callback/",
])
def test_a_redirect_uri_not_registered_is_refused_without_redirecting(
        oidc_provider: IdentityProvider, redirect_uri: str) -> None:
    authorization = Authorization(oidc_provider, redirect_uri=redirect_uri)
    status, location, body = IdpBrowser(oidc_provider).request(authorization.url)
    assert status == 400 and location == ""
    assert "redirect_uri did not match" in body


@pytest.mark.parametrize("redirect_uri", [
    "http://127.0.0.1:18699/console/sso/callback/",
    "http://localhost:8000/console/sso/callback/",
    CALLBACK,
])
def test_the_callback_on_any_port_of_a_loopback_or_test_host_is_allowed(
        oidc_provider: IdentityProvider, redirect_uri: str) -> None:
    authorization = Authorization(oidc_provider, redirect_uri=redirect_uri)
    assert authorization.code_from(oidc_provider.browser().sign_in(authorization.url, "olga"))


def test_rp_initiated_logout_ends_the_session_and_returns_to_the_console(oidc_provider: IdentityProvider) -> None:
    browser = oidc_provider.browser()
    authorization = Authorization(oidc_provider)
    status, tokens = authorization.exchange(authorization.code_from(browser.sign_in(authorization.url, "adam")))
    assert status == 200
    logout = oidc_provider.end_session_endpoint + "?" + urllib.parse.urlencode({
        "id_token_hint": tokens["id_token"], "client_id": oidc_provider.client_id,
        "post_logout_redirect_uri": "http://testserver/console/login/", "state": "bye"})
    assert browser.sign_out(logout) == "http://testserver/console/login/?state=bye"
    # the IdP session is gone: the next authorization shows the form again
    back, page = browser.follow(Authorization(oidc_provider).url)
    assert back == "" and 'name="password"' in page


def test_mozilla_django_oidc_exchanges_the_code_verifies_the_token_and_reads_userinfo(
        oidc_provider: IdentityProvider, settings: Any) -> None:
    """The console's OIDC library agrees with the provider as settings() configures it: the token request
    (client_secret_post, PKCE verifier), the RS256 check against the JWKS with the nonce, and userinfo."""
    for name, value in oidc_provider.settings().items():
        setattr(settings, name, value)
    authorization = Authorization(oidc_provider, scope="openid email", acr_values=ACR_2FA)
    code = authorization.code_from(oidc_provider.browser().sign_in(authorization.url, "adam", otp=True))
    backend = OIDCAuthenticationBackend()
    backend.request = RequestFactory().get("/console/sso/callback/")
    tokens = backend.get_token({
        "client_id": backend.OIDC_RP_CLIENT_ID, "client_secret": backend.OIDC_RP_CLIENT_SECRET,
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
        "code_verifier": authorization.verifier})
    claims = backend.verify_token(tokens["id_token"], nonce=authorization.nonce)
    assert claims["amr"] == ["pwd", "otp"] and claims["acr"] == ACR_2FA
    assert claims["groups"] == ["ml-approvers", UNMAPPED_GROUP]
    with pytest.raises(SuspiciousOperation):
        backend.verify_token(tokens["id_token"], nonce="another-nonce")
    userinfo = backend.get_userinfo(tokens["access_token"], tokens["id_token"], claims)
    assert userinfo["sub"] == "adam" and userinfo["email"] == "adam@example.test"
    assert userinfo["groups"] == claims["groups"]
