"""Relying-party helpers for tests against the test OpenID provider (``oidc_provider``): one
authorization request with its state, nonce and PKCE verifier, the token exchange as mozilla-django-oidc
sends it, and the ID token's verification with PyJWT against the provider's JWKS."""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import jwt

from tests.identity_provider import IdentityProvider

CALLBACK = "http://testserver/console/sso/callback/"


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=20) as response:
        return json.load(response)


class Authorization:
    """One authorization request of a relying party: state, nonce and PKCE verifier."""

    def __init__(self, idp: IdentityProvider, *, redirect_uri: str = CALLBACK, pkce: bool = True,
                 **extra: str) -> None:
        self.idp = idp
        self.redirect_uri = redirect_uri
        self.state = secrets.token_urlsafe(16)
        self.nonce = secrets.token_urlsafe(16)
        self.verifier = secrets.token_urlsafe(48)
        params = {"response_type": "code", "client_id": idp.client_id, "redirect_uri": redirect_uri,
                  "scope": "openid email profile", "state": self.state, "nonce": self.nonce, **extra}
        if pkce:
            challenge = base64.urlsafe_b64encode(hashlib.sha256(self.verifier.encode()).digest()).rstrip(b"=")
            params.update(code_challenge=challenge.decode(), code_challenge_method="S256")
        self.url = f"{idp.authorization_endpoint}?{urllib.parse.urlencode(params)}"

    def code_from(self, callback_url: str) -> str:
        parsed = urllib.parse.urlsplit(callback_url)
        assert f"{parsed.scheme}://{parsed.netloc}{parsed.path}" == self.redirect_uri
        query = dict(urllib.parse.parse_qsl(parsed.query))
        assert query.get("state") == self.state, query
        assert "code" in query, query
        return query["code"]

    def exchange(self, code: str, *, verifier: str | None = None) -> tuple[int, dict[str, Any]]:
        """The token request as mozilla-django-oidc sends it (client_secret_post)."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
                "client_id": self.idp.client_id, "client_secret": self.idp.client_secret,
                "code_verifier": verifier or self.verifier}
        request = urllib.request.Request(self.idp.token_endpoint, data=urllib.parse.urlencode(form).encode())
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)


def verified_claims(idp: IdentityProvider, id_token: str) -> dict[str, Any]:
    """The ID token's claims after its RS256 signature, issuer and audience are checked against the
    IdP's JWKS with PyJWT, as mozilla-django-oidc does."""
    header = jwt.get_unverified_header(id_token)
    assert header["alg"] == "RS256"
    keys = [key for key in get_json(idp.jwks_endpoint)["keys"] if key["kid"] == header["kid"]]
    assert len(keys) == 1
    claims: dict[str, Any] = jwt.decode(id_token, jwt.PyJWK.from_dict(keys[0]).key, algorithms=["RS256"],
                                        audience=idp.client_id, issuer=idp.issuer)
    return claims


def sign_in_and_get_claims(idp: IdentityProvider, username: str, *, otp: bool = False, **extra: str) -> dict[str, Any]:
    authorization = Authorization(idp, **extra)
    callback = idp.browser().sign_in(authorization.url, username, otp=otp)
    status, tokens = authorization.exchange(authorization.code_from(callback))
    assert status == 200, tokens
    claims = verified_claims(idp, tokens["id_token"])
    assert claims["nonce"] == authorization.nonce
    return claims
