"""Console sessions end by idleness and by lifetime, and each end is on the record (``auth.session_expired``).

Two clocks, both kept in the server-side session (the browser holds only its key, so neither can be set
by a client):

- ``LAST_SEEN`` (``web.idle_session.REFRESHED_AT``): refreshed by ``web.idle_session`` at most once per
  ``refresh_interval()``; a session unused for ``CONSOLE_IDLE_TIMEOUT_SECONDS`` has ended ("idle").
- ``SIGNED_IN_AT``: set when the session's person signs in (``stamp_sign_in``), kept by a re-authentication
  of the same person in the same session (step-up), so a second factor does not extend the session's life;
  ``CONSOLE_SESSION_MAX_AGE_SECONDS`` after it the session has ended ("lifetime"), however active.

The database row of a session outlives its idle timeout (``SESSION_COOKIE_AGE`` is the idle timeout plus
``TOMBSTONE_SECONDS``) so that the end can be noticed, recorded and the row deleted by whichever comes
first: the next request presenting the session (``web.idle_session.SessionLifetimeMiddleware``) or the
periodic sweep (``sessions_expire_sweep`` from ``access.tasks.expire_sessions``). ``session_expire`` records
the end only when it is the one that deletes the row, in the same transaction: exactly one entry per
session, however many requests and sweeps race for it.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import transaction

from audit.canonical import format_timestamp
from audit.ledger import Actor, Subject, record

SIGNED_IN_AT = "_signed_in_at"
LAST_SEEN = "_idle_refreshed_at"  # web.idle_session.REFRESHED_AT: one clock, written in one place
USER_KEY = "_auth_user_id"  # django.contrib.auth's
AUTHN_KEY = "_authn"  # access.authn.SESSION_KEY (not imported: authn imports nothing of this)
IDLE = "idle"
LIFETIME = "lifetime"
REASONS = (IDLE, LIFETIME)
SYSTEM = Actor.system("sessions")
SWEEP_BATCH = 500


@dataclass(frozen=True)
class Ended:
    """Why a session has ended, and its clocks (Unix seconds; None when the session never had one)."""

    reason: str
    signed_in_at: int | None
    last_seen_at: int | None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def ended(data: Any, *, now: float | None = None) -> Ended | None:
    """Whether the session whose data is ``data`` (a session, or its decoded dict) has ended, and why;
    None while it may go on.

    The lifetime wins over idleness (it is the harder rule). A session without ``SIGNED_IN_AT`` (made
    before this rule) counts from its last refresh."""
    now = time.time() if now is None else now
    signed_in = _int(data.get(SIGNED_IN_AT))
    last_seen = _int(data.get(LAST_SEEN))
    start = signed_in if signed_in is not None else last_seen
    if start is not None and now - start >= int(settings.CONSOLE_SESSION_MAX_AGE_SECONDS):
        return Ended(LIFETIME, signed_in, last_seen)
    seen = last_seen if last_seen is not None else signed_in
    if seen is not None and now - seen >= int(settings.CONSOLE_IDLE_TIMEOUT_SECONDS):
        return Ended(IDLE, signed_in, last_seen)
    return None


def _when(seconds: int | None) -> str | None:
    return format_timestamp(datetime.fromtimestamp(seconds, tz=UTC)) if seconds is not None else None


def _ledger_key(session_key: str) -> str:
    # The session key is a credential: only a digest of it reaches the ledger's idempotency index.
    return "auth.session_expired:" + hashlib.sha256(session_key.encode()).hexdigest()[:40]


@transaction.atomic
def session_expire(*, session_key: str, user_id: int, why: Ended, method: str | None = None) -> bool:
    """End the session ``session_key`` of user ``user_id`` for ``why`` and record it (``auth.session_expired``).

    Deletes the session's row; the entry is written only by the call that deleted it (a concurrent
    request or sweep finds nothing left and records nothing). Returns whether this call ended it."""
    if why.reason not in REASONS:
        raise ValueError(f"a session ends by {' or '.join(REASONS)}, not {why.reason!r}")
    deleted, _ = Session.objects.filter(session_key=session_key).delete()
    if not deleted:
        return False
    record(
        event_type="auth.session_expired",
        actor=SYSTEM,
        subject=Subject("user", str(user_id)),
        payload={"reason": why.reason, "signed_in_at": _when(why.signed_in_at),
                 "last_seen_at": _when(why.last_seen_at), "method": method},
        idempotency_key=_ledger_key(session_key),
    )
    return True


def signed_in_user_id(data: Any) -> int | None:
    """The id of the person signed in to the session with ``data``; None for nobody."""
    try:
        return int(data[USER_KEY])
    except (KeyError, TypeError, ValueError):
        return None


def sign_in_method(data: Any) -> str | None:
    """How the session's person signed in (``access.authn``), when it says."""
    authn = data.get(AUTHN_KEY)
    method = authn.get("method") if isinstance(authn, Mapping) else None
    return str(method) if method else None


def sessions_expire_sweep(*, now: float | None = None, limit: int = SWEEP_BATCH) -> int:
    """End and record every signed-in session past its idle timeout or its lifetime, ``limit`` at most per
    call; returns how many this call ended. Idempotent (an ended session's row is gone). Sessions of
    nobody (anonymous, e.g. a CSRF cookie's) are left to Django's own expiry."""
    now = time.time() if now is None else now
    done = 0
    store = Session.objects.order_by("expire_date").only("session_key", "session_data", "expire_date")
    for session in store.iterator(chunk_size=200):
        data = session.get_decoded()
        user_id = signed_in_user_id(data)
        if user_id is None:
            continue
        why = ended(data, now=now)
        if why is None:
            continue
        if session_expire(session_key=session.session_key, user_id=user_id, why=why, method=sign_in_method(data)):
            done += 1
            if done >= limit:
                break
    return done
