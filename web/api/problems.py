"""One error format for the whole API: RFC 9457 problem details.

``{"type", "title", "status", "detail", "code", "errors": [{"field", "message"}], "request_id"}``
served as ``application/problem+json``. Domain refusals (the services' ``ValueError``
subclasses) map by kind: not permitted → 403 (``step_up_required`` when the action needs a recent
multi-factor sign-in, which an API token never carries), wrong state or conflict → 409, anything
else → 400. Every message says what is wrong; nothing internal leaks.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response

from access import errors as access_errors
from audit import errors as audit_errors
from audit import pii
from audit.context import current_request_id
from audit.export.errors import ExportNotPermitted
from audit.ledger import IdempotencyConflict
from governance import errors as governance_errors
from web import outage

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "urn:mlgov:problem:"

_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


def problem(status_code: int, detail: str, *, code: str | None = None,
            errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_BASE + (code or str(status_code)),
        "title": _TITLES.get(status_code, "Error"),
        "status": status_code,
        "detail": detail,
        "code": code or str(status_code),
    }
    if errors:
        body["errors"] = errors
    request_id = current_request_id()
    if request_id:
        body["request_id"] = request_id
    return body


def _flatten(data: Any, prefix: str = "") -> list[dict[str, str]]:
    """DRF's nested ``{field: [messages]}`` as a flat list of ``{"field", "message"}``."""
    out: list[dict[str, str]] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":
                name = prefix
            out.extend(_flatten(value, name))
    elif isinstance(data, list):
        if all(isinstance(v, str) for v in data):
            out.extend({"field": prefix, "message": str(v)} for v in data)
        else:
            for i, value in enumerate(data):
                out.extend(_flatten(value, f"{prefix}[{i}]"))
    else:
        out.append({"field": prefix, "message": str(data)})
    return out


def _domain_status(exc: ValueError) -> tuple[int, str]:
    code = str(getattr(exc, "code", "invalid"))
    if isinstance(exc, access_errors.StepUpRequired | audit_errors.StepUpRequired):
        # Its own code: a client can tell "sign in again with a second factor" from "you may never".
        return status.HTTP_403_FORBIDDEN, "step_up_required"
    if isinstance(exc, governance_errors.NotPermitted | access_errors.NotPermitted | audit_errors.NotPermitted
                  | ExportNotPermitted | pii.PiiAccessDenied):
        return status.HTTP_403_FORBIDDEN, "not_permitted"
    if isinstance(exc, governance_errors.InvalidState | access_errors.InvalidState | audit_errors.InvalidState
                  | governance_errors.Frozen | IdempotencyConflict | pii.AlreadyErased):
        return status.HTTP_409_CONFLICT, code if code != "invalid" else "conflict"
    return status.HTTP_400_BAD_REQUEST, code


def exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER. Unknown exceptions propagate (→ 500 through ``server_error``).

    A dependency outage (``web.outage.dependency_of``) is a 503 ``unavailable`` with ``Retry-After``; a
    read whose database connection was dropped propagates once more, for ``DependencyOutageMiddleware``
    to run it again on a fresh connection."""
    headers: dict[str, str] = {}
    dependency = outage.dependency_of(exc)
    if dependency is not None:
        request = context.get("request")
        django_request = getattr(request, "_request", request)
        if django_request is not None and outage.read_retry_pending(django_request, exc):
            return None
        outage.outage_seen(dependency, exc)
        headers["Retry-After"] = outage.retry_after()
        body = problem(503, outage.detail_for(dependency), code="unavailable")
        body["dependency"] = dependency
    elif isinstance(exc, Http404):
        body = problem(404, str(exc) if str(exc) and "No " not in str(exc) else "not found", code="not_found")
    elif isinstance(exc, PermissionDenied):
        body = problem(403, str(exc) or "you may not do this", code="not_permitted")
    elif isinstance(exc, RequestDataTooBig):
        body = problem(413, "the request body is too large", code="too_large")
    elif isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        summary = "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors[:5])
        body = problem(400, summary or "invalid input", code="invalid", errors=errors)
    elif isinstance(exc, exceptions.APIException):
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(int(exc.wait))
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        detail = exc.detail if isinstance(exc.detail, str) else "; ".join(e["message"] for e in _flatten(exc.detail))
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        body = problem(exc.status_code, str(detail), code=str(code))
    elif isinstance(exc, governance_errors.RegistryUnreachable):
        # A dependency is down, not the request wrong: retry later (the decision was refused, nothing written).
        body = problem(503, str(exc), code="unavailable")
        body["dependency"] = "registry"
        headers["Retry-After"] = outage.retry_after()
    elif isinstance(exc, ValueError) and exc.__class__.__module__.split(".")[0] in ("governance", "access", "audit"):
        status_code, code = _domain_status(exc)
        body = problem(status_code, str(exc), code=code)
    else:
        return None
    response = Response(body, status=body["status"], headers=headers, content_type=CONTENT_TYPE)
    if dependency is not None:
        outage.mark_logged(response)
    return response


# --- Django-level handlers: errors raised before a DRF view runs (URL not found, body too big) -----------


def _wants_problem(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _json(status_code: int, detail: str, code: str) -> JsonResponse:
    return JsonResponse(problem(status_code, detail, code=code), status=status_code, content_type=CONTENT_TYPE)


@csrf_exempt  # it changes nothing; without this a POST to an unknown URL would get the HTML CSRF page
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any other /api/ URL: a problem document even with DEBUG on (Django's debug 404 page is HTML)."""
    return _json(404, f"no API endpoint at {request.path}", "not_found")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> Any:
    if _wants_problem(request):
        if isinstance(exception, RequestDataTooBig):
            return _json(413, "the request body is too large", "too_large")
        detail = "bad request" if not isinstance(exception, SuspiciousOperation) else "the request was refused"
        return _json(400, detail, "bad_request")
    from django.views.defaults import bad_request as default

    return default(request, exception or Exception())


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> Any:
    if _wants_problem(request):
        return _json(404, f"no API endpoint at {request.path}", "not_found")
    from django.views.defaults import page_not_found as default

    return default(request, exception or Http404())


def server_error(request: HttpRequest) -> Any:
    """handler500. Django calls it while handling the exception, so an outage raised outside any view
    (a middleware loading the session or the signed-in user) is still told apart from a bug: 503."""
    exc = sys.exc_info()[1]
    dependency = outage.dependency_of(exc) if exc is not None else None
    if dependency is not None:
        outage.outage_seen(dependency, exc)  # type: ignore[arg-type]
        return outage.unavailable_response(request, dependency)
    if _wants_problem(request):
        return _json(500, "internal error; quote the request id to the operators", "internal")
    from django.views.defaults import server_error as default

    return default(request)
