"""``/api/v1/promotions…``, ``/api/v1/break-glass-reviews…`` and ``/api/v1/admission``.

Views authenticate, validate and call ``governance.services`` / ``governance.selectors``; the
services decide (and refuse with NotPermitted → 403, InvalidState → 409). A request the
caller may not see answers 404. Approving and rejecting declare no token scope: a machine
never approves (separation of duties), so every API token gets 403 there.
"""
from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Prefetch, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.ledger import Actor
from governance import selectors
from governance.errors import InvalidState
from governance.models import (
    Approval,
    BreakGlassReview,
    Environment,
    ModelVersion,
    PromotionRequest,
)
from governance.services import break_glass, deployments, promotions
from web.api.auth import token_of
from web.api.docs import LIST_PROBLEMS, READ_PROBLEMS, WRITE_PROBLEMS, answers, page
from web.api.inputs import Int, StrictInput, StrictQuery, Text, parse, parse_query
from web.api.pagination import StandardPagination

TAGS = ["promotions"]
TEXT_MAX = 5000
READ, WRITE = "promotions:read", "promotions:write"


def _actor(request: Request) -> Actor:
    """Who the ledger names: the service account behind a token, else the signed-in person."""
    token = token_of(request)
    return Actor.service(token.service_account.name) if token else Actor.user(request.user)


def _requests_for(request: Request) -> QuerySet[PromotionRequest]:
    return selectors.promotion_requests_visible_to(request.user).select_related(
        "version__model", "environment", "requested_by"
    )


def _visible_request(request: Request, pk: int) -> PromotionRequest:
    return get_object_or_404(_requests_for(request), pk=pk)


def _version_and_environment(request: Request, data: dict[str, Any]) -> tuple[ModelVersion, Environment]:
    """The named version (among those the caller may see) and environment, or field errors."""
    errors: dict[str, list[str]] = {}
    version = (
        selectors.model_versions_visible_to(request.user).select_related("model")
        .filter(model__name=data["model"], version=data["version"]).first()
    )
    if version is None:
        errors["version"] = [f"no version {data['version']} of model {data['model']!r}, or you may not see it"]
    environment = Environment.objects.filter(name=data["environment"]).first()
    if environment is None:
        errors["environment"] = [f"no environment {data['environment']!r}"]
    if errors:
        raise ValidationError(errors)
    assert version is not None and environment is not None
    return version, environment


# --- shapes --------------------------------------------------------------------------------------


class PromotionSummary(serializers.Serializer):
    id = serializers.IntegerField()
    model = serializers.CharField(source="version.model.name")
    version = serializers.IntegerField(source="version.version")
    environment = serializers.CharField(source="environment.name")
    state = serializers.ChoiceField(choices=PromotionRequest.State.choices)
    strategy = serializers.ChoiceField(choices=PromotionRequest.Strategy.choices)
    canary_steps = serializers.ListField(child=serializers.IntegerField())
    traffic_percent = serializers.IntegerField()
    requested_by = serializers.CharField(source="requested_by.username")
    reason = serializers.CharField()
    is_break_glass = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    deployed_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class ApprovalOut(serializers.Serializer):
    approver = serializers.CharField(source="approver.username")
    decision = serializers.ChoiceField(choices=Approval.Decision.choices)
    group = serializers.CharField()
    comment = serializers.CharField()
    evidence_digest = serializers.CharField()
    created_at = serializers.DateTimeField()


class BreakGlassReviewField(serializers.DictField):
    """The promotion's break-glass review in brief (``id``, ``state``, ``due_at``, ``reviewed_by``), or null."""

    def to_representation(self, value: Any) -> dict[str, Any] | None:
        try:
            review: BreakGlassReview | None = value.break_glass_review
        except ObjectDoesNotExist:
            review = None
        if review is None:
            return None
        return {"id": review.pk, "state": review.state, "due_at": review.due_at.isoformat(),
                "reviewed_by": review.reviewed_by.username if review.reviewed_by else None}


class PromotionDetail(PromotionSummary):
    class Status(serializers.Serializer):
        approvals = serializers.DictField(child=serializers.IntegerField(),
                                          help_text="valid approvals per approval group")
        unmet_rules = serializers.ListField(child=serializers.CharField())
        failed_gates = serializers.ListField(child=serializers.CharField())
        ready = serializers.BooleanField()

        def to_representation(self, instance: Any) -> Any:
            """Of the promotion: its approval status under the effective policy (one query, the policy)."""
            return super().to_representation(promotions.approval_status(instance))

    evidence = serializers.DictField(help_text="gate results at the last evaluation and the artifact digest")
    evidence_digest = serializers.CharField()
    previous_version = serializers.IntegerField(source="previous_version.version", allow_null=True, default=None)
    last_error = serializers.CharField()
    approvals = ApprovalOut(many=True, source="approvals.all")
    status = Status(source="*")
    break_glass_review = BreakGlassReviewField(allow_null=True, source="*")


