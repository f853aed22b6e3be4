"""``/api/v1/service-accounts…``: machine principals and their API tokens.

People only: no token may create accounts nor mint or revoke tokens (a leaked token
must not be able to extend itself). An account is visible to its owner, InfoSec and
auditors; anyone else gets 404. Issuing and revoking are decided by
``access.services.tokens`` (the owner or InfoSec). A token's plaintext is in the 201 response
of its creation and nowhere else: not stored, not logged, not in the ledger.
"""
from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.api.common import paginate
from access.models import ApiToken, ServiceAccount
from access.selectors import service_accounts_visible_to
from access.services import tokens
from access.services.service_accounts import service_account_create
from web.api.docs import READ_PROBLEMS, answers, page
from web.api.inputs import StrictInput, parse

TAGS = ["service-accounts"]


class AccountOut(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    owner = serializers.CharField()
    username = serializers.CharField(help_text="the backing user (grants name it as service:<name>)")
    created_at = serializers.DateTimeField()
    disabled_at = serializers.DateTimeField(allow_null=True)


ACCOUNT_EXAMPLE = {"name": "fraud-pipeline", "description": "nightly training", "owner": "rita",
                   "username": "svc-fraud-pipeline", "created_at": "2026-11-10T08:00:00Z", "disabled_at": None}


def account_data(account: ServiceAccount) -> dict[str, Any]:
    return {"name": account.name, "description": account.description, "owner": account.owner.username,
            "username": account.user.username, "created_at": account.created_at,
            "disabled_at": account.disabled_at}


class TokenOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="public part of the token (mlg_<prefix>_…), safe to log")
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=sorted(tokens.SCOPES)))
    created_by = serializers.CharField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    revoked_at = serializers.DateTimeField(allow_null=True)
    revoked_by = serializers.CharField(allow_null=True)
    revoke_reason = serializers.CharField()
    last_used_at = serializers.DateTimeField(allow_null=True, help_text="to the minute")
    active = serializers.BooleanField()


class IssuedTokenOut(TokenOut):
    token = serializers.CharField(help_text="the token itself: shown this once, never again")


TOKEN_EXAMPLE = {
    "id": 5, "name": "ci", "prefix": "3f9a0c1b2d4e", "scopes": ["access:check"], "created_by": "rita",
    "created_at": "2026-11-10T08:05:00Z", "expires_at": "2027-02-08T08:05:00Z", "revoked_at": None,
    "revoked_by": None, "revoke_reason": "", "last_used_at": "2026-11-29T10:01:00Z", "active": True,
}


def token_data(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.pk, "name": token.name, "prefix": token.prefix, "scopes": list(token.scopes),
        "created_by": token.created_by.username, "created_at": token.created_at, "expires_at": token.expires_at,
        "revoked_at": token.revoked_at, "revoked_by": token.revoked_by.username if token.revoked_by else None,
        "revoke_reason": token.revoke_reason, "last_used_at": token.last_used_at,
        "active": token.revoked_at is None and token.expires_at > timezone.now(),
    }


def _visible_account(request: Request, name: str) -> ServiceAccount:
    return get_object_or_404(service_accounts_visible_to(request.user).select_related("owner", "user"), name=name)


class ServiceAccountListApi(APIView):
    required_scopes = {"GET": "access:read"}  # creating one is for people

    class Input(StrictInput):
        class Meta:
            ref_name = "AccessServiceAccountListInput"

        name = serializers.SlugField(max_length=100)
        description = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")

    @extend_schema(
        operation_id="service_accounts_list",
        summary="Service accounts you may see (yours; all for InfoSec and auditors)", tags=TAGS,
        responses=answers({200: page(AccountOut(many=True), "AccessAccountPage")}, READ_PROBLEMS),
        examples=[OpenApiExample("accounts", response_only=True, value={
            "count": 1, "next": None, "previous": None, "results": [ACCOUNT_EXAMPLE]})],
    )
    def get(self, request: Request) -> Response:
        rows = service_accounts_visible_to(request.user).select_related("owner", "user").order_by("name")
        return paginate(request, self, rows, lambda page: [account_data(a) for a in page])

    @extend_schema(
        summary="Create a service account you own (InfoSec or a model owner). People only.", tags=TAGS,
        request=Input,
        responses=answers({201: AccountOut}),
        examples=[OpenApiExample("create", request_only=True, value={
            "name": "fraud-pipeline", "description": "nightly training"})],
    )
    def post(self, request: Request) -> Response:
        data = parse(self.Input, request.data)
        account = service_account_create(actor=request.user, name=data["name"], description=data["description"])
        return Response(account_data(_visible_account(request, account.name)), status=status.HTTP_201_CREATED)


