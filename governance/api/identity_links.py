"""``/api/v1/identity-links…``: InfoSec vouches that an MLflow identity is an account (#13).

MLflow's ``user_id`` is client-set text; a version's creator becomes a trusted registrant
(``registered_by``, the ``trusted_creator`` gate) only through a link made here. InfoSec
creates and removes links, with a reason (``governance.services.identity_links.identity_link_create`` /
``identity_link_remove``); auditors read them; anyone else is refused (403). Links are a
person's act: they declare no token scope, so every API token is refused (403), reads
included. The MLflow identity is personal data: it is in these responses (InfoSec and
auditors need it) and never in a log line or an error message.
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.shortcuts import get_object_or_404
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.roles import INFOSEC, role_names
from governance import selectors
from governance.models import IdentityLink
from governance.services import identity_links
from governance.services.identity_links import MAX_IDENTITY
from web.api.docs import LIST_PROBLEMS, READ_PROBLEMS, answers, page
from web.api.inputs import StrictInput, Text, parse
from web.api.pagination import StandardPagination

TAGS = ["identity-links"]


class IdentityLinkOut(serializers.Serializer):
    id = serializers.IntegerField()
    mlflow_identity = serializers.CharField(help_text="MLflow's user id of versions (personal data)")
    account = serializers.CharField(help_text="the account's username")
    account_ref = serializers.CharField(help_text="the account as the ledger names it, user:<id>")
    reason = serializers.CharField()
    created_by = serializers.CharField()
    created_at = serializers.DateTimeField()


EXAMPLE = {"id": 4, "mlflow_identity": "carol@corp.example", "account": "carol", "account_ref": "user:17",
           "reason": "SSO-authenticated MLflow, ticket SEC-88", "created_by": "ines",
           "created_at": "2026-12-01T09:00:00Z"}


def link_data(link: IdentityLink) -> dict[str, Any]:
    return {"id": link.pk, "mlflow_identity": link.mlflow_identity, "account": link.account.username,
            "account_ref": f"user:{link.account_id}", "reason": link.reason,
            "created_by": link.created_by.username, "created_at": link.created_at}


class LinkInput(StrictInput):
    class Meta:
        ref_name = "IdentityLinkInput"

    mlflow_identity = Text(max_length=MAX_IDENTITY, help_text="MLflow's user id, exactly as the registry shows it")
    account = Text(max_length=150, help_text="the username of an active account")
    reason = Text(max_length=1000)


class RemoveInput(StrictInput):
    class Meta:
        ref_name = "IdentityLinkRemoveInput"

    reason = Text(max_length=1000)


def _require_reader(request: Request) -> None:
    if not selectors.may_see_identity_links(request.user):
        raise PermissionDenied("only InfoSec and auditors may see MLflow identity links")


def _require_infosec(request: Request, what: str) -> None:
    # Before the input is read: nobody else learns which accounts or identities exist.
    if INFOSEC not in role_names(request.user):
        raise PermissionDenied(f"only InfoSec may {what}")


class IdentityLinkListApi(APIView):
    # No scope: reads and writes are for people (InfoSec, auditors); every token gets 403.

    @extend_schema(
        operation_id="identity_links_list", summary="MLflow identity links (InfoSec and auditors, people only)",
        tags=TAGS, responses=answers({200: page(IdentityLinkOut(many=True), "IdentityLinkPage")}, LIST_PROBLEMS),
        examples=[OpenApiExample("links", response_only=True,
                                 value={"count": 1, "next": None, "previous": None, "results": [EXAMPLE]})],
    )
    def get(self, request: Request) -> Response:
        _require_reader(request)
        paginator = StandardPagination()
        rows = selectors.identity_links_visible_to(request.user).order_by("mlflow_identity", "pk")
        found = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response([link_data(link) for link in found or []])

    @extend_schema(
        summary="Link an MLflow identity to an account (InfoSec, people only)",
        description="Versions that identity created and that have no trusted registrant yet are linked at once "
                    "(model.version_registrant_linked). An identity already linked is refused (409 duplicate); "
                    "an unknown or inactive account is a 400.",
        tags=TAGS, request=LinkInput, responses=answers({201: IdentityLinkOut}, (400, 401, 403, 409, 415, 429)),
        examples=[OpenApiExample("link", request_only=True, value={
            "mlflow_identity": "carol@corp.example", "account": "carol",
            "reason": "SSO-authenticated MLflow, ticket SEC-88"})],
    )
    def post(self, request: Request) -> Response:
        _require_infosec(request, "link MLflow identities to accounts")
        data = parse(LinkInput, request.data)
        account = User.objects.filter(username=data["account"], is_active=True).first()
        if account is None:
            raise ValidationError({"account": ["no active account has this username"]})
        link = identity_links.identity_link_create(actor=request.user, mlflow_identity=data["mlflow_identity"],
                                                   account=account, reason=data["reason"])
        fresh = selectors.identity_links_visible_to(request.user).get(pk=link.pk)
        return Response(link_data(fresh), status=status.HTTP_201_CREATED)


class _DeleteWithBody(AutoSchema):
    """Documents the JSON body of DELETE (the removal's reason), which drf-spectacular leaves out by default."""

    def _get_request_body(self, direction: str = "request") -> Any:
        if self.method != "DELETE":
            return super()._get_request_body(direction)  # type: ignore[no-untyped-call]
        self.method = "POST"
        try:
            return super()._get_request_body(direction)  # type: ignore[no-untyped-call]
        finally:
            self.method = "DELETE"


class IdentityLinkDetailApi(APIView):
    schema = _DeleteWithBody()
    @extend_schema(operation_id="identity_links_detail", summary="An MLflow identity link (InfoSec and auditors)",
                   tags=TAGS, responses=answers({200: IdentityLinkOut}, READ_PROBLEMS),
                   examples=[OpenApiExample("link", response_only=True, value=EXAMPLE)])
    def get(self, request: Request, pk: int) -> Response:
        _require_reader(request)
        return Response(link_data(get_object_or_404(selectors.identity_links_visible_to(request.user), pk=pk)))

    @extend_schema(
        summary="Remove a link, with a reason (InfoSec, people only)",
        description="Versions already linked keep their registrant: it was true when they were linked.",
        tags=TAGS, request=RemoveInput, responses=answers({204: None}, (400, 401, 403, 404, 409, 415, 429)),
        examples=[OpenApiExample("remove", request_only=True, value={"reason": "carol left the team"})],
    )
    def delete(self, request: Request, pk: int) -> Response:
        _require_infosec(request, "remove MLflow identity links")
        link = get_object_or_404(selectors.identity_links_visible_to(request.user), pk=pk)
        data = parse(RemoveInput, request.data)
        identity_links.identity_link_remove(actor=request.user, link=link, reason=data["reason"])
        return Response(status=status.HTTP_204_NO_CONTENT)
