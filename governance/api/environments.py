"""``/api/v1/environments…``, ``/api/v1/policies…`` and ``/api/v1/violations…``.

Reads need ``promotions:read`` with a token; every write is a person's (InfoSec's) act, so
writes declare no token scope and the services refuse anyone but InfoSec (403).

A change to a *protected* environment (its policies, alias, ceiling, freeze windows, an
environment joining the path below it, or removing its protection) is not applied: the endpoint
answers ``202 Accepted`` with the change request it created (``Location``: the request), and a
second InfoSec member approves it at ``/api/v1/change-requests/{id}/approve``.
"""
from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.classification import LEVEL_CHOICES
from governance import selectors
from governance.api.change_requests import ChangeRequestOut, change_request_data
from governance.models import (
    ComplianceViolation,
    Environment,
    FreezeWindow,
    GovernanceChangeRequest,
    PromotionPolicy,
    RegisteredModel,
)
from governance.services import change_requests, compliance, environments
from web.api.docs import LIST_PROBLEMS, READ_PROBLEMS, answers, page
from web.api.inputs import Int, StrictInput, StrictQuery, Text, parse, parse_query
from web.api.pagination import StandardPagination

TAGS = ["environments"]
READ = "promotions:read"


class FreezeOut(serializers.Serializer):
    id = serializers.IntegerField()
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    reason = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)


class EnvironmentOut(serializers.Serializer):
    name = serializers.CharField()
    order = serializers.IntegerField()
    mlflow_alias = serializers.CharField()
    max_data_classification = serializers.ChoiceField(choices=LEVEL_CHOICES)
    description = serializers.CharField()
    protected = serializers.BooleanField(help_text="its rules change only with a second InfoSec member's approval")
    kubernetes_namespaces = serializers.SerializerMethodField(
        help_text="the Kubernetes namespaces whose workloads the admission webhook judges against this "
                  "environment's approvals (docs/admission.md)")

    def get_kubernetes_namespaces(self, environment: Environment) -> list[str]:
        # .all(): served by the list's prefetch, one query for a single environment.
        return sorted(n.namespace for n in environment.kubernetes_namespaces.all())


class EnvironmentDetailOut(EnvironmentOut):
    kubernetes_namespaces = serializers.ListField(
        child=serializers.CharField(), help_text="the Kubernetes namespaces the admission webhook governs under it")
    policy = serializers.DictField(help_text="the environment's default policy document", allow_null=True)
    freezes = FreezeOut(many=True, help_text="active and upcoming freeze windows")


EXAMPLE_ENV = {"name": "production", "order": 2, "mlflow_alias": "production",
               "max_data_classification": "confidential", "description": "Live payment traffic", "protected": True,
               "kubernetes_namespaces": ["payments-prod"]}
REASON_HELP = "why: recorded with the change request when the environment is protected"
ACCEPTED = "a change request, when the environment is protected: a second InfoSec member approves it"


def _proposed(request: Request, environment: Environment, kind: str, change: dict[str, Any],
              model: RegisteredModel | None = None, reason: str = "") -> Response:
    """202 with the change request proposing ``change`` to the protected ``environment``."""
    created = change_requests.change_request_create(actor=request.user, environment=environment, kind=kind,
                                                    change=change, model=model, reason=reason)
    return Response(change_request_data(created), status=status.HTTP_202_ACCEPTED,
                    headers={"Location": f"/api/v1/change-requests/{created.pk}"})
EXAMPLE_ENV_DETAIL = {
    **EXAMPLE_ENV,
    "policy": {"approvals": [{"group": "model-risk", "count": 1}, {"group": "infosec", "count": 1}],
               "gates": [{"type": "soak", "hours": 24}]},
    "freezes": [{"id": 1, "starts_at": "2026-12-20T00:00:00Z", "ends_at": "2027-01-02T00:00:00Z",
                 "reason": "peak trading", "created_by": "ines"}],
}


def _environment(name: str) -> Environment:
    return get_object_or_404(Environment, name=name)


def _detail(environment: Environment) -> dict[str, Any]:
    policy = PromotionPolicy.objects.filter(environment=environment, model__isnull=True).first()
    freezes = FreezeWindow.objects.filter(environment=environment, ends_at__gt=timezone.now()).select_related(
        "created_by").order_by("starts_at")
    data = {**EnvironmentOut(environment).data, "policy": policy.rules if policy else None, "freezes": freezes}
    return dict(EnvironmentDetailOut(data).data)


