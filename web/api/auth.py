"""Authentication and authorization shared by every API view."""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from typing import Any

from django.conf import settings
from django.db import transaction
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from access.client_address import client_address
from access.models import ApiToken
from access.services.authentication import api_token_address_record
from access.services.tokens import api_token_authenticate
from web.outage import CACHE_ERRORS, OncePerInterval

logger = logging.getLogger(__name__)


class TokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer mlg_…``: a service account's API token."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        keyword, _, value = header.partition(" ")
        if keyword.lower() != self.keyword.lower():
            return None
        value = value.strip()
        if not value or " " in value:
            raise exceptions.AuthenticationFailed("malformed Authorization header: expected 'Bearer <token>'")
        token = api_token_authenticate(value)
        if token is None:
            # One message for unknown, expired, revoked: the caller learns nothing about which.
            raise exceptions.AuthenticationFailed("invalid, expired or revoked API token")
        note_token_address(token, client_address(request))
        return token.service_account.user, token

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


class SeenAddresses:
    """The (token prefix, address) pairs this process already knows were recorded: most requests then cost no
    query at all. Bounded (least recently used dropped first); the database's unique constraint is the truth."""

    def __init__(self, max_items: int = 10_000) -> None:
        self.max_items = max_items
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: tuple[str, str]) -> bool:
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return True
            return False

    def add(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._seen[key] = None
            while len(self._seen) > self.max_items:
                self._seen.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


seen_addresses = SeenAddresses()


def note_token_address(token: ApiToken, origin: str | None) -> None:
    """Record ``auth.token_first_use_from_address`` when ``token`` is used from an address it never was
    (``api_token_address_record``: once per token and address, whatever the number of requests)."""
    if not origin:
        return
    key = (token.prefix, origin)  # the prefix, not the pk: unique for good, never reused by another token
    if key in seen_addresses:
        return
    recorded = api_token_address_record(token=token, origin=origin)
    if recorded is None and not transaction.get_connection().in_atomic_block:
        # Seen before, and its row is committed (no transaction of ours could hold it): remembered at once.
        seen_addresses.add(key)
        return
    # Remembered once it is committed: a request running in a transaction (an Idempotency-Key's) that rolls
    # back takes the entry with it, and the next request from that address must record it again.
    transaction.on_commit(lambda: seen_addresses.add(key))


class ConsoleSessionAuthentication(SessionAuthentication):
    """Session auth (the console's own calls) with CSRF enforced on unsafe methods, as DRF does."""


def token_of(request: Request) -> ApiToken | None:
    return request.auth if isinstance(request.auth, ApiToken) else None


class HasScope(BasePermission):
    """Tokens must carry the view's scope; signed-in people are governed by roles and object rights.

    A view declares ``required_scopes = {"GET": "ledger:read", "POST": "events:write"}`` or a
    single ``required_scope``. A view that declares neither cannot be reached with a token.
    """

    message = "this API token lacks the scope this operation needs"

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        token = token_of(request)
        if token is None:
            return True
        method = (request.method or "GET").lower()
        if method not in view.http_method_names or not hasattr(view, method):
            return True  # DRF answers 405: no scope is needed to learn that a method does not exist
        needed = scope_for(view, request.method or "GET")
        if needed is None:
            self.message = "this operation is not available to API tokens"
            return False
        if needed != "*" and needed not in token.scopes:
            self.message = f"this API token lacks the scope {needed!r}"
            return False
        return True


def scope_for(view: Any, method: str) -> str | None:
    scopes: dict[str, str] | None = getattr(view, "required_scopes", None)
    if scopes:
        found = scopes.get(method.upper())
        if found is None and method.upper() in ("HEAD", "OPTIONS"):
            found = scopes.get("GET")
        return found
    scope: str | None = getattr(view, "required_scope", None)
    return scope


class LocalBuckets:
    """Token buckets per ident in this process: the throttle's budget while the shared cache is down.

    Each bucket holds up to ``capacity`` requests and refills at ``capacity / period`` per second, so a
    caller gets the configured rate from each process (with N web processes, up to N times it while
    the cache is down: failing open, but not without limit). At most ``max_idents`` buckets are kept
    (least recently used dropped first), so a flood of idents cannot exhaust memory."""

    def __init__(self, max_idents: int = 10_000) -> None:
        self.max_idents = max_idents
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # ident -> (tokens, stamp)
        self._lock = threading.Lock()

    def take(self, ident: str, capacity: int, period: float, now: float | None = None) -> float:
        """Take one request from ``ident``'s bucket: 0 when allowed, else the seconds until one is back."""
        now = time.monotonic() if now is None else now
        rate = capacity / period
        with self._lock:
            tokens, stamp = self._buckets.pop(ident, (float(capacity), now))
            tokens = min(float(capacity), tokens + (now - stamp) * rate)
            wait = 0.0
            if tokens >= 1:
                tokens -= 1
            else:
                wait = (1 - tokens) / rate
            self._buckets[ident] = (tokens, now)
            while len(self._buckets) > self.max_idents:
                self._buckets.popitem(last=False)
        return wait

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()


#: The local budget while the cache is down, and its warning: once a minute, not once a request.
local_buckets = LocalBuckets()
_degraded_log = OncePerInterval(60.0)


class TokenRateThrottle(SimpleRateThrottle):
    """One budget per API token (per user for sessions); ``API_THROTTLE_RATE``, e.g. ``3000/min``.

    The budget is kept in the cache (shared by every process with ``CACHE_URL``). When the cache
    cannot be reached the throttle fails open *within a local budget*: the same rate counted per
    process (``LocalBuckets``), with one warning a minute, so a cache outage neither fails every
    request (it used to: 500 on every call, reads included) nor lifts the limit altogether."""

    scope = "token"

    def get_rate(self) -> str | None:
        rate: str | None = settings.API_THROTTLE_RATE
        return rate

    def allow_request(self, request: Any, view: Any) -> bool:
        self._local_wait: float | None = None
        try:
            return bool(super().allow_request(request, view))
        except CACHE_ERRORS as exc:
            if _degraded_log.due("throttle"):
                logger.warning("API throttle: the cache is unavailable (%s); counting each caller's budget "
                               "in this process until it is back", type(exc).__name__)
            assert self.key is not None and self.num_requests is not None and self.duration is not None
            wait = local_buckets.take(self.key, self.num_requests, float(self.duration))
            if wait <= 0:
                return True
            self._local_wait = wait
            return False

    def wait(self) -> float | None:
        if self._local_wait is not None:
            return float(math.ceil(self._local_wait))
        return super().wait()  # type: ignore[no-any-return]

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        token = token_of(request)
        if token is not None:
            ident = f"t{token.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"u{request.user.pk}"
        else:
            ident = str(self.get_ident(request))
        return f"throttle_{self.scope}_{ident}"