class ServiceAccountDetailApi(APIView):
    required_scope = "access:read"

    @extend_schema(
        summary="A service account", tags=TAGS,
        responses=answers({200: AccountOut}, READ_PROBLEMS),
        examples=[OpenApiExample("account", response_only=True, value=ACCOUNT_EXAMPLE)])
    def get(self, request: Request, name: str) -> Response:
        return Response(account_data(_visible_account(request, name)))


class TokenListApi(APIView):
    # People only, reads included: the token list is the map of what to revoke.

    class Input(StrictInput):
        class Meta:
            ref_name = "AccessTokenListInput"

        name = serializers.CharField(max_length=100)
        scopes = serializers.ListField(child=serializers.ChoiceField(choices=sorted(tokens.SCOPES)), min_length=1,
                                       max_length=len(tokens.SCOPES))
        expires_in_days = serializers.IntegerField(min_value=1, max_value=tokens.MAX_DAYS,
                                                   default=tokens.DEFAULT_DAYS)

    @extend_schema(
        operation_id="service_accounts_tokens_list",
        summary="The tokens of a service account (never the tokens themselves). People only.", tags=TAGS,
        responses=answers({200: page(TokenOut(many=True), "AccessTokenPage")}, READ_PROBLEMS),
        examples=[OpenApiExample("tokens", response_only=True, value={
            "count": 1, "next": None, "previous": None, "results": [TOKEN_EXAMPLE]})],
    )
    def get(self, request: Request, name: str) -> Response:
        account = _visible_account(request, name)
        rows = account.tokens.select_related("created_by", "revoked_by").order_by("-created_at", "-id")
        return paginate(request, self, rows, lambda page: [token_data(t) for t in page])

    @extend_schema(
        summary="Issue a token (the account's owner or InfoSec). The token is in this response only. People only.",
        tags=TAGS, request=Input,
        responses=answers({201: IssuedTokenOut}),
        examples=[
            OpenApiExample("issue", request_only=True, value={
                "name": "ci", "scopes": ["access:check"], "expires_in_days": 90}),
            OpenApiExample("issued", response_only=True, value={
                **TOKEN_EXAMPLE, "last_used_at": None, "token": "mlg_3f9a0c1b2d4e_<43 characters>"}),
        ],
    )
    def post(self, request: Request, name: str) -> Response:
        account = _visible_account(request, name)
        data = parse(self.Input, request.data)
        issued = tokens.api_token_create(actor=request.user, service_account=account, name=data["name"],
                                         scopes=data["scopes"], expires_in_days=data["expires_in_days"])
        body = {**token_data(issued.token), "token": issued.plaintext}
        # The body holds a secret: no cache (browser, proxy) may keep it.
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store",
                                                                        "Pragma": "no-cache"})


class TokenRevokeApi(APIView):
    class Input(StrictInput):
        class Meta:
            ref_name = "AccessTokenRevokeInput"

        reason = serializers.CharField(max_length=500)

    @extend_schema(
        summary="Revoke a token now (the account's owner or InfoSec). People only.", tags=TAGS, request=Input,
        responses=answers({200: TokenOut}),
        examples=[OpenApiExample("revoke", request_only=True, value={"reason": "leaked in a CI log"})],
    )
    def post(self, request: Request, name: str, token_id: int) -> Response:
        account = _visible_account(request, name)
        token = get_object_or_404(account.tokens.all(), pk=token_id)
        data = parse(self.Input, request.data)
        revoked = tokens.api_token_revoke(actor=request.user, token=token, reason=data["reason"])
        return Response(token_data(ApiToken.objects.select_related("created_by", "revoked_by").get(pk=revoked.pk)))