class EnvironmentListCreateApi(APIView):
    required_scopes = {"GET": READ}  # creating is InfoSec's, in person

    class Input(StrictInput):
        class Meta:
            ref_name = "EnvironmentListCreateInput"

        name = serializers.SlugField(max_length=50)
        order = Int(min_value=0, max_value=32767)
        mlflow_alias = serializers.RegexField(r"^[A-Za-z0-9_-]+$", max_length=100)
        max_data_classification = serializers.ChoiceField(choices=LEVEL_CHOICES)
        description = Text(max_length=300, required=False, allow_blank=True, default="")

    @extend_schema(
        summary="Environments, in promotion order", tags=TAGS, operation_id="environments_list",
        responses=answers({200: page(EnvironmentOut(many=True), "EnvironmentPage")}, LIST_PROBLEMS),
        examples=[OpenApiExample("three", response_only=True,
                                 value={"count": 1, "next": None, "previous": None, "results": [EXAMPLE_ENV]})],
    )
    def get(self, request: Request) -> Response:
        paginator = StandardPagination()
        page = paginator.paginate_queryset(Environment.objects.prefetch_related("kubernetes_namespaces")
                                           .order_by("order"), request, view=self)
        return paginator.get_paginated_response(EnvironmentOut(page, many=True).data)

    @extend_schema(
        summary="Add an environment (InfoSec, people only)", tags=TAGS, request=Input,
        description="An environment joining the path just below a protected one changes that environment's "
                    "path: it answers 202 with a change request of the protected environment.",
        responses=answers({201: EnvironmentDetailOut, 202: ChangeRequestOut}),
        examples=[OpenApiExample("pre-prod", request_only=True, value={
            "name": "pre-prod", "order": 5, "mlflow_alias": "pre-prod", "max_data_classification": "confidential",
            "description": "Final checks on mirrored traffic"})],
    )
    def post(self, request: Request) -> Response:
        data = parse(self.Input, request.data)
        above = environments.protected_above(data["order"])
        if above is not None:
            return _proposed(request, above, GovernanceChangeRequest.Kind.ENVIRONMENT_CREATE, data)
        created = environments.environment_create(actor=request.user, **data)
        return Response(_detail(created), status=status.HTTP_201_CREATED)


class EnvironmentDetailApi(APIView):
    required_scopes = {"GET": READ}  # changing is InfoSec's, in person

    class Input(StrictInput):
        class Meta:
            ref_name = "EnvironmentDetailInput"

        mlflow_alias = serializers.RegexField(r"^[A-Za-z0-9_-]+$", max_length=100, required=False)
        max_data_classification = serializers.ChoiceField(choices=LEVEL_CHOICES, required=False)
        description = Text(max_length=300, required=False, allow_blank=True)
        protected = serializers.BooleanField(
            required=False, help_text="true protects it at once; false on a protected one proposes removing it")
        kubernetes_namespaces = serializers.ListField(
            child=Text(max_length=63), max_length=100, required=False, allow_empty=True,
            help_text="the whole list of namespaces the admission webhook governs under this environment "
                      "(replaces the current one; a namespace belongs to at most one environment)")
        reason = Text(max_length=5000, required=False, allow_blank=True, help_text=REASON_HELP)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            changes = set(attrs) - {"reason"}
            if not changes:
                raise ValidationError("nothing to change: give mlflow_alias, max_data_classification, description, "
                                      "kubernetes_namespaces or protected")
            if "protected" in changes and len(changes) > 1:
                raise ValidationError({"protected": ["change the protection on its own, not with other fields"]})
            return attrs

    @extend_schema(summary="An environment with its default policy and freeze windows", tags=TAGS,
                   responses=answers({200: EnvironmentDetailOut}, READ_PROBLEMS),
                   examples=[OpenApiExample("production", response_only=True, value=EXAMPLE_ENV_DETAIL)])
    def get(self, request: Request, name: str) -> Response:
        return Response(_detail(_environment(name)))

    @extend_schema(
        summary="Change an environment (InfoSec, people only)", tags=TAGS, request=Input,
        description="On a protected environment, answers 202 with a change request (" + ACCEPTED + ").",
        responses=answers({200: EnvironmentDetailOut, 202: ChangeRequestOut}),
        examples=[OpenApiExample("tighten", request_only=True, value={"max_data_classification": "internal"})],
    )
    def patch(self, request: Request, name: str) -> Response:
        data = parse(self.Input, request.data)
        environment = _environment(name)
        reason = data.pop("reason", "")
        protected = data.pop("protected", None)
        if protected is True:
            environments.environment_protect(actor=request.user, environment=environment)
        elif protected is False:
            if environment.protected:
                return _proposed(request, environment, GovernanceChangeRequest.Kind.ENVIRONMENT_PROTECTION,
                                 {"protected": False}, reason=reason)
        elif environment.protected:
            return _proposed(request, environment, GovernanceChangeRequest.Kind.ENVIRONMENT_UPDATE, data,
                             reason=reason)
        else:
            environments.environment_update(actor=request.user, environment=environment, **data)
        return Response(_detail(environment))


