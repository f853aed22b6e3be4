"""Authentication and authorization shared by every API view."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from access.models import ApiToken
from access.services.tokens import api_token_authenticate


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
        return token.service_account.user, token

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


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


class TokenRateThrottle(SimpleRateThrottle):
    """One budget per API token (per user for sessions); ``API_THROTTLE_RATE``, e.g. ``3000/min``."""

    scope = "token"

    def get_rate(self) -> str | None:
        rate: str | None = settings.API_THROTTLE_RATE
        return rate

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        token = token_of(request)
        if token is not None:
            ident = f"t{token.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"u{request.user.pk}"
        else:
            ident = str(self.get_ident(request))
        return f"throttle_{self.scope}_{ident}"
