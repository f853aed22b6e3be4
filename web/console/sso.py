"""Console sign-in through the OpenID provider, step-up, and logout that ends both sessions (docs/identity.md).

* ``console-sso-login`` starts the authorization code flow (mozilla-django-oidc: ``state``, ``nonce`` and
  the PKCE verifier kept in the session).
* ``console-step-up`` starts one more with ``prompt=login``, ``max_age=0`` and ``acr_values`` =
  ``OIDC_STEP_UP_ACR``; its ``state`` is remembered in the session with the account and ``next``.
* ``console-sso-callback`` answers both. Its ``state`` must be one this session started (used once); the
  backend (``access.oidc``) verifies the ID token and finds the account. A sign-in logs the person in
  (``store_on_login`` keeps the ID token's ``amr``/``acr``/``auth_time``); a step-up must be the same
  person (anyone else is refused and the session is left as it was), stores the new authentication,
  rotates the session key and records ``auth.step_up``. A refusal is a 4xx page that says why.
* ``console-logout`` (POST) ends this session, then the provider's when it has an end-session endpoint
  (``id_token_hint``, back to the login page).
"""
from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import requests
from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from mozilla_django_oidc.views import OIDCAuthenticationRequestView

from access.authn import USER_ATTRIBUTE, session_store
from access.models import ExternalIdentity
from access.services.sso import SignInRefused, sso_enabled, user_step_up_record
from web.console.base import denied, signed_in_user

logger = logging.getLogger(__name__)

ID_TOKEN_KEY = "oidc_id_token"  # noqa: S105 (a session key's name)
STEP_UP_KEY = "oidc_step_up"
_MAX_PENDING_STEP_UPS = 10


def _safe_next(request: HttpRequest, candidate: str | None, default: str) -> str:
    if candidate and url_has_allowed_host_and_scheme(candidate, allowed_hosts={request.get_host()},
                                                     require_https=request.is_secure()):
        return candidate
    return default


class _AuthorizationRequest(OIDCAuthenticationRequestView):
    """The library's authorization request (state, nonce, PKCE), with extra parameters when given."""

    extra: dict[str, str] = {}  # set per view through as_view(extra=...)

    def get_extra_params(self, request: HttpRequest) -> dict[str, str]:
        return {**super().get_extra_params(request), **self.extra}


@require_GET
def sso_login(request: HttpRequest) -> HttpResponse:
    """Redirect to the provider's login page (``?next=`` is kept, validated, for after the callback)."""
    if not sso_enabled():
        raise Http404("single sign-on is not configured")
    return _AuthorizationRequest.as_view()(request)  # type: ignore[no-any-return]


@require_GET
@login_required
def step_up(request: HttpRequest) -> HttpResponse:
    """Sign in again at the provider with a second factor, then back to ``next``.

    Without SSO, or for an account not linked to the provider, a page says why no step-up is available.
    """
    user = signed_in_user(request)
    next_url = _safe_next(request, request.GET.get("next"), settings.LOGIN_REDIRECT_URL)
    linked = sso_enabled() and ExternalIdentity.objects.filter(user=user,
                                                                     issuer=settings.OIDC_OP_ISSUER).exists()
    if not linked:
        return render(request, "console/step_up.html", {"next": next_url}, status=200)
    extra = {"prompt": "login", "max_age": "0"}
    if settings.OIDC_STEP_UP_ACR:
        extra["acr_values"] = settings.OIDC_STEP_UP_ACR
    response = _AuthorizationRequest.as_view(extra=extra)(request)
    state = parse_qs(urlsplit(response["Location"]).query)["state"][0]
    pending = request.session.get(STEP_UP_KEY)
    pending = dict(pending) if isinstance(pending, dict) else {}
    while len(pending) >= _MAX_PENDING_STEP_UPS:
        pending.pop(min(pending, key=lambda s: pending[s]["started_at"]))
    pending[state] = {"user_id": user.pk, "next": next_url, "started_at": int(time.time())}
    request.session[STEP_UP_KEY] = pending
    return response  # type: ignore[no-any-return]


def _refused(request: HttpRequest, message: str, *, status: int, step: dict[str, Any] | None,
             account: Any = None, signal: bool = True) -> HttpResponse:
    if signal:
        # Like a wrong password: Django's user_login_failed, so the failure recording (and throttling) of
        # local sign-ins sees refused SSO answers too. No username unless the account is known.
        credentials = {"method": "oidc", **({"username": account.get_username()} if account is not None else {})}
        user_login_failed.send(sender=__name__, credentials=credentials, request=request)
    if step is not None and request.user.is_authenticated:
        # A step-up that failed leaves the session as it was: the person stays signed in, told why.
        return denied(request, f"Step-up refused: {message}.")
    return render(request, "console/login.html", {
        "sso_error": message, "next": "", "local_login": settings.LOCAL_LOGIN,
        "login_failure_limit": settings.LOGIN_FAILURE_LIMIT, "login_lockout_minutes": settings.LOGIN_LOCKOUT_MINUTES,
    }, status=status)


