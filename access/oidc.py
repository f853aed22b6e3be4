"""The OpenID Connect sign-in backend (mozilla-django-oidc), tightened for this product (docs/identity.md).

What the library does: the authorization code exchange (with the PKCE verifier), the ID token's
signature against the provider's JWKS (``OIDC_RP_SIGN_ALGO``, asymmetric only), its ``exp`` and the
``nonce`` kept with the ``state`` in the session. What this subclass adds:

* the ID token's ``iss`` must be ``OIDC_OP_ISSUER`` and its ``aud`` must name ``OIDC_RP_CLIENT_ID`` (with
  ``azp`` the client when there are several audiences); ``exp``, ``iat`` and ``sub`` are required
  (the library checks neither issuer nor audience);
* identity, groups and the sign-in claims (``amr``, ``acr``, ``auth_time``) are read from the verified ID
  token only, never from userinfo (unsigned, and a provider may let users edit it); userinfo, when
  configured, gives the profile of a new account and must name the same ``sub``;
* the account is found by ``(iss, sub)`` through ``access.services.sso.external_identity_sign_in``, never by
  email; the roles of the groups claim are synchronised there;
* it answers only the SSO callback (``oidc_callback=True``), so a password form cannot make it talk
  to the provider; and it hands back no disabled account, not even for an existing session.

The user it returns carries ``oidc_sign_in`` (``access.authn.USER_ATTRIBUTE``), ``oidc_id_token`` (for
logout) and ``oidc_roles_changed``.
"""
from __future__ import annotations

import logging
from typing import Any

import jwt
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import SuspiciousOperation
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from access.authn import USER_ATTRIBUTE
from access.services.sso import SignInRefused, external_identity_sign_in, sso_enabled

logger = logging.getLogger(__name__)


def groups_from_claims(claims: dict[str, Any]) -> list[str]:
    """The groups the verified ID token carries under ``OIDC_GROUPS_CLAIM`` (absent: none).

    A provider that had too many groups to put in the token says so with ``_claim_names`` (Entra ID's
    "overage"): refused rather than read as "no groups", which would strip every managed role.
    """
    name = settings.OIDC_GROUPS_CLAIM
    value = claims.get(name)
    if value is None:
        if isinstance(claims.get("_claim_names"), dict) and name in claims["_claim_names"]:
            raise SignInRefused(f"the provider left the {name} claim out of the ID token (too many groups); "
                                "ask its administrators to send only this application's groups")
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise SignInRefused(f"the provider's {name} claim is not a list of group names")


def sign_in_claims(claims: dict[str, Any]) -> dict[str, Any]:
    """``{"amr": [...], "acr": "...", "auth_time": int}`` from the verified ID token.

    Without ``auth_time`` the token's ``iat`` stands in (the provider vouched for the person then).
    """
    amr = claims.get("amr")
    amr_list = [str(v) for v in amr] if isinstance(amr, list) else []
    acr = claims.get("acr")
    auth_time = claims.get("auth_time")
    if not isinstance(auth_time, int) or isinstance(auth_time, bool):
        auth_time = int(claims["iat"])
    return {"amr": amr_list, "acr": acr if isinstance(acr, str) else "", "auth_time": auth_time}


class OIDCBackend(OIDCAuthenticationBackend):
    """Sign-in through the configured OpenID provider; see the module docstring for what it checks."""

    def authenticate(self, request: Any, **kwargs: Any) -> Any:
        """Only for the SSO callback view (``oidc_callback=True``), with SSO configured.

        ``oidc_expected_user_id`` (a step-up) refuses anyone but that account, and ``oidc_auth_not_before``
        refuses an authentication older than the step-up request. Raises ``SignInRefused`` with a
        message for the person, ``SuspiciousOperation`` (or an HTTP/JWT error) for an answer that does
        not verify.
        """
        if not kwargs.pop("oidc_callback", False) or not sso_enabled():
            return None
        self._expected_user_id = kwargs.pop("oidc_expected_user_id", None)
        self._auth_not_before = kwargs.pop("oidc_auth_not_before", None)
        return super().authenticate(request, **kwargs)

    def _verify_jws(self, payload: Any, key: Any) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(payload)
        except jwt.PyJWTError:
            raise SuspiciousOperation("the ID token is not a JWS") from None
        if header.get("alg") != self.OIDC_RP_SIGN_ALGO:
            raise SuspiciousOperation(f"the ID token is signed with {header.get('alg')!r}, "
                                      f"not {self.OIDC_RP_SIGN_ALGO}")
        try:
            claims: dict[str, Any] = jwt.decode(
                payload, key, algorithms=[self.OIDC_RP_SIGN_ALGO], audience=self.OIDC_RP_CLIENT_ID,
                issuer=settings.OIDC_OP_ISSUER, leeway=settings.OIDC_CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise SuspiciousOperation(f"the ID token does not verify: {exc}") from None
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.OIDC_RP_CLIENT_ID:
            raise SuspiciousOperation("the ID token has several audiences and another authorized party")
        return claims

    def store_tokens(self, access_token: Any, id_token: Any) -> None:
        """Nothing here: the callback keeps the ID token in the session after login (which may flush it)."""

    def get_or_create_user(self, access_token: Any, id_token: Any, payload: dict[str, Any]) -> Any:
        claims = payload  # the verified ID token (verify_token)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise SignInRefused("the provider's answer names nobody")
        profile: dict[str, Any] = claims
        if self.OIDC_OP_USER_ENDPOINT and access_token:
            info = self.get_userinfo(access_token, id_token, payload)
            # OpenID Connect Core 5.3.2: userinfo about anyone else is to be ignored, so refuse.
            if not isinstance(info, dict) or info.get("sub") != subject:
                raise SuspiciousOperation("userinfo names another subject than the ID token")
            profile = {**claims, **{k: v for k, v in info.items() if k in ("preferred_username", "email", "name")}}
        sign_in = sign_in_claims(claims)
        if self._auth_not_before is not None and (
            "auth_time" not in claims
            or sign_in["auth_time"] + settings.OIDC_CLOCK_SKEW_SECONDS < int(self._auth_not_before)
        ):
            raise SignInRefused("the provider did not ask you to sign in again; nothing changed")
        result = external_identity_sign_in(
            issuer=str(claims["iss"]), subject=subject, groups=groups_from_claims(claims),
            username=_text(profile.get("preferred_username")) or _text(profile.get("email")).split("@")[0],
            email=_text(profile.get("email")) if profile.get("email_verified", True) is not False else "",
            full_name=_text(profile.get("name")), expected_user_id=self._expected_user_id,
        )
        user = result.user
        setattr(user, USER_ATTRIBUTE, sign_in)
        user.oidc_id_token = id_token  # type: ignore[attr-defined]
        user.oidc_roles_changed = result.roles_changed  # type: ignore[attr-defined]
        return user

    def get_user(self, user_id: Any) -> Any:
        # The library's get_user returns inactive users too; Django's refuses them, so a disabled
        # account's open session ends at its next request.
        return ModelBackend.get_user(self, user_id)

    # Permissions come from ModelBackend and the grant backend; this backend only signs people in.
    def get_user_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        return set()

    def get_group_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        return set()

    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        return set()

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return False

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        return False


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""
