"""The request id: one per HTTP request, on every response and in every ledger entry it writes.

A client may send its own ``X-Request-ID`` (a short token of letters, digits and
``-._:``); anything else is replaced by a fresh UUID so a header can never smuggle
text into logs or the ledger. The id lives in a context variable, so services and
``audit.ledger.record`` see it without it being threaded through every call.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

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


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = new_request_id(request.headers.get(HEADER))
        request.request_id = request_id  # type: ignore[attr-defined]
        with request_id_bound(request_id):
            response = self.get_response(request)
        response[HEADER] = request_id
        return response