EXAMPLE_SUMMARY = {
    "id": 42, "model": "fraud-detector", "version": 7, "environment": "staging", "state": "pending",
    "strategy": "canary", "canary_steps": [5, 25, 50, 100], "traffic_percent": 0, "requested_by": "olga",
    "reason": "better recall on card-not-present fraud", "is_break_glass": False,
    "created_at": "2026-11-29T10:00:00Z", "decided_at": None, "deployed_at": None, "finished_at": None,
}
EXAMPLE_DETAIL = {
    **EXAMPLE_SUMMARY,
    "evidence": {"artifact_digest": "sha256:3f…", "evaluated_at": "2026-11-29T10:00:00Z",
                 "gates": [{"gate": "model_card", "passed": True, "detail": "model card present"}]},
    "evidence_digest": "9d2c…", "previous_version": None, "last_error": "",
    "approvals": [{"approver": "adam", "decision": "approve", "group": "approver", "comment": "metrics ok",
                   "evidence_digest": "9d2c…", "created_at": "2026-11-29T11:00:00Z"}],
    "status": {"approvals": {"approver": 1}, "unmet_rules": [], "failed_gates": [], "ready": True},
    "break_glass_review": None,
}


# Everything the detail shows, in one query: the break-glass review is a reverse one-to-one.
_DETAIL_RELATED = (
    "version__model", "environment", "requested_by", "previous_version", "break_glass_review__reviewed_by",
)


def _detail_rows(rows: QuerySet[PromotionRequest]) -> QuerySet[PromotionRequest]:
    return rows.select_related(*_DETAIL_RELATED).prefetch_related(
        Prefetch("approvals", Approval.objects.select_related("approver"))
    )


def summary_data(promotion: PromotionRequest) -> dict[str, Any]:
    """``PromotionSummary`` of ``promotion`` (the list's items)."""
    data: dict[str, Any] = PromotionSummary(promotion).data
    return data


def _detail_of(promotion: PromotionRequest) -> dict[str, Any]:
    """``PromotionDetail`` of a promotion loaded by ``_detail_rows`` (one more query: the policy)."""
    data: dict[str, Any] = PromotionDetail(promotion).data
    return data


def detail_data(promotion: PromotionRequest) -> dict[str, Any]:
    """The detail of ``promotion`` as it is now in the database (after a service changed it)."""
    return _detail_of(_detail_rows(PromotionRequest.objects.all()).get(pk=promotion.pk))


# --- list and create -----------------------------------------------------------------------------


