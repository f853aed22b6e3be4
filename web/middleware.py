"""Binds the request id (``audit.context``) for each HTTP request and returns it as ``X-Request-ID``."""
from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from access.authn import from_session
from audit.context import HEADER, authentication_bound, new_request_id, request_id_bound


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


class AuthenticationContextMiddleware:
    """Binds how the session's person signed in (``access.authn``) for the request, after Django's
    ``AuthenticationMiddleware``. Requests without a signed-in session (API tokens, anonymous) bind None;
    the session is only read when a user is signed in, so token requests do not load it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        session = getattr(request, "session", None)
        authn = from_session(session) if user is not None and user.is_authenticated else None
        with authentication_bound(authn):
            return self.get_response(request)
