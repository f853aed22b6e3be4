"""API views that belong to no domain."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
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