class PromotionListCreateApi(APIView):
    required_scopes = {"GET": READ, "POST": WRITE}

    class Filters(StrictQuery):
        state = serializers.ChoiceField(choices=PromotionRequest.State.choices, required=False)
        environment = serializers.SlugField(max_length=50, required=False)
        model = serializers.CharField(max_length=256, required=False)
        awaiting_me = serializers.BooleanField(required=False, default=False,
                                               help_text="only pending requests you may approve")

    class Input(StrictInput):
        class Meta:
            ref_name = "PromotionListCreateInput"

        model = Text(max_length=256)
        version = Int(min_value=1, max_value=2_147_483_647)
        environment = serializers.SlugField(max_length=50)
        strategy = serializers.ChoiceField(choices=PromotionRequest.Strategy.choices, default="full")
        canary_steps = serializers.ListField(
            child=Int(min_value=1, max_value=100), required=False, allow_empty=True,
            max_length=20, help_text="canary only: increasing traffic percents ending at 100 (default 5,25,50,100)",
        )
        reason = Text(max_length=TEXT_MAX)

    @extend_schema(
        summary="List the promotion requests you may see",
        operation_id="promotions_list",
        tags=TAGS,
        parameters=[
            OpenApiParameter("state", str, enum=PromotionRequest.State.values),
            OpenApiParameter("environment", str), OpenApiParameter("model", str),
            OpenApiParameter("awaiting_me", bool, description="only pending requests you may approve"),
        ],
        responses=answers({200: page(PromotionSummary(many=True), "PromotionPage")}, LIST_PROBLEMS),
        examples=[OpenApiExample("pending", response_only=True,
                                 value={"count": 1, "next": None, "previous": None, "results": [EXAMPLE_SUMMARY]})],
    )
    def get(self, request: Request) -> Response:
        filters = parse_query(self.Filters, request.query_params)
        rows = _requests_for(request)
        if filters.get("state"):
            rows = rows.filter(state=filters["state"])
        if filters.get("environment"):
            rows = rows.filter(environment__name=filters["environment"])
        if filters.get("model"):
            rows = rows.filter(version__model__name=filters["model"])
        if filters.get("awaiting_me"):
            rows = rows.filter(pk__in=[r.pk for r in selectors.requests_awaiting(request.user)])
        paginator = StandardPagination()
        page = paginator.paginate_queryset(rows.order_by("-created_at", "-id"), request, view=self)
        return paginator.get_paginated_response([summary_data(p) for p in page])

    @extend_schema(
        summary="Request a promotion",
        description="Evaluates the environment's policy gates and keeps them as evidence. Needs the model's "
                    "owner or the model-owner role. A policy without approval rules (dev) approves at once.",
        tags=TAGS,
        request=Input,
        responses=answers({201: PromotionDetail}),
        examples=[
            OpenApiExample("canary to staging", request_only=True, value={
                "model": "fraud-detector", "version": 7, "environment": "staging", "strategy": "canary",
                "canary_steps": [5, 25, 50, 100], "reason": "better recall on card-not-present fraud"}),
            OpenApiExample("created", response_only=True, status_codes=["201"], value=EXAMPLE_DETAIL),
        ],
    )
    def post(self, request: Request) -> Response:
        data = parse(self.Input, request.data)
        version, environment = _version_and_environment(request, data)
        created = promotions.promotion_request(
            actor=request.user, version=version, environment=environment, reason=data["reason"],
            strategy=data["strategy"], canary_steps=data.get("canary_steps") or None,
        )
        return Response(detail_data(created), status=status.HTTP_201_CREATED)


class PromotionDetailApi(APIView):
    required_scope = READ

    @extend_schema(
        summary="A promotion request: state, gate evidence, approvals and unmet rules",
        tags=TAGS, responses=answers({200: PromotionDetail}, READ_PROBLEMS),
        examples=[OpenApiExample("approved", response_only=True, value=EXAMPLE_DETAIL)],
    )
    def get(self, request: Request, promotion_id: int) -> Response:
        # The visibility filter and the whole detail in one query (the 404-not-403 rule holds: same queryset).
        return Response(_detail_of(get_object_or_404(_detail_rows(_requests_for(request)), pk=promotion_id)))


class CommentInput(StrictInput):
    comment = Text(max_length=TEXT_MAX)


class ReasonInput(StrictInput):
    reason = Text(max_length=TEXT_MAX)


class PromotionApproveApi(APIView):
    # No scope: API tokens may not approve (a machine never approves).
    @extend_schema(
        summary="Approve (people only)",
        description="Counts toward one of the policy's approval groups. The requester and the version's "
                    "creator may not approve (403 self_approval). Not available to API tokens. The version's "
                    "evidence is re-read from MLflow first and the approval counted on it; when MLflow cannot "
                    "be reached the approval is refused with 503 (code unavailable, Retry-After) and nothing "
                    "is written.",
        tags=TAGS, request=CommentInput, responses=answers({200: PromotionDetail}, (*WRITE_PROBLEMS, 503)),
        examples=[OpenApiExample("approve", request_only=True, value={"comment": "metrics and card reviewed"})],
    )
    def post(self, request: Request, promotion_id: int) -> Response:
        data = parse(CommentInput, request.data)
        # Only the visibility check: the service locks and re-reads the request with what it needs.
        promotion = get_object_or_404(selectors.promotion_requests_visible_to(request.user), pk=promotion_id)
        promotions.promotion_approve(actor=request.user, promotion=promotion, comment=data["comment"])
        return Response(detail_data(promotion))


class PromotionRejectApi(APIView):
    @extend_schema(
        summary="Reject (people only)", tags=TAGS, request=CommentInput, responses=answers({200: PromotionDetail}),
        examples=[OpenApiExample("reject", request_only=True, value={"comment": "precision regressed on EU cards"})],
    )
    def post(self, request: Request, promotion_id: int) -> Response:
        data = parse(CommentInput, request.data)
        promotion = _visible_request(request, promotion_id)
        promotions.promotion_reject(actor=request.user, promotion=promotion, comment=data["comment"])
        return Response(detail_data(promotion))


