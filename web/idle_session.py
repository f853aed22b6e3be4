"""Idle timeout of console (and admin) sessions without a database write on every request.

Django ends a session ``SESSION_COOKIE_AGE`` seconds after it was last *saved*. Saving it on every
request (``SESSION_SAVE_EVERY_REQUEST``) makes that an idle timeout, at the cost of an UPDATE per page
view. This middleware saves a session that is in use only when its last refresh is older than
``refresh_interval()`` (a tenth of the timeout, at most a minute), so an active user stays signed in,
an idle one is signed out between ``timeout - interval`` and ``timeout`` after their last request, and
most requests write nothing.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

REFRESHED_AT = "_idle_refreshed_at"


def refresh_interval() -> int:
    """Seconds between refreshes of a session in use."""
    return max(1, min(60, int(settings.SESSION_COOKIE_AGE) // 10))


@receiver(user_logged_in, dispatch_uid="web.idle_session.stamp_login")
def stamp_login(sender: Any, request: HttpRequest | None, **kwargs: Any) -> None:
    """A new session counts as refreshed when it is created (it is being saved then anyway)."""
    session = getattr(request, "session", None)
    if session is not None:
        session[REFRESHED_AT] = int(time.time())


class IdleSessionMiddleware:
    """Pushes a used, non-empty session's expiry a full ``SESSION_COOKIE_AGE`` ahead, at most once per
    ``refresh_interval()``. Sessions the request never loaded (API tokens, static files) are left alone."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if session is None or not session.accessed or session.is_empty():
            return response
        now = int(time.time())
        last = session.get(REFRESHED_AT)
        if not isinstance(last, int) or now - last >= refresh_interval():
            # Marks the session modified: SessionMiddleware saves it with a fresh expiry.
            session[REFRESHED_AT] = now
        return response