class FreezeWindowCreateApi(APIView):
    # People only (InfoSec).
    class Input(StrictInput):
        class Meta:
            ref_name = "FreezeWindowCreateInput"

        starts_at = serializers.DateTimeField()
        ends_at = serializers.DateTimeField()
        reason = Text(max_length=300)

    @extend_schema(
        summary="Declare a freeze window (InfoSec, people only)", tags=TAGS, request=Input,
        description="On a protected environment, answers 202 with a change request (" + ACCEPTED + ").",
        responses=answers({201: FreezeOut, 202: ChangeRequestOut}),
        examples=[OpenApiExample("peak", request_only=True, value={
            "starts_at": "2026-12-20T00:00:00Z", "ends_at": "2027-01-02T00:00:00Z", "reason": "peak trading"})],
    )
    def post(self, request: Request, name: str) -> Response:
        data = parse(self.Input, request.data)
        environment = _environment(name)
        if environment.protected:
            change = {"starts_at": data["starts_at"].isoformat(), "ends_at": data["ends_at"].isoformat(),
                      "reason": data["reason"]}
            return _proposed(request, environment, GovernanceChangeRequest.Kind.FREEZE_WINDOW_CREATE, change)
        freeze = environments.freeze_window_create(actor=request.user, environment=environment, **data)
        return Response(FreezeOut(freeze).data, status=status.HTTP_201_CREATED)


# --- policies ------------------------------------------------------------------------------------


class PolicyOut(serializers.Serializer):
    environment = serializers.CharField(source="environment.name")
    model = serializers.CharField(source="model.name", allow_null=True, default=None)
    rules = serializers.DictField()
    updated_at = serializers.DateTimeField()


EXAMPLE_POLICY = {"environment": "staging", "model": None, "updated_at": "2026-11-01T09:00:00Z",
                  "rules": {"approvals": [{"group": "approver", "count": 1}],
                            "gates": [{"type": "model_card"}, {"type": "data_classification"}],
                            "approval_expiry_days": 14}}


class PolicyListApi(APIView):
    required_scope = READ

    class Filters(StrictQuery):
        environment = serializers.SlugField(max_length=50, required=False)

    @extend_schema(
        summary="Promotion policies: defaults, and those of models you may see", tags=TAGS,
        parameters=[OpenApiParameter("environment", str)],
        responses=answers({200: page(PolicyOut(many=True), "PolicyPage")}, LIST_PROBLEMS),
        examples=[OpenApiExample("staging", response_only=True,
                                 value={"count": 1, "next": None, "previous": None, "results": [EXAMPLE_POLICY]})],
    )
    def get(self, request: Request) -> Response:
        filters = parse_query(self.Filters, request.query_params)
        rows = selectors.policies_visible_to(request.user).select_related("environment", "model").order_by(
            "environment__order", "model__name")
        if filters.get("environment"):
            rows = rows.filter(environment__name=filters["environment"])
        paginator = StandardPagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(PolicyOut(page, many=True).data)