class PromotionWithdrawApi(APIView):
    required_scope = WRITE

    @extend_schema(
        summary="Withdraw a pending or approved request (the requester or InfoSec)", tags=TAGS,
        request=ReasonInput, responses=answers({200: PromotionDetail}),
        examples=[OpenApiExample("withdraw", request_only=True, value={"reason": "superseded by v8"})],
    )
    def post(self, request: Request, promotion_id: int) -> Response:
        data = parse(ReasonInput, request.data)
        promotion = _visible_request(request, promotion_id)
        promotions.promotion_withdraw(actor=request.user, promotion=promotion, reason=data["reason"])
        return Response(detail_data(promotion))


class PromotionProgressApi(APIView):
    required_scope = WRITE

    class Input(StrictInput):
        class Meta:
            ref_name = "PromotionProgressInput"

        status = serializers.ChoiceField(choices=[(s, s) for s in deployments.PROGRESS_STATUSES])
        traffic_percent = Int(min_value=0, max_value=100, required=False, allow_null=True)
        detail = Text(max_length=500, required=False, allow_blank=True, default="")

    @extend_schema(
        summary="Report a canary/shadow rollout's progress",
        description="For the deploying runtime (token with promotions:write and a deploy_to grant on the model "
                    "or environment), the requester, the model's owner or InfoSec. ``completed`` moves the "
                    "environment's alias to the version; ``failed`` ends the rollout.",
        tags=TAGS, request=Input, responses=answers({200: PromotionDetail}),
        examples=[OpenApiExample("canary step", request_only=True,
                                 value={"status": "step", "traffic_percent": 25, "detail": "error rate 0.1%"})],
    )
    def post(self, request: Request, promotion_id: int) -> Response:
        data = parse(self.Input, request.data)
        promotion = _visible_request(request, promotion_id)
        deployments.promotion_report_progress(
            actor=_actor(request), account=request.user, promotion=promotion, status=data["status"],
            traffic_percent=data.get("traffic_percent"), detail=data.get("detail") or "",
        )
        return Response(detail_data(promotion))


class PromotionRollbackApi(APIView):
    required_scope = WRITE

    @extend_schema(
        summary="Roll back this (live) promotion: the previous version serves again",
        description="The model's owner, a model-owner, InfoSec or break-glass. Only the promotion that is live "
                    "in its environment can be rolled back (409 otherwise).",
        tags=TAGS, request=ReasonInput, responses=answers({200: PromotionDetail}),
        examples=[OpenApiExample("rollback", request_only=True, value={"reason": "latency regression p99 > 80ms"})],
    )
    def post(self, request: Request, promotion_id: int) -> Response:
        data = parse(ReasonInput, request.data)
        promotion = _visible_request(request, promotion_id)
        live = selectors.live_version(model_id=promotion.version.model_id, environment=promotion.environment)
        if live is None or live.promotion_id != promotion.pk:
            raise InvalidState(f"promotion #{promotion.pk} is not the one live in {promotion.environment.name}")
        deployments.promotion_rollback(actor=request.user, model=promotion.version.model,
                                       environment=promotion.environment, reason=data["reason"])
        return Response(detail_data(promotion))


class BreakGlassApi(APIView):
    # People only: an emergency bypass is a person's accountable act.
    class Input(StrictInput):
        class Meta:
            ref_name = "BreakGlassInput"

        model = Text(max_length=256)
        version = Int(min_value=1, max_value=2_147_483_647)
        environment = serializers.SlugField(max_length=50)
        justification = Text(max_length=TEXT_MAX)

    @extend_schema(
        summary="Emergency promotion without approvals (break-glass role, people only)",
        description="Deploys at once and opens a post-hoc review with a deadline.",
        tags=TAGS, request=Input, responses=answers({201: PromotionDetail}),
        examples=[OpenApiExample("hotfix", request_only=True, value={
            "model": "fraud-detector", "version": 8, "environment": "production",
            "justification": "INC-4711: v7 blocks all Maestro cards"})],
    )
    def post(self, request: Request) -> Response:
        data = parse(self.Input, request.data)
        version, environment = _version_and_environment(request, data)
        created = break_glass.promotion_break_glass(actor=request.user, version=version, environment=environment,
                                                    justification=data["justification"])
        return Response(detail_data(created), status=status.HTTP_201_CREATED)


# --- break-glass reviews -------------------------------------------------------------------------


