"""``/api/v1/grants…``, ``/api/v1/access-requests…``, ``/api/v1/reviews…`` and ``/api/v1/access/check``.

Lists and details read through the visibility selectors (an invisible object is a
404); every change is an ``access.services.grants`` service, which decides who may make it.
Deciding on someone's access (approve, reject, certify, revoke in a review) and
starting a review are for people: no token scope opens them.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db.models import F, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.api.common import (
    PrincipalField,
    ResourceField,
    field_error,
    find_visible_principal,
    paginate,
    principal_filter,
    principal_grantable_by,
    principal_ref,
    resolve_principal,
    resolve_resource,
    resource_filter,
)
from access.classification import LEVELS
from access.models import PERMISSIONS, RESOURCE_PERMISSIONS, AccessRequest, Grant, ReviewCampaign, ReviewItem
from access.resources import resource_label, resource_level, resource_type_of
from access.selectors import (
    access_requests_visible_to,
    grant_status,
    grants_visible_to,
    resource_labels,
    review_campaigns_visible_to,
    review_items_visible_to,
    service_accounts_visible_to,
)
from access.services.access_requests import (
    access_request_approve,
    access_request_create,
    access_request_reject,
    access_request_withdraw,
)
from access.services.checks import NO_GRANT, check
from access.services.grants import grant_create, grant_revoke, require_may_grant_directly
from access.services.reviews import DEFAULT_REVIEW_LEVELS, review_campaign_start, review_item_decide
from web.api.auth import token_of
from web.api.docs import READ_PROBLEMS, answers, page
from web.api.inputs import StrictInput, StrictQuery, parse, parse_query

GRANT_STATUSES = ("active", "lapsed", "expired", "revoked")
_GRANT_RELATED = ("user__service_account", "group", "granted_by", "revoked_by")


def _username(user: User | None) -> str | None:
    return user.username if user is not None else None


# --- grants ------------------------------------------------------------------------------------------------


class GrantOut(serializers.Serializer):
    id = serializers.IntegerField()
    principal = serializers.CharField(help_text="user:<username>, service:<name> or group:<name>")
    resource = serializers.CharField(help_text="dataset:<name>, registered_model:<name> or environment:<name>")
    permission = serializers.ChoiceField(choices=PERMISSIONS)
    status = serializers.ChoiceField(choices=GRANT_STATUSES, help_text=(
        "active; lapsed (past expiry, not yet closed by the expiry task: already denied); expired; revoked"))
    expires_at = serializers.DateTimeField()
    justification = serializers.CharField()
    granted_by = serializers.CharField()
    request_id = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    revoked_at = serializers.DateTimeField(allow_null=True)
    revoked_by = serializers.CharField(allow_null=True)
    revoke_reason = serializers.CharField()


GRANT_EXAMPLE = {
    "id": 12, "principal": "service:fraud-pipeline", "resource": "dataset:customers", "permission": "read_data",
    "status": "active", "expires_at": "2027-01-15T00:00:00Z", "justification": "nightly feature build",
    "granted_by": "olga", "request_id": 4, "created_at": "2026-11-16T09:30:00Z", "revoked_at": None,
    "revoked_by": None, "revoke_reason": "",
}


def grant_rows(grants: list[Grant]) -> list[dict[str, Any]]:
    labels = resource_labels(grants)
    now = timezone.now()
    return [{
        "id": g.pk, "principal": principal_ref(g.user, g.group),
        "resource": labels[(g.resource_type, g.resource_id)], "permission": g.permission,
        "status": grant_status(g, now), "expires_at": g.expires_at, "justification": g.justification,
        "granted_by": g.granted_by.username, "request_id": g.request_id, "created_at": g.created_at,
        "revoked_at": g.revoked_at, "revoked_by": _username(g.revoked_by), "revoke_reason": g.revoke_reason,
    } for g in grants]


def _visible_grant(request: Request, grant_id: int) -> Grant:
    return get_object_or_404(grants_visible_to(request.user).select_related(*_GRANT_RELATED), pk=grant_id)


def _status_filter(rows: QuerySet[Grant], wanted: str) -> QuerySet[Grant]:
    now = timezone.now()
    if wanted == "active":
        return rows.filter(revoked_at__isnull=True, expires_at__gt=now)
    if wanted == "lapsed":
        return rows.filter(revoked_at__isnull=True, expires_at__lte=now)
    if wanted == "expired":
        return rows.filter(revoked_at__isnull=False, revoked_at__gte=F("expires_at"))
    return rows.filter(revoked_at__isnull=False, revoked_at__lt=F("expires_at"))


class GrantListApi(APIView):
    required_scopes = {"GET": "access:read", "POST": "access:write"}

    class Filters(StrictQuery):
        class Meta:
            ref_name = "AccessGrantListFilters"

        principal = PrincipalField(required=False)
        resource = ResourceField(required=False)
        permission = serializers.ChoiceField(choices=PERMISSIONS, required=False)
        status = serializers.ChoiceField(choices=GRANT_STATUSES, required=False)
        expiring_within_days = serializers.IntegerField(required=False, min_value=0, max_value=3650,
                                                        help_text="active grants ending within this many days")

    class Input(StrictInput):
        class Meta:
            ref_name = "AccessGrantListInput"

        principal = PrincipalField()
        resource = ResourceField()
        permission = serializers.ChoiceField(choices=PERMISSIONS)
        expires_at = serializers.DateTimeField(help_text="at most 30/90/180/365 days away by the data's level")
        justification = serializers.CharField(max_length=5000)

    @extend_schema(
        operation_id="grants_list",
        summary="Grants you may see", tags=["grants"],
        parameters=[
            OpenApiParameter("principal", str, description="user:<username>, service:<name> or group:<name>"),
            OpenApiParameter("resource", str, description="dataset:<name>, registered_model:<name>, "
                                                          "environment:<name>"),
            OpenApiParameter("permission", str, enum=list(PERMISSIONS)),
            OpenApiParameter("status", str, enum=list(GRANT_STATUSES)),
            OpenApiParameter("expiring_within_days", int, description="active grants ending within N days"),
        ],
        responses=answers({200: page(GrantOut(many=True), "AccessGrantPage")}, READ_PROBLEMS),
        examples=[OpenApiExample("grants", response_only=True, value={
            "count": 1, "next": None, "previous": None, "results": [GRANT_EXAMPLE]})],
    )
    def get(self, request: Request) -> Response:
        filters = parse_query(self.Filters, request.query_params)
        rows = grants_visible_to(request.user).select_related(*_GRANT_RELATED).order_by("-created_at", "-id")
        # Filters match names inside the visible rows: no existence check, so nothing to probe (see api_common).
        if "principal" in filters:
            rows = rows.filter(principal_filter(filters["principal"]))
        if "resource" in filters:
            rows = rows.filter(resource_filter(filters["resource"]))
        if "permission" in filters:
            rows = rows.filter(permission=filters["permission"])
        if "status" in filters:
            rows = _status_filter(rows, filters["status"])
        if "expiring_within_days" in filters:
            now = timezone.now()
            rows = rows.filter(revoked_at__isnull=True, expires_at__gt=now,
                               expires_at__lte=now + timedelta(days=filters["expiring_within_days"]))
        return paginate(request, self, rows, grant_rows)

    @extend_schema(
        summary="Grant access (InfoSec, or the owner of a non-restricted, non-PCI resource)", tags=["grants"],
        request=Input,
        responses=answers({201: GrantOut}),
        examples=[OpenApiExample("grant", request_only=True, value={
            "principal": "service:fraud-pipeline", "resource": "dataset:customers", "permission": "read_data",
            "expires_at": "2027-01-15T00:00:00Z", "justification": "nightly feature build"})],
    )
    def post(self, request: Request) -> Response:
        data = parse(self.Input, request.data)
        resource = resolve_resource(data["resource"], viewer=request.user)
        # Who may grant on the resource is settled before the principal is looked up: a caller who
        # may not grant there learns nothing about which names exist (the service checks it again).
        require_may_grant_directly(request.user, resource)
        principal = resolve_principal(data["principal"],
                                      visible=lambda found: principal_grantable_by(found, request.user))
        created = grant_create(actor=request.user, principal=principal, resource=resource,
                                   permission=data["permission"], expires_at=data["expires_at"],
                                   justification=data["justification"])
        return Response(grant_rows([_visible_grant(request, created.pk)])[0], status=status.HTTP_201_CREATED)


class GrantDetailApi(APIView):
    required_scope = "access:read"

    @extend_schema(
        summary="A grant", tags=["grants"],
        responses=answers({200: GrantOut}, READ_PROBLEMS),
        examples=[OpenApiExample("grant", response_only=True, value=GRANT_EXAMPLE)])
    def get(self, request: Request, grant_id: int) -> Response:
        return Response(grant_rows([_visible_grant(request, grant_id)])[0])


class ReasonIn(StrictInput):
    reason = serializers.CharField(max_length=300)


class GrantRevokeApi(APIView):
    required_scope = "access:write"

    @extend_schema(
        summary="Revoke a grant now (InfoSec, the resource's owner or the granter)", tags=["grants"],
        request=ReasonIn,
        responses=answers({200: GrantOut}),
        examples=[OpenApiExample("revoke", request_only=True, value={"reason": "project ended"})],
    )
    def post(self, request: Request, grant_id: int) -> Response:
        grant = _visible_grant(request, grant_id)
        data = parse(ReasonIn, request.data)
        grant_revoke(actor=request.user, grant=grant, reason=data["reason"])
        return Response(grant_rows([_visible_grant(request, grant_id)])[0])


# --- access requests ---------------------------------------------------------------------------------------


class AccessRequestOut(serializers.Serializer):
    id = serializers.IntegerField()
    requester = serializers.CharField()
    principal = serializers.CharField()
    resource = serializers.CharField()
    permission = serializers.ChoiceField(choices=PERMISSIONS)
    duration_days = serializers.IntegerField()
    justification = serializers.CharField()
    state = serializers.ChoiceField(choices=AccessRequest.State.values)
    needs_infosec = serializers.BooleanField()
    owner_approved_by = serializers.CharField(allow_null=True)
    infosec_approved_by = serializers.CharField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    decision_comment = serializers.CharField()
    created_at = serializers.DateTimeField()
    grant_id = serializers.IntegerField(allow_null=True, help_text="the grant it led to, once approved")


REQUEST_EXAMPLE = {
    "id": 4, "requester": "rita", "principal": "service:fraud-pipeline", "resource": "dataset:customers",
    "permission": "read_data", "duration_days": 60, "justification": "nightly feature build", "state": "pending",
    "needs_infosec": False, "owner_approved_by": None, "infosec_approved_by": None, "decided_at": None,
    "decision_comment": "", "created_at": "2026-11-15T09:00:00Z", "grant_id": None,
}
_REQUEST_RELATED = ("requester", "principal_user__service_account", "owner_approved_by", "infosec_approved_by")


def request_rows(requests: list[AccessRequest]) -> list[dict[str, Any]]:
    labels = resource_labels(requests)
    grant_ids = dict(
        Grant.objects.filter(request__in=[r.pk for r in requests]).values_list("request_id", "pk")
    ) if requests else {}
    return [{
        "id": r.pk, "requester": r.requester.username, "principal": principal_ref(r.principal_user, None),
        "resource": labels[(r.resource_type, r.resource_id)], "permission": r.permission,
        "duration_days": r.duration_days, "justification": r.justification, "state": r.state,
        "needs_infosec": r.needs_infosec, "owner_approved_by": _username(r.owner_approved_by),
        "infosec_approved_by": _username(r.infosec_approved_by), "decided_at": r.decided_at,
        "decision_comment": r.decision_comment, "created_at": r.created_at, "grant_id": grant_ids.get(r.pk),
    } for r in requests]


def _visible_request(request: Request, request_id: int) -> AccessRequest:
    return get_object_or_404(access_requests_visible_to(request.user).select_related(*_REQUEST_RELATED),
                             pk=request_id)


def _request_response(request: Request, request_id: int, code: int = status.HTTP_200_OK) -> Response:
    return Response(request_rows([_visible_request(request, request_id)])[0], status=code)


class AccessRequestListApi(APIView):
    required_scopes = {"GET": "access:read", "POST": "access:write"}

    class Filters(StrictQuery):
        class Meta:
            ref_name = "AccessAccessRequestListFilters"

        state = serializers.ChoiceField(choices=AccessRequest.State.values, required=False)
        resource = ResourceField(required=False)

    class Input(StrictInput):
        class Meta:
            ref_name = "AccessAccessRequestListInput"

        resource = ResourceField(help_text="any dataset, model or environment you know the name of")
        permission = serializers.ChoiceField(choices=PERMISSIONS)
        duration_days = serializers.IntegerField(min_value=1, max_value=365,
                                                 help_text="at most 30/90/180/365 by the data's level")
        justification = serializers.CharField(max_length=5000)
        service_account = serializers.CharField(required=False, max_length=100,
                                                help_text="ask for a service account you own, not yourself")

    @extend_schema(
        operation_id="access_requests_list",
        summary="Access requests you may see (yours, for you, on what you own; all for InfoSec/auditors)",
        tags=["access-requests"],
        parameters=[OpenApiParameter("state", str, enum=AccessRequest.State.values),
                    OpenApiParameter("resource", str, description="dataset:<name>, registered_model:<name>, "
                                                                  "environment:<name>")],
        responses=answers({200: page(AccessRequestOut(many=True), "AccessAccessRequestPage")}, READ_PROBLEMS),
        examples=[OpenApiExample("requests", response_only=True, value={
            "count": 1, "next": None, "previous": None, "results": [REQUEST_EXAMPLE]})],
    )
    def get(self, request: Request) -> Response:
        filters = parse_query(self.Filters, request.query_params)
        rows = access_requests_visible_to(request.user).select_related(*_REQUEST_RELATED).order_by(
            "-created_at", "-id")
        if "state" in filters:
            rows = rows.filter(state=filters["state"])
        if "resource" in filters:
            rows = rows.filter(resource_filter(filters["resource"]))
        return paginate(request, self, rows, request_rows)

    @extend_schema(
        summary="Ask for access (people with a governance role; for yourself or a service account you own)",
        tags=["access-requests"], request=Input,
        responses=answers({201: AccessRequestOut}),
        examples=[OpenApiExample("ask", request_only=True, value={
            "resource": "dataset:customers", "permission": "read_data", "duration_days": 60,
            "justification": "nightly feature build", "service_account": "fraud-pipeline"})],
    )
    def post(self, request: Request) -> Response:
        data = parse(self.Input, request.data)
        # Requesting is how one gets to see a dataset, so any resource the caller can name may be asked for.
        resource = resolve_resource(data["resource"], viewer=None)
        account = None
        if "service_account" in data:
            account = service_accounts_visible_to(request.user).filter(name=data["service_account"]).first()
            if account is None:
                raise field_error("service_account", f"no service account named {data['service_account']!r} "
                                                     "that you may see")
        created = access_request_create(
            actor=request.user, resource=resource, permission=data["permission"],
            duration_days=data["duration_days"], justification=data["justification"], for_service_account=account)
        return _request_response(request, created.pk, status.HTTP_201_CREATED)


class AccessRequestDetailApi(APIView):
    required_scope = "access:read"

    @extend_schema(
        summary="An access request", tags=["access-requests"],
        responses=answers({200: AccessRequestOut}, READ_PROBLEMS),
        examples=[OpenApiExample("request", response_only=True, value=REQUEST_EXAMPLE)])
    def get(self, request: Request, request_id: int) -> Response:
        return _request_response(request, request_id)


class CommentIn(StrictInput):
    comment = serializers.CharField(max_length=5000)


class AccessRequestApproveApi(APIView):
    # No scope: approving access is a person's decision.

    @extend_schema(
        summary="Approve (the resource's owner and/or InfoSec; not for your own request). People only.",
        tags=["access-requests"], request=CommentIn,
        responses=answers({200: AccessRequestOut}),
        examples=[OpenApiExample("approve", request_only=True, value={"comment": "ok for the Q1 model"})],
    )
    def post(self, request: Request, request_id: int) -> Response:
        access_request = _visible_request(request, request_id)
        data = parse(CommentIn, request.data)
        access_request_approve(actor=request.user, access_request=access_request, comment=data["comment"])
        return _request_response(request, request_id)


class AccessRequestRejectApi(APIView):
    @extend_schema(
        summary="Reject (the resource's owner or InfoSec). People only.", tags=["access-requests"],
        request=CommentIn,
        responses=answers({200: AccessRequestOut}),
        examples=[OpenApiExample("reject", request_only=True, value={"comment": "use the anonymised extract"})],
    )
    def post(self, request: Request, request_id: int) -> Response:
        access_request = _visible_request(request, request_id)
        data = parse(CommentIn, request.data)
        access_request_reject(actor=request.user, access_request=access_request, comment=data["comment"])
        return _request_response(request, request_id)


class AccessRequestWithdrawApi(APIView):
    required_scope = "access:write"

    class Input(StrictInput):
        class Meta:
            ref_name = "AccessAccessRequestWithdrawInput"

        reason = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")

    @extend_schema(
        summary="Withdraw your pending request", tags=["access-requests"], request=Input,
        responses=answers({200: AccessRequestOut}),
        examples=[OpenApiExample("withdraw", request_only=True, value={"reason": "no longer needed"})],
    )
    def post(self, request: Request, request_id: int) -> Response:
        access_request = _visible_request(request, request_id)
        data = parse(self.Input, request.data)
        access_request_withdraw(actor=request.user, access_request=access_request, reason=data["reason"])
        return _request_response(request, request_id)


# --- access reviews ----------------------------------------------------------------------------------------


class CampaignOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    state = serializers.ChoiceField(choices=ReviewCampaign.State.values)
    created_by = serializers.CharField()
    created_at = serializers.DateTimeField()
    deadline = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)


class ItemOut(serializers.Serializer):
    id = serializers.IntegerField()
    grant = GrantOut()
    reviewer = serializers.CharField()
    decision = serializers.ChoiceField(choices=ReviewItem.Decision.values)
    decided_by = serializers.CharField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    comment = serializers.CharField()


class CampaignDetailOut(CampaignOut):
    items = ItemOut(many=True, help_text="all items for InfoSec and auditors, otherwise the ones you review")
    report = serializers.DictField(help_text="the closing report (empty while open)")


CAMPAIGN_EXAMPLE = {"id": 3, "name": "Q4 2026 review", "state": "open", "created_by": "ines",
                    "created_at": "2026-11-01T08:00:00Z", "deadline": "2026-12-01T00:00:00Z", "closed_at": None}


def campaign_data(c: ReviewCampaign) -> dict[str, Any]:
    return {"id": c.pk, "name": c.name, "state": c.state, "created_by": c.created_by.username,
            "created_at": c.created_at, "deadline": c.deadline, "closed_at": c.closed_at}


def _visible_campaign(request: Request, campaign_id: int) -> ReviewCampaign:
    return get_object_or_404(review_campaigns_visible_to(request.user).select_related("created_by"),
                             pk=campaign_id)


def _campaign_detail(request: Request, campaign: ReviewCampaign) -> dict[str, Any]:
    items = list(
        review_items_visible_to(request.user).filter(campaign=campaign)
        .select_related("reviewer", "decided_by", *(f"grant__{r}" for r in _GRANT_RELATED)).order_by("pk")
    )
    grants = dict(zip([i.pk for i in items], grant_rows([i.grant for i in items]), strict=True))
    return {
        **campaign_data(campaign), "report": campaign.report,
        "items": [{"id": i.pk, "grant": grants[i.pk], "reviewer": i.reviewer.username, "decision": i.decision,
                   "decided_by": _username(i.decided_by), "decided_at": i.decided_at, "comment": i.comment}
                  for i in items],
    }


class ReviewListApi(APIView):
    required_scopes = {"GET": "access:read"}  # starting a review is for people (InfoSec)

    class Filters(StrictQuery):
        class Meta:
            ref_name = "AccessReviewListFilters"

        state = serializers.ChoiceField(choices=ReviewCampaign.State.values, required=False)

    class Input(StrictInput):
        class Meta:
            ref_name = "AccessReviewListInput"

        name = serializers.CharField(max_length=200)
        deadline = serializers.DateTimeField()
        levels = serializers.ListField(child=serializers.ChoiceField(choices=LEVELS), min_length=1,
                                       max_length=len(LEVELS), required=False,
                                       help_text="classification levels reviewed (default confidential, "
                                                 "restricted)")

    @extend_schema(
        operation_id="reviews_list",
        summary="Access reviews you take part in (all for InfoSec and auditors)", tags=["reviews"],
        parameters=[OpenApiParameter("state", str, enum=ReviewCampaign.State.values)],
        responses=answers({200: page(CampaignOut(many=True), "AccessCampaignPage")}, READ_PROBLEMS),
        examples=[OpenApiExample("reviews", response_only=True, value={
            "count": 1, "next": None, "previous": None, "results": [CAMPAIGN_EXAMPLE]})],
    )
    def get(self, request: Request) -> Response:
        filters = parse_query(self.Filters, request.query_params)
        rows = review_campaigns_visible_to(request.user).select_related("created_by").order_by("-created_at", "-id")
        if "state" in filters:
            rows = rows.filter(state=filters["state"])
        return paginate(request, self, rows, lambda page: [campaign_data(c) for c in page])

    @extend_schema(
        summary="Start an access review of the active grants on sensitive resources (InfoSec). People only.",
        tags=["reviews"], request=Input,
        responses=answers({201: CampaignDetailOut}),
        examples=[OpenApiExample("start", request_only=True, value={
            "name": "Q4 2026 review", "deadline": "2026-12-01T00:00:00Z", "levels": ["confidential", "restricted"]})],
    )
    def post(self, request: Request) -> Response:
        data = parse(self.Input, request.data)
        campaign = review_campaign_start(actor=request.user, name=data["name"], deadline=data["deadline"],
                                             levels=data.get("levels", DEFAULT_REVIEW_LEVELS))
        return Response(_campaign_detail(request, _visible_campaign(request, campaign.pk)),
                        status=status.HTTP_201_CREATED)


class ReviewDetailApi(APIView):
    required_scope = "access:read"

    @extend_schema(
        summary="An access review and its items", tags=["reviews"],
        responses=answers({200: CampaignDetailOut}, READ_PROBLEMS),
        examples=[OpenApiExample("review", response_only=True, value={
                       **CAMPAIGN_EXAMPLE, "report": {}, "items": [{
                           "id": 9, "grant": GRANT_EXAMPLE, "reviewer": "olga", "decision": "pending",
                           "decided_by": None, "decided_at": None, "comment": ""}]})])
    def get(self, request: Request, campaign_id: int) -> Response:
        return Response(_campaign_detail(request, _visible_campaign(request, campaign_id)))


DECISIONS = {"certify": ReviewItem.Decision.CERTIFIED, "revoke": ReviewItem.Decision.REVOKED}


class ReviewItemDecideApi(APIView):
    # No scope: certifying someone's access is a person's decision.

    class Input(StrictInput):
        class Meta:
            ref_name = "AccessReviewItemDecideInput"

        decision = serializers.ChoiceField(choices=list(DECISIONS))
        comment = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")

    @extend_schema(
        summary="Certify or revoke one grant under review (its reviewer or InfoSec). People only.",
        tags=["reviews"], request=Input,
        responses=answers({200: ItemOut}),
        examples=[OpenApiExample("certify", request_only=True, value={
            "decision": "certify", "comment": "still on the fraud team"})],
    )
    def post(self, request: Request, campaign_id: int, item_id: int) -> Response:
        campaign = _visible_campaign(request, campaign_id)
        item = get_object_or_404(review_items_visible_to(request.user).filter(campaign=campaign), pk=item_id)
        data = parse(self.Input, request.data)
        review_item_decide(actor=request.user, review_item=item, decision=DECISIONS[data["decision"]],
                               comment=data["comment"])
        detail = _campaign_detail(request, campaign)
        return Response(next(i for i in detail["items"] if i["id"] == item.pk))


# --- the access check --------------------------------------------------------------------------------------


class AccessCheckApi(APIView):
    """Allowed or not, and why. For serving platforms and pipelines (scope ``access:check``).

    An unknown resource (or one the caller may not see) is a 400, and so is a permission
    that does not apply to the resource type. An unknown principal, or one a person may not
    see (``principal_visible_to``), is answered "not allowed" exactly like a principal
    without a grant. Signed-in people may ask about resources and principals they can see
    (all of them for InfoSec, auditors and stewards).
    """

    required_scope = "access:check"

    class Input(StrictInput):
        class Meta:
            ref_name = "AccessAccessCheckInput"

        principal = PrincipalField()
        resource = ResourceField()
        permission = serializers.ChoiceField(choices=PERMISSIONS)

    class Output(serializers.Serializer):
        class Meta:
            ref_name = "AccessAccessCheckOutput"

        allowed = serializers.BooleanField()
        reason = serializers.CharField()
        grant_id = serializers.IntegerField(allow_null=True)
        level = serializers.ChoiceField(choices=LEVELS, allow_null=True,
                                        help_text="the classification governing access to the resource")
        expires_at = serializers.DateTimeField(allow_null=True, help_text="when the allowing grant ends")

    @extend_schema(
        summary="May this principal do this on that resource?", tags=["access-check"], request=Input,
        responses=answers({200: Output}),
        examples=[
            OpenApiExample("ask", request_only=True, value={
                "principal": "service:fraud-pipeline", "resource": "dataset:customers", "permission": "read_data"}),
            OpenApiExample("allowed", response_only=True, value={
                "allowed": True, "reason": "allowed by grant #12", "grant_id": 12, "level": "confidential",
                "expires_at": "2027-01-15T00:00:00Z"}),
            OpenApiExample("denied", response_only=True, value={
                "allowed": False, "reason": "no active grant of read_data on dataset:customers", "grant_id": None,
                "level": "confidential", "expires_at": None}),
        ],
    )
    def post(self, request: Request) -> Response:
        data = parse(self.Input, request.data)
        # A token with access:check answers for any resource and principal; a person for the ones they may see.
        viewer = None if token_of(request) is not None else request.user
        resource = resolve_resource(data["resource"], viewer=viewer)
        resource_type = resource_type_of(resource)
        if data["permission"] not in RESOURCE_PERMISSIONS[resource_type]:
            raise field_error("permission", f"{data['permission']!r} does not apply to a "
                              f"{resource_type.replace('_', ' ')}; use one of "
                              + ", ".join(RESOURCE_PERMISSIONS[resource_type]))
        principal = find_visible_principal(data["principal"], viewer=viewer)
        if principal is None:
            # Unknown or invisible: the answer of a principal without a grant, word for word, and no
            # ledger entry (there is nobody to record), so the answer cannot tell which names exist.
            return Response({"allowed": False, "reason": NO_GRANT.format(permission=data["permission"],
                                                                          resource=resource_label(resource)),
                             "grant_id": None, "level": resource_level(resource), "expires_at": None})
        decision = check(principal, data["permission"], resource)
        expires_at = (Grant.objects.filter(pk=decision.grant_id).values_list("expires_at", flat=True).first()
                      if decision.grant_id is not None else None)
        return Response({"allowed": decision.allowed, "reason": decision.reason, "grant_id": decision.grant_id,
                         "level": resource_level(resource), "expires_at": expires_at})

