"""Console (and admin) sessions: idle timeout, absolute lifetime, a new session id when roles change.

Idle timeout without a database write on every request: a session in use is refreshed (``REFRESHED_AT``,
its last-seen clock) only when its last refresh is older than ``refresh_interval()`` (a tenth of
``CONSOLE_IDLE_TIMEOUT_SECONDS``, at most a minute), so an active user stays signed in, an idle one is
signed out between ``timeout - interval`` and ``timeout`` after their last request, and most requests
write nothing.

The idleness and the lifetime (``CONSOLE_SESSION_MAX_AGE_SECONDS`` from the sign-in) are enforced here,
from the session's own clocks (``access.services.sessions``), not by Django's expiry of the row: the row
is kept ``TOMBSTONE_SECONDS`` past the idle timeout (``SESSION_COOKIE_AGE``) so that the next request
presenting an ended session finds it, and ``session_expire`` records ``auth.session_expired`` once and
deletes it; the browser is sent to the sign-in page with a message saying why. The periodic sweep
(``access.tasks.expire_sessions``) does the same for sessions nobody presents again.

Roles are read from the database on every request (``access.roles.role_names``, cached on the request's
user object only), so a removed role takes effect at the next request; when the roles of a signed-in
person differ from those the session last saw, the session id is rotated (``cycle_key``): a session id
captured before a privilege change does not carry the new privileges.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.signals import user_logged_in
from django.contrib.messages.storage import default_storage
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.utils.http import urlencode

from access.roles import role_names
from access.services import sessions

REFRESHED_AT = sessions.LAST_SEEN
SIGNED_IN_AT = sessions.SIGNED_IN_AT
ROLES_SEEN = "_roles_seen"

ENDED_MESSAGES = {
    sessions.IDLE: "You were signed out after {minutes} minutes without activity. Sign in again to continue.",
    sessions.LIFETIME: "Your session reached its maximum length of {hours} hours. Sign in again to continue.",
}


def refresh_interval() -> int:
    """Seconds between refreshes of a session in use."""
    return max(1, min(60, int(settings.CONSOLE_IDLE_TIMEOUT_SECONDS) // 10))


@receiver(user_logged_in, dispatch_uid="web.idle_session.stamp_login")
def stamp_login(sender: Any, request: HttpRequest | None, user: Any = None, **kwargs: Any) -> None:
    """A new session counts as refreshed when it is created (it is being saved then anyway), and its
    lifetime starts. A re-authentication of the same person in the same session (a step-up: Django keeps
    the session's data then) keeps the first sign-in's time: a second factor does not extend a session."""
    session = getattr(request, "session", None)
    if session is None:
        return
    now = int(time.time())
    session[REFRESHED_AT] = now
    if not isinstance(session.get(SIGNED_IN_AT), int):
        session[SIGNED_IN_AT] = now
    if user is not None:
        session[ROLES_SEEN] = _roles_digest(user)


def _roles_digest(user: Any) -> str:
    return hashlib.sha256("\n".join(sorted(role_names(user))).encode()).hexdigest()[:16]


def _sign_in_again(request: HttpRequest, why: sessions.Ended) -> HttpResponse:
    """To the sign-in page (the admin's for the admin), back to this page afterwards, saying why."""
    back = request.get_full_path() if request.method in ("GET", "HEAD") else "/console/"
    try:
        target = reverse("admin:login") if request.path.startswith("/admin/") else reverse("console-login")
    except NoReverseMatch:
        target = reverse("console-login")
    response = HttpResponseRedirect(f"{target}?{urlencode({'next': back})}")
    # The message framework's middleware comes after this one and does not see a response answered
    # here: its storage is used directly and written onto this response.
    storage = default_storage(request)
    storage.add(messages.INFO, ENDED_MESSAGES[why.reason].format(
        minutes=int(settings.CONSOLE_IDLE_TIMEOUT_SECONDS) // 60,
        hours=int(settings.CONSOLE_SESSION_MAX_AGE_SECONDS) // 3600))
    storage.update(response)
    return response


class IdleSessionMiddleware:
    """Before the view: ends (and records) a signed-in session past its idle timeout or lifetime, and
    rotates its id when its person's roles changed. After it: pushes a used, non-empty session's expiry
    ahead, at most once per ``refresh_interval()``. Requests without a session cookie (API tokens, static
    files) are left alone: their session is never loaded."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = getattr(request, "session", None)
        if session is not None and settings.SESSION_COOKIE_NAME in request.COOKIES:
            user_id = sessions.signed_in_user_id(session)
            if user_id is not None:
                why = sessions.ended(session)
                if why is not None:
                    return self._end(request, user_id, why)
                self._rotate_on_role_change(request)
        response = self.get_response(request)
        if session is None or not session.accessed or session.is_empty():
            return response
        now = int(time.time())
        last = session.get(REFRESHED_AT)
        if not isinstance(last, int) or now - last >= refresh_interval():
            # Marks the session modified: SessionMiddleware saves it with a fresh expiry.
            session[REFRESHED_AT] = now
        return response

    def _end(self, request: HttpRequest, user_id: int, why: sessions.Ended) -> HttpResponse:
        session = request.session
        key = session.session_key
        if key:
            sessions.session_expire(session_key=key, user_id=user_id, why=why,
                                    method=sessions.sign_in_method(session))
        # Not django.contrib.auth.logout: nobody signed out (no auth.logged_out); the row is already gone.
        session.flush()
        request.user = AnonymousUser()
        if request.path.startswith("/api/"):
            # The API answers an unauthenticated request itself (401/403 problem).
            response = self.get_response(request)
            return response
        return _sign_in_again(request, why)

    def _rotate_on_role_change(self, request: HttpRequest) -> None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return
        session = request.session
        digest = _roles_digest(user)
        seen = session.get(ROLES_SEEN)
        if seen == digest:
            return
        if seen is not None:
            # A privilege change while signed in: a new session id, the data (and the sign-in) kept.
            session.cycle_key()
        session[ROLES_SEEN] = digest
