"""The console's password sign-in, the lockout page and the password change (docs/identity.md).

``LOCAL_LOGIN`` off: the sign-in page shows no password form (only SSO) and a password POST is refused
(403) before any credential is looked at; ``access.backends.LocalPasswordBackend`` refuses the same for any
other way to ``authenticate()``. The throttle (django-axes) is configured in settings; its lockout page
is ``lockout_response``, which says when to try again.
"""
from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, update_session_auth_hash
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.views import LoginView, PasswordChangeView
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse, reverse_lazy
from django.utils import timezone

from access.auth_events import lockout_state
from access.client_address import client_address
from access.errors import AccessError
from access.services.authentication import user_password_change
from web.console.base import signed_in_user

LOCAL_LOGIN_OFF = "Password sign-in is turned off here: sign in with single sign-on."


def refuse_password_login(request: HttpRequest, template: str = "console/login.html") -> HttpResponse:
    """The sign-in page again, 403, saying that passwords are not accepted (nothing was checked)."""
    return render(request, template, {"local_login": False, "refused": LOCAL_LOGIN_OFF}, status=403)


class ConsoleLoginView(LoginView):
    """Django's login view, refusing password POSTs while ``LOCAL_LOGIN`` is off."""

    template_name = "console/login.html"
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.LOCAL_LOGIN:
            return refuse_password_login(request)
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(local_login=settings.LOCAL_LOGIN, login_failure_limit=settings.LOGIN_FAILURE_LIMIT,
                       login_lockout_minutes=settings.LOGIN_LOCKOUT_MINUTES)
        return context


def lockout_response(request: HttpRequest, original_response: HttpResponse | None = None,
                     credentials: dict[str, Any] | None = None) -> HttpResponse:
    """axes' ``AXES_LOCKOUT_CALLABLE``: 429 with the time the sign-in opens again (and ``Retry-After``).

    The page is the same whether the username exists or not, and whether the username or the address is
    locked: it says neither, only when to try again."""
    username = (credentials or {}).get("username") or request.POST.get("username") or None
    address = getattr(request, "axes_ip_address", None) or client_address(request)
    _, until = lockout_state(username=username, address=address)
    now = timezone.now()
    until = until or now + timedelta(minutes=int(settings.LOGIN_LOCKOUT_MINUTES))
    minutes = max(1, math.ceil((until - now).total_seconds() / 60))
    response = render(request, "console/locked_out.html", {"until": until, "minutes": minutes},
                      status=settings.AXES_HTTP_RESPONSE_CODE)
    response["Retry-After"] = str(max(1, math.ceil((until - now).total_seconds())))
    return response


class ThrottledPasswordChangeForm(PasswordChangeForm):
    """Django's form, but the current password is checked through ``authenticate()``: a wrong one counts
    towards the lockout and is recorded like any failed sign-in (a stolen session is no free guessing
    oracle). The password itself is set by the service, not by ``save``."""

    def __init__(self, user: Any, *args: Any, request: HttpRequest, **kwargs: Any) -> None:
        self.request = request
        super().__init__(user, *args, **kwargs)

    def clean_old_password(self) -> str:
        old_password: str = self.cleaned_data["old_password"]
        if authenticate(self.request, username=self.user.get_username(), password=old_password) is None:
            raise forms.ValidationError(self.error_messages["password_incorrect"], code="password_incorrect")
        return old_password


class ConsolePasswordChangeView(PasswordChangeView):
    """``/console/password/``: a local account changes its own password (``user_password_change``, recorded
    as ``auth.password_changed``); the session is kept and its key rotated. Accounts signed in through SSO
    have no local password: the page says so."""

    template_name = "console/password_change.html"
    form_class = ThrottledPasswordChangeForm
    success_url = reverse_lazy("console-password-change")

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.user.is_authenticated and (not settings.LOCAL_LOGIN or not request.user.has_usable_password()):
            reason = (LOCAL_LOGIN_OFF if not settings.LOCAL_LOGIN
                      else "Your account signs in through single sign-on: change your password with your identity "
                           "provider.")
            return render(request, self.template_name, {"unavailable": reason, "nav": "preferences"},
                          status=403 if request.method == "POST" else 200)
        return super().dispatch(request, *args, **kwargs)

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "request": self.request}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "nav": "preferences"}

    def form_valid(self, form: Any) -> HttpResponse:
        user = signed_in_user(self.request)
        try:
            user_password_change(actor=user, user=user, old_password=form.cleaned_data["old_password"],
                                 new_password=form.cleaned_data["new_password1"])
        except AccessError as exc:
            form.add_error(None, str(exc))
            return self.render_to_response(self.get_context_data(form=form), status=400)
        # The password hash is part of the session's auth hash: keep this session (rotating its key), end others.
        update_session_auth_hash(self.request, user)
        messages.success(self.request, "Your password was changed.")
        return HttpResponseRedirect(reverse("console-password-change"))

    def form_invalid(self, form: Any) -> HttpResponse:
        return self.render_to_response(self.get_context_data(form=form), status=400)
