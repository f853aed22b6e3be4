"""``/api/v1/change-requests…``: two-person control over the rules of protected environments.

Changes to a protected environment are proposed through the ordinary endpoints (``PUT
/policies/{env}``, ``PATCH /environments/{name}``, ``POST /environments/{name}/freeze-windows``,
``POST /environments``), which answer ``202 Accepted`` with the change request they created;
here InfoSec and auditors read them, and a second InfoSec person approves (which applies the
change) or rejects; the proposer withdraws. Reads need ``promotions:read`` with a token;
decisions are a person's act, so they declare no token scope (tokens are refused, 403).
"""
from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.promotions import CommentInput, ReasonInput
from governance.models import GovernanceChangeRequest
from governance.services import change_requests
from web.api.docs import LIST_PROBLEMS, READ_PROBLEMS, answers, page
from web.api.inputs import StrictQuery, parse, parse_query
from web.api.pagination import StandardPagination

TAGS = ["environments"]
READ = "promotions:read"


class ChangeRequestOut(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=GovernanceChangeRequest.Kind.choices)
    environment = serializers.CharField(source="environment.name")
    model = serializers.CharField(source="model.name", allow_null=True, default=None)
    change = serializers.DictField(help_text="the proposal, exactly as it is applied on approval")
    reason = serializers.CharField()
    state = serializers.ChoiceField(choices=GovernanceChangeRequest.State.choices)
    proposed_by = serializers.CharField(source="proposed_by.username")
    decided_by = serializers.CharField(source="decided_by.username", allow_null=True, default=None)
    decision_comment = serializers.CharField()
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)


EXAMPLE_CHANGE = {
    "id": 3, "kind": "policy_set", "environment": "production", "model": None,
    "change": {"rules": {"approvals": [{"group": "model-risk", "count": 1}, {"group": "infosec", "count": 1}],
                         "gates": [{"type": "soak", "hours": 48}, {"type": "data_classification"}]}},
    "reason": "longer soak after INC-12", "state": "pending", "proposed_by": "ines", "decided_by": None,
    "decision_comment": "", "created_at": "2026-12-01T09:00:00Z", "decided_at": None,
}


def change_request_data(request: GovernanceChangeRequest) -> dict[str, Any]:
    return dict(ChangeRequestOut(request).data)


class ChangeRequestListApi(APIView):
    required_scope = READ

    class Filters(StrictQuery):
        state = serializers.ChoiceField(choices=GovernanceChangeRequest.State.choices, required=False)
        environment = serializers.SlugField(max_length=50, required=False)

    @extend_schema(
        summary="Change requests of protected environments (InfoSec and auditors)", tags=TAGS,
        operation_id="change_requests_list",
        parameters=[OpenApiParameter("state", str, enum=GovernanceChangeRequest.State.values),
                    OpenApiParameter("environment", str)],
        responses=answers({200: page(ChangeRequestOut(many=True), "ChangeRequestPage")}, LIST_PROBLEMS),
        examples=[OpenApiExample("one", response_only=True,
                                 value={"count": 1, "next": None, "previous": None, "results": [EXAMPLE_CHANGE]})],
    )
    def get(self, request: Request) -> Response:
        if not change_requests.may_see_change_requests(request.user):
            raise PermissionDenied("only InfoSec and auditors may read change requests")
        filters = parse_query(self.Filters, request.query_params)
        rows = change_requests.change_requests_visible_to(request.user)
        if filters.get("state"):
            rows = rows.filter(state=filters["state"])
        if filters.get("environment"):
            rows = rows.filter(environment__name=filters["environment"])
        paginator = StandardPagination()
        found = paginator.paginate_queryset(rows.order_by("-created_at", "-id"), request, view=self)
        return paginator.get_paginated_response(ChangeRequestOut(found, many=True).data)


def _visible(request: Request, pk: int) -> GovernanceChangeRequest:
    # Unknown and invisible look the same.
    return get_object_or_404(change_requests.change_requests_visible_to(request.user), pk=pk)


class ChangeRequestDetailApi(APIView):
    required_scope = READ

    @extend_schema(summary="A change request", tags=TAGS, operation_id="change_requests_detail",
                   responses=answers({200: ChangeRequestOut}, READ_PROBLEMS),
                   examples=[OpenApiExample("pending", response_only=True, value=EXAMPLE_CHANGE)])
    def get(self, request: Request, pk: int) -> Response:
        return Response(change_request_data(_visible(request, pk)))


class ChangeRequestApproveApi(APIView):
    # No scope: API tokens may not approve (a machine never approves).
    @extend_schema(
        summary="Approve and apply a change (a second InfoSec member, people only)",
        description="Applies the proposal exactly as proposed. The proposer and their service accounts may not "
                    "approve (403 self_approval); a proposal whose environment changed since is refused (409 stale); "
                    "a policy below the configured floor is refused (400 below_floor).",
        tags=TAGS, request=CommentInput, responses=answers({200: ChangeRequestOut}),
        examples=[OpenApiExample("approve", request_only=True, value={"comment": "reviewed with the CISO"})],
    )
    def post(self, request: Request, pk: int) -> Response:
        data = parse(CommentInput, request.data)
        done = change_requests.change_request_approve(actor=request.user, change_request=_visible(request, pk),
                                                      comment=data["comment"])
        return Response(change_request_data(done))


class ChangeRequestRejectApi(APIView):
    @extend_schema(
        summary="Reject a change (another InfoSec member, people only)", tags=TAGS, request=CommentInput,
        responses=answers({200: ChangeRequestOut}),
        examples=[OpenApiExample("reject", request_only=True, value={"comment": "no ticket for this change"})],
    )
    def post(self, request: Request, pk: int) -> Response:
        data = parse(CommentInput, request.data)
        done = change_requests.change_request_reject(actor=request.user, change_request=_visible(request, pk),
                                                     comment=data["comment"])
        return Response(change_request_data(done))


class ChangeRequestWithdrawApi(APIView):
    @extend_schema(
        summary="Withdraw your own proposal (people only)", tags=TAGS, request=ReasonInput,
        responses=answers({200: ChangeRequestOut}),
        examples=[OpenApiExample("withdraw", request_only=True, value={"reason": "stale: proposing again"})],
    )
    def post(self, request: Request, pk: int) -> Response:
        data = parse(ReasonInput, request.data)
        done = change_requests.change_request_withdraw(actor=request.user, change_request=_visible(request, pk),
                                                       reason=data["reason"])
        return Response(change_request_data(done))
