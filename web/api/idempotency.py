"""``Idempotency-Key`` on every unsafe API request (POST, PUT, PATCH, DELETE under ``/api/``).

Semantics as Stripe's and the IETF httpapi ``Idempotency-Key`` draft's:

* the key is the caller's, per principal (``token:<id>`` for an API token, ``user:<id>`` for a
  session): another principal sending the same key is a different request altogether;
* same key, same request (method, path with query, SHA-256 of the body): the stored response is
  replayed (status and body, ``Idempotent-Replayed: true``), the view does not run again;
* same key, another request: ``422 idempotency_key_reused``;
* same key while the first request is still running: ``409 idempotency_in_progress`` with
  ``Retry-After`` (PostgreSQL: a transaction-scoped advisory lock per principal and key; SQLite
  serialises writers anyway, so there the second waits and gets the replay);
* a malformed key (empty, over 255 characters, not printable ASCII): ``400 invalid_idempotency_key``.

The view runs inside ``transaction.atomic()`` and its response is stored in that same transaction,
so a crash leaves neither the change nor the record. Only 2xx and 4xx are stored, except the
outcomes that say the request never ran and may succeed later (401, 408, 425, 429); a 5xx (503
included) rolls the whole request back, so a retry runs it afresh. A response marked
``Cache-Control: no-store`` (an API token, shown once) or over ``MAX_KEPT_BYTES`` is recorded without
its body: a retry then gets ``409 idempotency_response_not_kept`` and nothing runs twice.

Records expire after ``IDEMPOTENCY_KEY_TTL_HOURS`` (a key used again after that is a new request) and
are deleted by the beat task ``web.tasks.purge_idempotency_keys``. Without the header nothing
changes: runtime events keep their own ``event_id`` idempotency either way.

Before a stored response is replayed the caller is authenticated exactly as the view would: a
token must still be live, a session must pass the CSRF check; otherwise the request goes to the
view (which refuses it) and nothing is stored.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import Resolver404, resolve
from django.utils import timezone

from access.models import ApiToken
from access.services.tokens import api_token_authenticate
from web import outage
from web.api.problems import CONTENT_TYPE, problem
from web.models import IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_KEY_LENGTH = 255
#: Response bodies larger than this are not kept (no unsafe endpoint answers anything near it).
MAX_KEPT_BYTES = 1024 * 1024
#: Outcomes that say the request was never carried out and may succeed when sent again.
NOT_STORED = frozenset({401, 408, 425, 429})
#: Response headers replayed with the body (the rest belong to the original exchange).
KEPT_HEADERS = ("Location", "Cache-Control")

_PRINTABLE = re.compile(r"[\x20-\x7e]+")


def parse_key(raw: str) -> str | None:
    """The key, or None when malformed. An RFC 8941 string (``"..."``, as in the IETF draft) is unquoted."""
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not value or len(value) > MAX_KEY_LENGTH or not _PRINTABLE.fullmatch(value) or not value.strip():
        return None
    return value


def fingerprint(request: HttpRequest) -> str:
    digest = hashlib.sha256()
    digest.update((request.method or "").upper().encode())
    digest.update(b"\n")
    digest.update(request.get_full_path().encode())
    digest.update(b"\n")
    digest.update(request.body)
    return digest.hexdigest()


def lock_id(principal: str, key: str) -> int:
    """The advisory lock's 64-bit id for this principal's key (a collision only costs a spurious 409)."""
    raw = hashlib.sha256(f"idempotency\0{principal}\0{key}".encode()).digest()[:8]
    return int.from_bytes(raw, "big", signed=True)


class _CsrfCheck(CsrfViewMiddleware):
    """DRF's own way of asking Django's CSRF middleware: the reason of a refusal, or None."""

    def _reject(self, request: HttpRequest, reason: str) -> Any:
        return reason


def principal_of(request: HttpRequest) -> str | None:
    """Who sends this request, authenticated as the API view will (a live token first, else the
    session, which must pass CSRF); None when neither: the view then refuses the request."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    keyword, _, value = header.partition(" ")
    if keyword.lower() == "bearer":
        token = api_token_authenticate(value.strip())
        return f"token:{token.pk}" if token is not None else None
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    check = _CsrfCheck(lambda r: HttpResponse())
    check.process_request(request)
    if check.process_view(request, None, (), {}) is not None:  # type: ignore[arg-type]
        return None
    return f"user:{user.pk}"