@require_GET
def sso_callback(request: HttpRequest) -> HttpResponse:
    """The provider's answer to a sign-in or a step-up started by this session (see the module docstring)."""
    if not sso_enabled():
        raise Http404("single sign-on is not configured")
    state = request.GET.get("state") or ""
    states = request.session.get("oidc_states")
    started = states.pop(state, None) if isinstance(states, dict) and state else None
    step_ups = request.session.get(STEP_UP_KEY)
    step = step_ups.pop(state, None) if isinstance(step_ups, dict) and state else None
    if started is not None or step is not None:
        # Used once: a replayed answer finds no state (the nested dicts changed in place).
        request.session["oidc_states"] = states
        request.session[STEP_UP_KEY] = step_ups
    if request.GET.get("error"):
        code = "".join(c for c in request.GET["error"][:60] if c.isalnum() or c in "_-")
        return _refused(request, f"{settings.OIDC_PROVIDER_NAME} did not sign you in ({code})", status=403,
                        step=step)
    if started is None or not request.GET.get("code"):
        return _refused(request, "this sign-in answer does not belong to a sign-in started here, or was already "
                                 "used; start again", status=400, step=step)
    if step is not None and (not request.user.is_authenticated or request.user.pk != step["user_id"]):
        return _refused(request, "the session changed since the step-up started; start again", status=400,
                        step=None)
    try:
        user = auth.authenticate(
            request=request, oidc_callback=True, nonce=started.get("nonce"), code_verifier=started.get("code_verifier"),
            oidc_expected_user_id=step["user_id"] if step else None,
            oidc_auth_not_before=step["started_at"] if step else None,
        )
    except SignInRefused as exc:
        return _refused(request, str(exc), status=403, step=step, account=exc.account)
    except (SuspiciousOperation, requests.RequestException, jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
        logger.warning("SSO sign-in refused: %s: %s", type(exc).__name__, exc)
        return _refused(request, f"the answer of {settings.OIDC_PROVIDER_NAME} could not be verified; start again",
                        status=400, step=step)
    if user is None or not user.is_active:
        # (django.contrib.auth.authenticate already sent user_login_failed)
        return _refused(request, f"{settings.OIDC_PROVIDER_NAME} did not sign you in", status=403, step=step,
                        signal=False)
    if step is not None:
        return _step_up_done(request, user, step)
    auth.login(request, user)  # rotates the session key; store_on_login keeps the ID token's sign-in claims
    request.session[ID_TOKEN_KEY] = getattr(user, "oidc_id_token", "")
    next_url = _safe_next(request, request.session.pop("oidc_login_next", None), settings.LOGIN_REDIRECT_URL)
    return HttpResponseRedirect(next_url)


def _step_up_done(request: HttpRequest, user: Any, step: dict[str, Any]) -> HttpResponse:
    claims = getattr(user, USER_ATTRIBUTE)
    authn = session_store(request.session, method="oidc", amr=claims["amr"], acr=claims["acr"],
                          auth_time=claims["auth_time"])
    # A fresh authentication (and maybe new roles): a new session id, so an id seen before is worth nothing.
    request.session.cycle_key()
    request.session[ID_TOKEN_KEY] = getattr(user, "oidc_id_token", "")
    user_step_up_record(actor=user, amr=authn.amr, acr=authn.acr, mfa=authn.mfa)
    if authn.mfa:
        messages.success(request, "You confirmed it's you with a second factor.")
    else:
        messages.warning(request, f"You signed in again, but {settings.OIDC_PROVIDER_NAME} reported no second "
                                  "factor: actions that need one are still refused.")
    return HttpResponseRedirect(step["next"])


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    """Sign out here, then at the provider when it has an end-session endpoint and this session came from it."""
    id_token = request.session.get(ID_TOKEN_KEY)
    auth.logout(request)
    if sso_enabled() and settings.OIDC_OP_LOGOUT_ENDPOINT and isinstance(id_token, str) and id_token:
        params = {"id_token_hint": id_token, "client_id": settings.OIDC_RP_CLIENT_ID,
                  "post_logout_redirect_uri": request.build_absolute_uri(reverse("console-login"))}
        return HttpResponseRedirect(f"{settings.OIDC_OP_LOGOUT_ENDPOINT}?{urlencode(params)}")
    return HttpResponseRedirect(settings.LOGOUT_REDIRECT_URL)