class ReviewOut(serializers.Serializer):
    id = serializers.IntegerField()
    promotion_id = serializers.IntegerField(source="request_id")
    model = serializers.CharField(source="request.version.model.name")
    version = serializers.IntegerField(source="request.version.version")
    environment = serializers.CharField(source="request.environment.name")
    used_by = serializers.CharField(source="request.requested_by.username")
    justification = serializers.CharField(source="request.reason")
    state = serializers.ChoiceField(choices=BreakGlassReview.State.choices)
    due_at = serializers.DateTimeField()
    reviewed_by = serializers.CharField(source="reviewed_by.username", allow_null=True, default=None)
    comment = serializers.CharField()
    reviewed_at = serializers.DateTimeField(allow_null=True)


EXAMPLE_REVIEW = {
    "id": 3, "promotion_id": 57, "model": "fraud-detector", "version": 8, "environment": "production",
    "used_by": "bianca", "justification": "INC-4711", "state": "open", "due_at": "2026-11-30T10:00:00Z",
    "reviewed_by": None, "comment": "", "reviewed_at": None,
}


def _reviews_for(request: Request) -> QuerySet[BreakGlassReview]:
    return selectors.break_glass_reviews_visible_to(request.user).select_related(
        "request__version__model", "request__environment", "request__requested_by", "reviewed_by"
    )


class BreakGlassReviewListApi(APIView):
    required_scope = READ

    class Filters(StrictQuery):
        state = serializers.ChoiceField(choices=BreakGlassReview.State.choices, required=False)

    @extend_schema(
        summary="Break-glass reviews", tags=TAGS,
        parameters=[OpenApiParameter("state", str, enum=BreakGlassReview.State.values)],
        responses=answers({200: page(ReviewOut(many=True), "BreakGlassReviewPage")}, LIST_PROBLEMS),
        examples=[OpenApiExample("open", response_only=True,
                                 value={"count": 1, "next": None, "previous": None, "results": [EXAMPLE_REVIEW]})],
    )
    def get(self, request: Request) -> Response:
        filters = parse_query(self.Filters, request.query_params)
        rows = _reviews_for(request).order_by("due_at", "id")
        if filters.get("state"):
            rows = rows.filter(state=filters["state"])
        paginator = StandardPagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(ReviewOut(page, many=True).data)


class BreakGlassReviewApproveApi(APIView):
    # People only, like approvals.
    @extend_schema(
        summary="Approve a break-glass review (people only)",
        description="By the environment's approval groups (InfoSec where the policy names none); not by whoever "
                    "used break-glass or created the version.",
        tags=TAGS, request=CommentInput, responses=answers({200: ReviewOut}),
        examples=[OpenApiExample("review", request_only=True, value={"comment": "hotfix justified by INC-4711"})],
    )
    def post(self, request: Request, pk: int) -> Response:
        data = parse(CommentInput, request.data)
        review = get_object_or_404(_reviews_for(request), pk=pk)
        break_glass.break_glass_review_approve(actor=request.user, review=review, comment=data["comment"])
        return Response(ReviewOut(_reviews_for(request).get(pk=pk)).data)


class ConcludeInput(StrictInput):
    outcome = serializers.ChoiceField(choices=[(o, o) for o in break_glass.Outcome.ALL])
    comment = Text(max_length=TEXT_MAX)


class BreakGlassReviewConcludeApi(APIView):
    # People only, like approvals.
    @extend_schema(
        summary="Conclude a break-glass review: justified or unjustified (people only)",
        description="By the environment's approval groups (InfoSec where the policy names none); not by whoever "
                    "used break-glass or registered the version, nor their service accounts. 'unjustified' raises "
                    "an unjustified_break_glass compliance violation and, when the policy's "
                    "rollback_unjustified_break_glass is on (the default where approvals are required), rolls "
                    "the release back (or withdraws it if it has not started deploying).",
        tags=TAGS, request=ConcludeInput, responses=answers({200: ReviewOut}),
        examples=[OpenApiExample("unjustified", request_only=True,
                                 value={"outcome": "unjustified", "comment": "no incident justified skipping review"})],
    )
    def post(self, request: Request, pk: int) -> Response:
        data = parse(ConcludeInput, request.data)
        review = get_object_or_404(_reviews_for(request), pk=pk)
        break_glass.break_glass_review_conclude(actor=request.user, review=review, outcome=data["outcome"],
                                                comment=data["comment"])
        return Response(ReviewOut(_reviews_for(request).get(pk=pk)).data)


