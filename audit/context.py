"""The request id: one per HTTP request or task, in every ledger entry written under it.

A client may send its own ``X-Request-ID`` (a short token of letters, digits and
``-._:``); anything else is replaced by a fresh UUID so a header can never smuggle
text into logs or the ledger. ``web.middleware.RequestIdMiddleware`` binds it for each HTTP
request; the id lives in a context variable, so services and
``audit.ledger.record`` see it without it being threaded through every call.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

HEADER = "X-Request-ID"
_VALID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")
_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _current.get()


def new_request_id(candidate: str | None = None) -> str:
    if candidate and _VALID.match(candidate):
        return candidate
    return uuid.uuid4().hex


@contextmanager
def request_id_bound(request_id: str | None) -> Iterator[None]:
    """Bind a request id for the block (Celery tasks carry their caller's id this way)."""
    # Validated like a header: a malformed id would make every ledger write in the block fail.
    token = _current.set(new_request_id(request_id) if request_id is not None else None)
    try:
        yield
    finally:
        _current.reset(token)


# --- How the person behind the current request signed in ----------------------------------------------
# Bound per HTTP request by web.middleware.AuthenticationContextMiddleware from the session
# (access.authn.from_session); None in commands, Celery tasks and API-token requests. The ledger only
# carries it; what counts as multi-factor and which actions need it is the access domain's rule
# (access.authn), answered to the ledger through audit.policy.


@dataclass(frozen=True)
class Authentication:
    """One interactive sign-in: ``method`` is "oidc" or "password"; ``auth_time`` the Unix time the person
    last proved who they are (the ID token's ``auth_time`` for OIDC, the login for a password); ``mfa``
    whether that proof used a second factor (decided by ``access.authn.mfa_satisfied`` from ``amr`` and
    ``acr`` when it was stored, never from anything the browser sends)."""

    method: str
    auth_time: int
    mfa: bool
    amr: tuple[str, ...] = ()
    acr: str = ""


_authentication: ContextVar[Authentication | None] = ContextVar("authentication", default=None)


def current_authentication() -> Authentication | None:
    return _authentication.get()


@contextmanager
def authentication_bound(authentication: Authentication | None) -> Iterator[None]:
    token = _authentication.set(authentication)
    try:
        yield
    finally:
        _authentication.reset(token)
