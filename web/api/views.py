"""API views that belong to no domain."""
from __future__ import annotations

from typing import Any

from django.urls import URLPattern, URLResolver, reverse
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.services.tokens import SCOPES
from web.api.auth import token_of
from web.console.base import viewer_roles


class WhoAmIApi(APIView):
    """Who the caller is: a person (session) or a service account (token) with its scopes."""

    required_scope = "*"  # any valid token may ask who it is

    class Output(serializers.Serializer):
        kind = serializers.ChoiceField(choices=["user", "service_account"])
        username = serializers.CharField()
        roles = serializers.ListField(child=serializers.CharField())
        service_account = serializers.CharField(allow_null=True)
        scopes = serializers.ListField(child=serializers.CharField())
        token_expires_at = serializers.DateTimeField(allow_null=True)

    @extend_schema(
        responses=Output,
        summary="Who am I",
        tags=["meta"],
        examples=[
            OpenApiExample(
                "A pipeline's token",
                value={"kind": "service_account", "username": "svc-fraud-pipeline", "roles": [],
                       "service_account": "fraud-pipeline", "scopes": ["events:write", "promotions:read"],
                       "token_expires_at": "2027-02-27T10:00:00Z"},
                response_only=True,
            )
        ],
    )
    def get(self, request: Request) -> Response:
        token = token_of(request)
        data = {
            "kind": "service_account" if token else "user",
            "username": request.user.get_username(),
            "roles": sorted(viewer_roles(request.user)),
            "service_account": token.service_account.name if token else None,
            "scopes": token.scopes if token else sorted(SCOPES),
            "token_expires_at": token.expires_at if token else None,
        }
        return Response(self.Output(data).data)


#: Routes of /api/v1/ that are not resources: the index itself, the schema and its page.
_NOT_RESOURCES = frozenset({"api-index", "api-schema", "api-docs"})


def _resource_routes(patterns: list[Any]) -> dict[str, str]:
    """Name (without the ``api-`` prefix) → path of every named route taking no parameter.

    Routes with parameters (``models/<name>``) are reached from their collection's results; the
    schema lists them all."""
    out: dict[str, str] = {}
    for entry in patterns:
        if isinstance(entry, URLResolver):
            out.update(_resource_routes(entry.url_patterns))
        elif isinstance(entry, URLPattern) and entry.name and entry.name not in _NOT_RESOURCES:
            if not getattr(entry.pattern, "converters", None):
                out[entry.name.removeprefix("api-")] = reverse(entry.name)
    return out


class ApiIndexApi(APIView):
    """``GET /api/v1/``: what the API offers (its collections, schema and docs), never any data.

    Public, like the schema it points to (and, like it, not listed in the schema): it names routes,
    which the schema already publishes, and each route still asks for its own credentials."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    # The schema's operations are the secured ones (tests/api/test_schema.py); this one only points at them.
    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        from web.api import urls  # the routes import this module's views

        return Response({
            "version": "v1",
            "schema": reverse("api-schema"),
            "docs": reverse("api-docs"),
            "resources": dict(sorted(_resource_routes(urls.urlpatterns).items())),
        })
