"""How a person signed in, and the rule that some actions need a recent multi-factor sign-in.

Every interactive sign-in stores one :class:`audit.context.Authentication` in the session under
``SESSION_KEY`` (``session_store``): the OIDC callback with the ID token's ``amr``, ``acr`` and
``auth_time``; the local password login with method ``password`` and no second factor. Whether it was
multi-factor is decided here, once, from the configured values (``OIDC_MFA_AMR``, ``OIDC_MFA_ACR``),
never from anything the browser can send later. ``web.middleware.AuthenticationContextMiddleware``
binds it for the request, so services read it with ``audit.context.current_authentication()``.

The rule (``require_recent_mfa``) is asked by the services of the sensitive actions (approvals,
rejections, break-glass, policy changes, grants on restricted data, PII reveal, exports), inside their
transaction and before anything is written. With ``MFA_REQUIRED`` off (the default without SSO) it
allows everything; with it on, a person's action is refused (``StepUpRequired``) unless the current
request carries a multi-factor sign-in not older than ``MFA_MAX_AGE_SECONDS``. A command, a Celery task
or an API token carries no sign-in at all, so with the rule on they cannot do these actions for a person:
that is deliberate (a host shell must not be a way around the second factor).
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from access.client_address import client_address
from access.errors import StepUpRequired
from access.services.authentication import login_success_record
from audit.context import Authentication, current_authentication

SESSION_KEY = "_authn"
METHODS = ("oidc", "password")
# The OIDC backend leaves the ID token's sign-in claims on the user object it returns, under this name
# ({"amr": [...], "acr": "...", "auth_time": int}); ``store_on_login`` moves them into the session.
USER_ATTRIBUTE = "oidc_sign_in"
# How far ahead of this server's clock a sign-in time may be (the identity provider's clock) and still count.
CLOCK_SKEW_SECONDS = 60


def mfa_satisfied(*, amr: Iterable[str], acr: str) -> bool:
    """Whether a sign-in with these ID-token claims used a second factor, by the configured values:
    any ``amr`` value in ``OIDC_MFA_AMR`` (RFC 8176 names: mfa, otp, hwk, swk...) or ``acr`` in
    ``OIDC_MFA_ACR`` (provider-specific, e.g. Okta's ``urn:okta:loa:2fa:any``)."""
    amr_ok = not set(settings.OIDC_MFA_AMR).isdisjoint(amr)
    return amr_ok or (bool(acr) and acr in settings.OIDC_MFA_ACR)


def session_store(
    session: Any, *, method: str, auth_time: int | None = None, amr: Iterable[str] = (), acr: str = ""
) -> Authentication:
    """Record in ``session`` how its person just proved who they are; returns what was stored.

    ``auth_time`` defaults to now. A password sign-in never counts as multi-factor, whatever ``amr``
    says. Call it after ``django.contrib.auth.login`` (which may flush the session).
    """
    if method not in METHODS:
        raise ValueError(f"unknown sign-in method {method!r}")
    amr_t = tuple(str(v) for v in amr)
    acr = str(acr or "")
    authn = Authentication(
        method=method,
        auth_time=int(auth_time if auth_time is not None else time.time()),
        mfa=method == "oidc" and mfa_satisfied(amr=amr_t, acr=acr),
        amr=amr_t,
        acr=acr,
    )
    session[SESSION_KEY] = {"method": authn.method, "auth_time": authn.auth_time, "mfa": authn.mfa,
                            "amr": list(authn.amr), "acr": authn.acr}
    return authn


def from_session(session: Any) -> Authentication | None:
    """The sign-in stored by ``session_store``, or None (no sign-in, or a value this code did not write)."""
    raw = session.get(SESSION_KEY) if session is not None else None
    if not isinstance(raw, Mapping):
        return None
    try:
        return Authentication(method=str(raw["method"]), auth_time=int(raw["auth_time"]), mfa=bool(raw["mfa"]),
                              amr=tuple(str(v) for v in raw.get("amr", ())), acr=str(raw.get("acr", "")))
    except (KeyError, TypeError, ValueError):
        return None


def require_recent_mfa(*, actor: object, action: str, now: float | None = None) -> None:
    """Refuse (``StepUpRequired``, nothing written) a person's ``action`` unless the current request's
    sign-in used a second factor within ``MFA_MAX_AGE_SECONDS``; a no-op with ``MFA_REQUIRED`` off.

    ``action`` completes "… needs a recent multi-factor sign-in" in the message (e.g. "approving a
    promotion"). The refusal says which of the three it is: no interactive sign-in, no second factor,
    or a second factor too long ago.
    """
    if not settings.MFA_REQUIRED:
        return
    authn = current_authentication()
    max_age = int(settings.MFA_MAX_AGE_SECONDS)
    if authn is None:
        raise StepUpRequired(f"{action} needs a recent multi-factor sign-in to the console; "
                             "it cannot be done with an API token, a command or a task")
    if not authn.mfa:
        raise StepUpRequired(f"{action} needs a multi-factor sign-in; this session signed in "
                             f"{'with a password' if authn.method == 'password' else 'without a second factor'}"
                             ": sign in again with your second factor")
    age = int((now if now is not None else time.time()) - authn.auth_time)
    if age < -CLOCK_SKEW_SECONDS:
        # A sign-in time ahead of the clock would stay "recent" for as long as it is ahead: never accepted.
        raise StepUpRequired(f"{action} needs a multi-factor sign-in; this session's sign-in time is in the future "
                             "(a clock out of step?): sign in again with your second factor")
    if age > max_age:
        raise StepUpRequired(f"{action} needs a multi-factor sign-in within the last {max_age // 60} minutes; "
                             f"yours was {age // 60} minutes ago: confirm it's you again")


def step_up_reason(now: float | None = None) -> str | None:
    """Why the sensitive actions would be refused to the current request right now (the message of
    ``require_recent_mfa``), or None when they would not: for pages that say so before the click."""
    try:
        require_recent_mfa(actor=None, action="this", now=now)
    except StepUpRequired as exc:
        return str(exc)
    return None


@receiver(user_logged_in, dispatch_uid="access.authn.store_on_login")
def store_on_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Every sign-in through ``django.contrib.auth.login`` (console, admin, OIDC callback) stores how it
    was made: OIDC when the backend left its claims on the user, a password otherwise; and records
    ``auth.login_succeeded`` (``access.services.authentication.login_success_record``)."""
    session = getattr(request, "session", None)
    if session is None:
        return
    claims = getattr(user, USER_ATTRIBUTE, None)
    if isinstance(claims, Mapping):
        authn = session_store(session, method="oidc", amr=claims.get("amr") or (), acr=claims.get("acr") or "",
                              auth_time=claims.get("auth_time"))
    else:
        authn = session_store(session, method="password")
    # Here, after the store, so that every way in (password form, admin, SSO callback) is recorded once, with
    # what the session now says about it. A login() outside any HTTP request (the test client's force_login
    # builds a bare HttpRequest: no method, no path) lets no client in and is not recorded.
    if not getattr(request, "META", {}).get("REQUEST_METHOD"):
        return
    login_success_record(user=user, authentication=authn, origin=client_address(request))
