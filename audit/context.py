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