# --- admission -----------------------------------------------------------------------------------


class AdmissionApi(APIView):
    """What serving platforms call before loading a model: bounded to three queries."""

    required_scope = READ

    class Filters(StrictQuery):
        model = serializers.CharField(max_length=256)
        version = serializers.IntegerField(min_value=1, max_value=2_147_483_647)
        environment = serializers.SlugField(max_length=50)

    class Output(serializers.Serializer):
        class Meta:
            ref_name = "AdmissionOutput"

        allowed = serializers.BooleanField(help_text="The only field to decide on: load the version or not.")
        reason = serializers.CharField(help_text="Why, in words (for logs and people, not for parsing).")
        promotion_id = serializers.IntegerField(
            allow_null=True, help_text="The promotion the answer is about: the one that admits the version, or the "
                                       "one whose re-check refused it.")
        mode = serializers.ChoiceField(choices=["live", "canary", "shadow"], allow_null=True,
                                       help_text="How the version is admitted; null when refused.")
        status = serializers.ChoiceField(
            choices=[selectors.AdmissionStatus.APPROVED, selectors.AdmissionStatus.BREAK_GLASS_REVIEW_OPEN,
                     selectors.AdmissionStatus.BREAK_GLASS_REVIEW_OVERDUE, selectors.AdmissionStatus.ABOVE_CEILING,
                     selectors.AdmissionStatus.NOT_APPROVED],
            help_text="approved; break_glass_review_open (admitted, the post-hoc review is due at review_due_at); "
                      "break_glass_review_overdue, classification_above_ceiling or not_approved (refused).")
        review_due_at = serializers.DateTimeField(
            allow_null=True, help_text="The deadline of the break-glass review not yet approved, if any.")

    @extend_schema(
        summary="May this version run in this environment?",
        description="Allowed when it is the live version under an approved promotion, or the candidate of a "
                    "canary/shadow rollout in progress, and, re-checked at every call, its training data's "
                    "classification is within the environment's ceiling (data of unknown classification only "
                    "where the ceiling is restricted) and it is not a break-glass promotion whose review is "
                    "overdue. A break-glass promotion under an open review is allowed with status "
                    "`break_glass_review_open` and the deadline, never `approved`. A model you may not see "
                    "answers 404.",
        tags=TAGS,
        parameters=[
            OpenApiParameter("model", str, required=True), OpenApiParameter("version", OpenApiTypes.INT,
                                                                            required=True),
            OpenApiParameter("environment", str, required=True),
        ],
        responses=answers({200: Output}, READ_PROBLEMS),
        examples=[
            OpenApiExample("live", response_only=True, value={
                "allowed": True, "reason": "live under an approved promotion", "promotion_id": 42, "mode": "live",
                "status": "approved", "review_due_at": None}),
            OpenApiExample("refused", response_only=True, value={
                "allowed": False, "reason": "version 6 is the approved version of fraud-detector in production",
                "promotion_id": None, "mode": None, "status": "not_approved", "review_due_at": None}),
            OpenApiExample("reclassified", response_only=True, value={
                "allowed": False, "reason": "trained on restricted data, above production's ceiling confidential",
                "promotion_id": 42, "mode": None, "status": "classification_above_ceiling", "review_due_at": None}),
            OpenApiExample("break-glass under review", response_only=True, value={
                "allowed": True, "reason": "live by break-glass; its review is due 2026-03-02 09:30 UTC",
                "promotion_id": 43, "mode": "live", "status": "break_glass_review_open",
                "review_due_at": "2026-03-02T09:30:00Z"}),
            OpenApiExample("break-glass review overdue", response_only=True, value={
                "allowed": False,
                "reason": "live by break-glass, whose review was due 2026-03-02 09:30 UTC and is overdue",
                "promotion_id": 43, "mode": None, "status": "break_glass_review_overdue",
                "review_due_at": "2026-03-02T09:30:00Z"}),
        ],
    )
    def get(self, request: Request) -> Response:
        q = parse_query(self.Filters, request.query_params)
        if not selectors.models_visible_to(request.user).filter(name=q["model"]).exists():
            raise Http404("no such model, or you may not see it")
        found = selectors.admission_check(model_name=q["model"], version=q["version"],
                                          environment_name=q["environment"])
        return Response(self.Output({"allowed": found.allowed, "reason": found.reason,
                                     "promotion_id": found.promotion_id, "mode": found.mode,
                                     "status": found.status, "review_due_at": found.review_due_at}).data)
