"""The test OpenID provider's own pages in a real browser (tests/idp, ``oidc_provider``).

What a person of ``dev.py demo --sso`` and the console's SSO tests go through at the provider: the
sign-in form, "Use my second factor", the one-time-code page, the redirect back to the console's
callback, and the logout confirmation that submits itself. The console's callback is answered by the
test itself (a routed response): this checks the provider's side only.
"""
from __future__ import annotations

import urllib.parse
from typing import Any

from tests.browser.helpers import shot
from tests.identity.oidc_helpers import Authorization, verified_claims
from tests.identity_provider import ACR_2FA, IDP_PASSWORD, OTP, IdentityProvider

CALLBACK_PATH = "/console/sso/callback/"


def _answer_the_callback(page: Any) -> None:
    page.route(f"**{CALLBACK_PATH}**", lambda route: route.fulfill(status=200, body="back at the console"))


def test_sign_in_with_a_second_factor_in_a_browser(page: Any, live_url: str, oidc_provider: IdentityProvider) -> None:
    _answer_the_callback(page)
    authorization = Authorization(oidc_provider, redirect_uri=f"{live_url}{CALLBACK_PATH}")
    page.goto(authorization.url)
    assert page.get_by_role("heading", name="Sign in").is_visible()
    shot(page, "idp-sign-in")
    page.get_by_label("Username").fill("adam")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong username or password."
    page.get_by_label("Password").fill(IDP_PASSWORD)
    page.get_by_label("Use my second factor").check()
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("One-time code").fill(OTP)
    shot(page, "idp-one-time-code")
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(f"{live_url}{CALLBACK_PATH}?*")
    status, tokens = authorization.exchange(authorization.code_from(page.url))
    assert status == 200
    claims = verified_claims(oidc_provider, tokens["id_token"])
    assert claims["amr"] == ["pwd", "otp"] and claims["acr"] == ACR_2FA


def test_logout_at_the_provider_submits_itself_and_returns_to_the_console(
        page: Any, live_url: str, oidc_provider: IdentityProvider) -> None:
    _answer_the_callback(page)
    authorization = Authorization(oidc_provider, redirect_uri=f"{live_url}{CALLBACK_PATH}")
    page.goto(authorization.url)
    page.get_by_label("Username").fill("ines")
    page.get_by_label("Password").fill(IDP_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_url}{CALLBACK_PATH}?*")
    status, tokens = authorization.exchange(authorization.code_from(page.url))
    assert status == 200
    page.goto(oidc_provider.end_session_endpoint + "?" + urllib.parse.urlencode({
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": f"{live_url}/console/login/"}))
    page.wait_for_url(f"{live_url}/console/login/*")
    # signed out at the provider too: a new sign-in shows the form
    page.goto(Authorization(oidc_provider, redirect_uri=f"{live_url}{CALLBACK_PATH}").url)
    assert page.get_by_label("Password").is_visible()