def _authenticated_as(request: HttpRequest, principal: str) -> bool:
    """After the view: did it authenticate the caller as the principal the key was looked up for?"""
    auth = getattr(request, "auth", None)
    user = getattr(request, "user", None)
    if principal.startswith("token:"):
        return isinstance(auth, ApiToken) and f"token:{auth.pk}" == principal
    return auth is None and user is not None and user.is_authenticated and f"user:{user.pk}" == principal


def _problem(status: int, detail: str, code: str, retry_after: int | None = None) -> HttpResponse:
    response = JsonResponse(problem(status, detail, code=code), status=status, content_type=CONTENT_TYPE)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def _replay(record: IdempotencyRecord) -> HttpResponse:
    if record.body is None:
        return _problem(
            409,
            f"a request with this {HEADER} already completed with status {record.status} at "
            f"{record.created_at.isoformat()}; its response is not kept (it held a secret shown only once), "
            "so it cannot be replayed and the request was not run again",
            "idempotency_response_not_kept",
        )
    response = HttpResponse(bytes(record.body), status=record.status, content_type=record.content_type or None)
    for name, value in (record.headers or {}).items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


def _store(request: HttpRequest, response: HttpResponse, *, principal: str, key: str, fp: str) -> None:
    kept = not response.streaming and "no-store" not in response.get("Cache-Control", "")
    body = bytes(response.content) if kept else None
    if body is not None and len(body) > MAX_KEPT_BYTES:
        body = None
    now = timezone.now()
    IdempotencyRecord.objects.create(
        principal=principal, key=key, fingerprint=fp, method=(request.method or "").upper(),
        status=response.status_code, content_type=response.get("Content-Type", ""),
        headers={name: response[name] for name in KEPT_HEADERS if name in response and body is not None},
        body=body, created_at=now, expires_at=now + timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS),
    )


class IdempotencyMiddleware:
    """See the module docstring. After the authentication middleware, before the outage middleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw = request.headers.get(HEADER)
        if raw is None or (request.method or "").upper() not in UNSAFE_METHODS or not request.path.startswith("/api/"):
            return self.get_response(request)
        key = parse_key(raw)
        if key is None:
            return _problem(400, f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable ASCII characters",
                            "invalid_idempotency_key")
        try:  # the route name, for the request log and metrics of answers given here (replays)
            request.resolver_match = resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)  # the API's own 404
        try:
            return self._keyed(request, key)
        except Exception as exc:
            # The database went away around the view (authenticating, locking, committing): nothing
            # was committed, nothing stored; a 503 the client retries with the same key.
            dependency = outage.dependency_of(exc)
            if dependency is None:
                raise
            outage.outage_seen(dependency, exc)
            return outage.unavailable_response(request, dependency)

    def _keyed(self, request: HttpRequest, key: str) -> HttpResponse:
        principal = principal_of(request)
        if principal is None:
            return self.get_response(request)  # the view refuses it (401/403); nothing to key it on
        fp = fingerprint(request)
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [lock_id(principal, key)])
                    (locked,) = cursor.fetchone()
                if not locked:
                    return _problem(409, f"a request with this {HEADER} is still being processed; retry it later",
                                    "idempotency_in_progress", retry_after=int(settings.RETRY_AFTER_SECONDS))
            now = timezone.now()
            record = IdempotencyRecord.objects.filter(principal=principal, key=key).first()
            if record is not None and record.expires_at <= now:
                record.delete()  # expired: the key starts afresh
                record = None
            if record is not None:
                if record.fingerprint != fp:
                    return _problem(422, f"this {HEADER} was already used for a different request (method, path "
                                         "or body); use a new key for a new request", "idempotency_key_reused")
                return _replay(record)
            response = self.get_response(request)
            status = response.status_code
            if status >= 500:
                transaction.set_rollback(True)  # neither the change nor a record: a retry runs afresh
            elif status not in NOT_STORED and _authenticated_as(request, principal):
                _store(request, response, principal=principal, key=key, fp=fp)
        return response
