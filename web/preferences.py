"""Each person's console preferences: today the time zone the console shows times in (UTC by default).

``preference_update`` is the one way to change them. It writes no ledger entry: a preference changes
how one person's screen renders times, not what anybody may see or do, and every time the ledger and
the exports hold stays UTC. The zone rides in the session (set at sign-in and on change), so pages
cost no extra query; ``TimeZoneMiddleware`` activates it for console requests only (the API keeps
answering UTC whatever the caller's preference).
"""
from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from functools import cache
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from audit.ledger import account_pk
from audit.signals import subject_erased
from web.models import ConsolePreference

DEFAULT_TIME_ZONE = "UTC"
#: The session key holding the viewer's zone name.
SESSION_KEY = "_console_time_zone"


class PreferenceError(ValueError):
    """A refused preference change (nothing was saved)."""


@cache
def time_zones() -> tuple[str, ...]:
    """Every IANA zone name this system knows, sorted (the preference form's choices)."""
    return tuple(sorted(zoneinfo.available_timezones() | {DEFAULT_TIME_ZONE}))


def valid_time_zone(name: str) -> str:
    """``name`` if it is a known IANA zone, else ``PreferenceError`` (never a path ``ZoneInfo`` would open)."""
    name = (name or "").strip()
    if name not in time_zones():
        raise PreferenceError(f"{name[:64]!r} is not a time zone name such as Europe/Paris or UTC")
    return name


def time_zone_of(user: User) -> str:
    pref = ConsolePreference.objects.filter(user=user).values_list("time_zone", flat=True).first()
    return pref or DEFAULT_TIME_ZONE


@transaction.atomic
def preference_update(*, actor: User, user: User, time_zone: str) -> ConsolePreference:
    """Set ``user``'s console time zone. Only the person themself may (``PreferenceError`` otherwise, as for
    an unknown zone); no ledger entry (module docstring)."""
    if actor.pk != user.pk:
        raise PreferenceError("a person changes only their own preferences")
    zone = valid_time_zone(time_zone)
    pref, _ = ConsolePreference.objects.update_or_create(user=user, defaults={"time_zone": zone})
    return pref


def remember(request: HttpRequest, zone: str) -> None:
    """Keep ``zone`` in the request's session for the next pages."""
    request.session[SESSION_KEY] = zone


@receiver(subject_erased, dispatch_uid="web.preferences.erase_with_the_person")
def erase_with_the_person(sender: Any, data_subject: str, **kwargs: Any) -> None:
    """A person's erasure takes their console preferences too (a time zone hints at where they are).

    In the erasing transaction (``audit.signals.subject_erased``): both go, or neither."""
    pk = account_pk(data_subject)
    if pk is not None:
        ConsolePreference.objects.filter(user_id=pk).delete()


@receiver(user_logged_in, dispatch_uid="web.preferences.load_on_login")
def load_on_login(sender: Any, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    """One query at sign-in so that no page needs one."""
    if request is not None and getattr(request, "session", None) is not None:
        zone = time_zone_of(user)
        if zone != DEFAULT_TIME_ZONE:
            remember(request, zone)


class TimeZoneMiddleware:
    """Activates the viewer's zone for the request (not for ``/api/``, whose times stay UTC).

    A session the request did not bring (no cookie) is not loaded; an unknown name in it (a zone
    removed from the system's database) falls back to UTC."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = None
        if not request.path.startswith("/api/") and settings.SESSION_COOKIE_NAME in request.COOKIES:
            name = getattr(request, "session", {}).get(SESSION_KEY)
            if isinstance(name, str) and name in time_zones():
                zone = zoneinfo.ZoneInfo(name)
        if zone is None:
            return self.get_response(request)
        with timezone.override(zone):
            return self.get_response(request)
