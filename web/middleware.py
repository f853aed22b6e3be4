"""Binds the request id (``audit.context``) for each HTTP request and returns it as ``X-Request-ID``."""
from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from audit.context import HEADER, new_request_id, request_id_bound


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
