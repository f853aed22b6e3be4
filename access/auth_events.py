"""Receivers that put sign-in failures, lockouts and sign-outs in the ledger (through
``access.services.authentication``); the successful sign-in is recorded by ``access.authn.store_on_login``.

- ``user_login_failed`` (Django, sent by ``authenticate()`` when no backend accepted the credentials):
  ``auth.login_failed`` for a password attempt. Not for an attempt the throttle refused during a lockout
  (``access.backends.LoginThrottleBackend`` marks it): after ``LOGIN_FAILURE_LIMIT`` failures an address or
  a username writes nothing more until the lockout ends, so a flood of attempts cannot flood the ledger.
  Credentials without a password (an SSO callback) are not a password attempt and are not recorded here.
- ``user_locked_out`` (django-axes): ``auth.locked_out``, once per lockout: axes sends the signal on the
  failure that reaches the limit and again on each refused attempt; only the first is recorded.
- ``user_logged_out`` (Django): ``auth.logged_out`` (nothing when there was no signed-in user, or when the
  session is being ended because it expired: ``SESSION_EXPIRED_ATTRIBUTE``).

The credentials Django passes have the password masked already; it is never read here.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_logged_out, user_login_failed
from django.db.models import Max, Sum
from django.dispatch import receiver
from django.utils import timezone

from access.backends import REFUSED_ATTRIBUTE
from access.client_address import client_address
from access.services.authentication import login_failure_record, login_lockout_record, logout_record


def channel_of(request: Any) -> str:
    """Where a sign-in was attempted: the console's form, the admin's, the API's (browsable API login)."""
    path = str(getattr(request, "path", "") or "")
    for prefix, channel in (("/console/", "console"), ("/admin/", "admin"), ("/api/", "api")):
        if path.startswith(prefix):
            return channel
    return "other"


def _cool_off() -> timedelta:
    return timedelta(minutes=int(settings.LOGIN_LOCKOUT_MINUTES))


def lockout_state(
    *, username: str | None, address: str | None, now: datetime | None = None,
) -> tuple[list[str], datetime | None]:
    """(which counters are at the limit: ``username`` and/or ``address``; when the last of them is released,
    or None when neither is locked), from axes' attempts within the lockout window."""
    now = now or timezone.now()
    recent = AccessAttempt.objects.filter(attempt_time__gte=now - _cool_off())
    limit = int(settings.LOGIN_FAILURE_LIMIT)
    scope: list[str] = []
    until: datetime | None = None
    for name, rows in (("username", recent.filter(username=username) if username else None),
                       ("address", recent.filter(ip_address=address) if address else None)):
        if rows is None:
            continue
        totals = rows.aggregate(failures=Sum("failures_since_start"), last=Max("attempt_time"))
        if (totals["failures"] or 0) >= limit and totals["last"] is not None:
            scope.append(name)
            release = totals["last"] + _cool_off()
            until = release if until is None else max(until, release)
    return scope, until


def _username(credentials: Any) -> str | None:
    value = credentials.get("username") if isinstance(credentials, dict) else None
    return value if isinstance(value, str) and value else None


@receiver(user_login_failed, dispatch_uid="access.auth_events.login_failed")
def on_login_failed(sender: Any, credentials: Any = None, request: Any = None, **kwargs: Any) -> None:
    if not isinstance(credentials, dict) or "password" not in credentials:
        return  # not a password attempt (an SSO callback's failure is the SSO code's to report)
    if request is not None and getattr(request, REFUSED_ATTRIBUTE, False):
        return  # refused during a lockout: auth.locked_out stands for it
    username = _username(credentials)
    if username is None:
        return  # an empty form never reaches authenticate(); nothing to attribute
    login_failure_record(username=username, origin=client_address(request) if request is not None else None,
                         channel=channel_of(request))


@receiver(user_locked_out, dispatch_uid="access.auth_events.locked_out")
def on_locked_out(sender: Any, request: Any = None, username: str | None = None, ip_address: str | None = None,
                  **kwargs: Any) -> None:
    if request is None or getattr(request, REFUSED_ATTRIBUTE, False):
        return  # a refused attempt during the lockout, not the failure that caused it
    scope, until = lockout_state(username=username, address=ip_address)
    login_lockout_record(username=username, origin=ip_address, channel=channel_of(request),
                         scope=scope or ["username"], until=until or timezone.now() + _cool_off())


#: Set on the request (True) by code that ends a session because it expired, before it calls ``logout()``:
#: the expiry is its own event (``auth.session_expired``), not a sign-out by the person.
SESSION_EXPIRED_ATTRIBUTE = "session_expired"


@receiver(user_logged_out, dispatch_uid="access.auth_events.logged_out")
def on_logged_out(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    if user is None or not getattr(user, "pk", None):
        return
    if request is not None and getattr(request, SESSION_EXPIRED_ATTRIBUTE, False):
        return
    logout_record(user=user, origin=client_address(request) if request is not None else None)