class PolicySetApi(APIView):
    # People only (InfoSec).
    class Input(StrictInput):
        class Meta:
            ref_name = "PolicySetInput"

        model = Text(max_length=256, required=False, allow_null=True,
                                      help_text="set the policy of this model only (default: the environment's)")
        rules = serializers.DictField(help_text="the policy document (docs/promotions.md)")
        reason = Text(max_length=5000, required=False, allow_blank=True, help_text=REASON_HELP)

    @extend_schema(
        summary="Create or replace a policy (InfoSec, people only)", tags=TAGS, request=Input,
        description="On a protected environment, answers 202 with a change request (" + ACCEPTED + "). A policy "
                    "below the floor configured for the environment (POLICY_FLOOR) is refused (400 below_floor).",
        responses=answers({200: PolicyOut, 202: ChangeRequestOut}),
        examples=[OpenApiExample("metric gate for one model", request_only=True, value={
            "model": "fraud-detector", "rules": {
                "approvals": [{"group": "approver", "count": 2}],
                "gates": [{"type": "metric", "metric": "auc", "op": ">=", "value": 0.9}]}})],
    )
    def put(self, request: Request, environment: str) -> Response:
        data = parse(self.Input, request.data)
        env = _environment(environment)
        model = None
        if data.get("model"):
            model = selectors.models_visible_to(request.user).filter(name=data["model"]).first()
            if model is None:
                raise ValidationError({"model": [f"no model {data['model']!r}, or you may not see it"]})
        if env.protected:
            return _proposed(request, env, GovernanceChangeRequest.Kind.POLICY_SET, {"rules": data["rules"]},
                             model=model, reason=data.get("reason", ""))
        policy = environments.policy_set(actor=request.user, environment=env, rules=data["rules"], model=model)
        return Response(PolicyOut(policy).data)


# --- violations ----------------------------------------------------------------------------------


class ViolationOut(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=ComplianceViolation.Kind.choices)
    subject_type = serializers.CharField()
    subject_id = serializers.CharField()
    summary = serializers.CharField()
    details = serializers.DictField()
    detected_at = serializers.DateTimeField()
    reverted = serializers.BooleanField()
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", allow_null=True, default=None)
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    acknowledgement = serializers.CharField()


EXAMPLE_VIOLATION = {
    "id": 9, "kind": "out_of_band_alias", "subject_type": "registered_model", "subject_id": "fraud-detector",
    "summary": "alias production moved to v9 outside governance (reverted)", "details": {"alias": "production"},
    "detected_at": "2026-11-29T09:00:00Z", "reverted": True, "acknowledged_by": None, "acknowledged_at": None,
    "acknowledgement": "",
}


class ViolationListApi(APIView):
    required_scope = READ

    class Filters(StrictQuery):
        kind = serializers.ChoiceField(choices=ComplianceViolation.Kind.choices, required=False)
        acknowledged = serializers.BooleanField(required=False, allow_null=True, default=None)

    @extend_schema(
        summary="Compliance violations (InfoSec and auditors)", tags=TAGS,
        parameters=[OpenApiParameter("kind", str, enum=ComplianceViolation.Kind.values),
                    OpenApiParameter("acknowledged", bool)],
        responses=answers({200: page(ViolationOut(many=True), "ViolationPage")}, LIST_PROBLEMS),
        examples=[OpenApiExample("one", response_only=True,
                                 value={"count": 1, "next": None, "previous": None, "results": [EXAMPLE_VIOLATION]})],
    )
    def get(self, request: Request) -> Response:
        if not selectors.may_see_violations(request.user):
            raise PermissionDenied("only InfoSec and auditors may read compliance violations")
        filters = parse_query(self.Filters, request.query_params)
        rows = selectors.violations_visible_to(request.user).select_related("acknowledged_by")
        if filters.get("kind"):
            rows = rows.filter(kind=filters["kind"])
        if filters.get("acknowledged") is not None:
            rows = rows.filter(acknowledged_at__isnull=not filters["acknowledged"])
        paginator = StandardPagination()
        page = paginator.paginate_queryset(rows.order_by("-detected_at", "-id"), request, view=self)
        return paginator.get_paginated_response(ViolationOut(page, many=True).data)


class ViolationAcknowledgeApi(APIView):
    # People only (InfoSec).
    class Input(StrictInput):
        class Meta:
            ref_name = "ViolationAcknowledgeInput"

        comment = Text(max_length=5000)

    @extend_schema(
        summary="Acknowledge a violation (InfoSec, people only)", tags=TAGS, request=Input,
        responses=answers({200: ViolationOut}),
        examples=[OpenApiExample("ack", request_only=True,
                                 value={"comment": "reverted by the sync; ops reminded of the runbook"})],
    )
    def post(self, request: Request, pk: int) -> Response:
        data = parse(self.Input, request.data)
        violation = get_object_or_404(selectors.violations_visible_to(request.user), pk=pk)
        done = compliance.violation_acknowledge(actor=request.user, violation=violation, comment=data["comment"])
        return Response(ViolationOut(done).data)
