"""``/api/v1/models…``: the registered models and versions the caller may see.

Read-only, but for one report: a pipeline's API token saying it registered a version
(``POST …/versions/<n>/registered-by``). A model the caller may not see answers 404,
exactly like one that does not exist.
"""
from __future__ import annotations

from typing import Any

from django.db.models import Count, Max, Prefetch, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import selectors
from governance.errors import NotPermitted
from governance.models import Environment, Lineage, LiveDeployment, ModelVersion, RegisteredModel
from governance.services import model_versions
from governance.services.lineage import lineage_state
from web.api.auth import token_of
from web.api.docs import LIST_PROBLEMS, READ_PROBLEMS, answers, page
from web.api.inputs import StrictInput, StrictQuery, Text, parse, parse_query
from web.api.pagination import StandardPagination

TAGS = ["models"]
NOT_FOUND = "no such model, or you may not see it"


def _visible_model(request: Request, name: str) -> RegisteredModel:
    return get_object_or_404(selectors.models_visible_to(request.user), name=name)


class _Live(serializers.Serializer):
    environment = serializers.CharField(source="environment.name")
    alias = serializers.CharField(source="environment.mlflow_alias")
    version = serializers.IntegerField(source="version.version")
    since = serializers.DateTimeField()
    promotion_id = serializers.IntegerField()


class ModelListApi(APIView):
    required_scope = "models:read"

    class Filters(StrictQuery):
        name = serializers.CharField(required=False, max_length=256, help_text="part of the model's name")
        owner = serializers.CharField(required=False, max_length=150, help_text="the owner's username")

    class Output(serializers.Serializer):
        class Meta:
            ref_name = "ModelListOutput"

        name = serializers.CharField()
        description = serializers.CharField()
        owner = serializers.CharField(source="owner.username", allow_null=True, default=None)
        latest_version = serializers.IntegerField(allow_null=True)
        live = _Live(many=True)

    @extend_schema(
        summary="List the models you may see",
        operation_id="models_list",
        tags=TAGS,
        parameters=[
            OpenApiParameter("name", str, description="part of the model's name (case-insensitive)"),
            OpenApiParameter("owner", str, description="the owner's username"),
        ],
        responses=answers({200: page(Output(many=True), "ModelPage")}, LIST_PROBLEMS),
        examples=[OpenApiExample("one model", response_only=True, value={
            "count": 1, "next": None, "previous": None, "results": [{
                "name": "fraud-detector", "description": "Card fraud scoring", "owner": "olga",
                "latest_version": 7, "live": [{"environment": "production", "alias": "production", "version": 6,
                                                "since": "2026-11-20T09:00:00Z", "promotion_id": 41}]}]})],
    )
    def get(self, request: Request) -> Response:
        filters = parse_query(self.Filters, request.query_params)
        models: QuerySet[RegisteredModel] = (
            selectors.models_visible_to(request.user)
            .select_related("owner")
            .annotate(latest_version=Max("versions__version"))
            .prefetch_related(Prefetch("live", LiveDeployment.objects.select_related("environment", "version")
                                       .order_by("environment__order")))
            .order_by("name")
        )
        if filters.get("name"):
            models = models.filter(name__icontains=filters["name"])
        if filters.get("owner"):
            models = models.filter(owner__username=filters["owner"])
        paginator = StandardPagination()
        page = paginator.paginate_queryset(models, request, view=self)
        return paginator.get_paginated_response(self.Output(page, many=True).data)


class ModelDetailApi(APIView):
    required_scope = "models:read"

    class Output(serializers.Serializer):
        class Meta:
            ref_name = "ModelDetailOutput"

        class Stage(serializers.Serializer):
            environment = serializers.CharField()
            alias = serializers.CharField()
            live_version = serializers.IntegerField(allow_null=True)
            since = serializers.DateTimeField(allow_null=True)
            promotion_id = serializers.IntegerField(allow_null=True)

        name = serializers.CharField()
        description = serializers.CharField()
        tags = serializers.DictField()
        owner = serializers.CharField(allow_null=True)
        versions = serializers.IntegerField(help_text="number of versions")
        latest_version = serializers.IntegerField(allow_null=True)
        environments = Stage(many=True, help_text="per environment (in promotion order): the version its alias "
                                                  "serves under an approved promotion, if any")
        mlflow_created_at = serializers.DateTimeField(allow_null=True)
        synced_at = serializers.DateTimeField(allow_null=True)

    @extend_schema(
        summary="A model and what is live where",
        tags=TAGS,
        responses=answers({200: Output}, READ_PROBLEMS),
        examples=[OpenApiExample("fraud-detector", response_only=True, value={
            "name": "fraud-detector", "description": "Card fraud scoring", "tags": {"team": "payments"},
            "owner": "olga", "versions": 7, "latest_version": 7,
            "environments": [
                {"environment": "dev", "alias": "dev", "live_version": 7, "since": "2026-11-27T10:00:00Z",
                 "promotion_id": 52},
                {"environment": "production", "alias": "production", "live_version": None, "since": None,
                 "promotion_id": None}],
            "mlflow_created_at": "2026-01-10T08:00:00Z", "synced_at": "2026-11-29T10:00:00Z"})],
    )
    def get(self, request: Request, name: str) -> Response:
        model = get_object_or_404(
            selectors.models_visible_to(request.user).select_related("owner"), name=name
        )
        stats = model.versions.aggregate(n=Max("version"), c=Count("id"))
        live = {d.environment_id: d for d in LiveDeployment.objects.filter(model=model).select_related("version")}
        stages = []
        for env in Environment.objects.order_by("order"):
            d = live.get(env.pk)
            stages.append({"environment": env.name, "alias": env.mlflow_alias,
                           "live_version": d.version.version if d else None, "since": d.since if d else None,
                           "promotion_id": d.promotion_id if d else None})
        data = {
            "name": model.name, "description": model.description, "tags": model.tags or {},
            "owner": model.owner.username if model.owner else None, "versions": stats["c"],
            "latest_version": stats["n"], "environments": stages, "mlflow_created_at": model.mlflow_created_at,
            "synced_at": model.synced_at,
        }
        return Response(self.Output(data).data)


class _VersionSummary(serializers.Serializer):
    model = serializers.CharField(source="model.name")
    version = serializers.IntegerField()
    run_id = serializers.CharField()
    artifact_digest = serializers.CharField()
    creator = serializers.CharField(help_text="MLflow's creator name: set by the client, never trusted")
    registered_by = serializers.SerializerMethodField(
        help_text="user:<id> of the account the product knows registered the version, or null: no trusted "
                  "identity for the creator")
    registered_via = serializers.CharField(help_text="identity_link or api_token (\"\" when unknown)")
    data_classification = serializers.CharField(help_text="effective classification of the training data "
                                                          "(\"\" when unknown)")
    mlflow_status = serializers.CharField()
    mlflow_created_at = serializers.DateTimeField(allow_null=True)

    def get_registered_by(self, obj: Any) -> str | None:
        pk = obj.get("registered_by_id") if isinstance(obj, dict) else obj.registered_by_id
        return f"user:{pk}" if pk is not None else None


class ModelVersionListApi(APIView):
    required_scope = "models:read"

    class Output(_VersionSummary):
        class Meta:
            ref_name = "ModelVersionListOutput"

        pass

    @extend_schema(
        summary="Versions of a model, newest first",
        operation_id="models_versions_list",
        tags=TAGS,
        responses=answers({200: page(Output(many=True), "ModelVersionPage")}, READ_PROBLEMS),
        examples=[OpenApiExample("two versions", response_only=True, value={
            "count": 2, "next": None, "previous": None, "results": [
                {"model": "fraud-detector", "version": 7, "run_id": "8c1e…", "artifact_digest": "sha256:3f…",
                 "creator": "ds-creator", "data_classification": "internal", "mlflow_status": "READY",
                 "mlflow_created_at": "2026-11-01T12:00:00Z"}]})],
    )
    def get(self, request: Request, name: str) -> Response:
        model = _visible_model(request, name)
        versions = ModelVersion.objects.filter(model=model).select_related("model").order_by("-version")
        paginator = StandardPagination()
        page = paginator.paginate_queryset(versions, request, view=self)
        return paginator.get_paginated_response(self.Output(page, many=True).data)


class ModelVersionDetailApi(APIView):
    required_scope = "models:read"

    class Output(_VersionSummary):
        class Meta:
            ref_name = "ModelVersionDetailOutput"

        class LineageOut(serializers.Serializer):
            complete = serializers.BooleanField(help_text="every MLflow input is a linked, classified dataset")
            level = serializers.CharField(allow_null=True)
            datasets = serializers.ListField(child=serializers.DictField(), help_text="linked datasets: dataset, "
                                             "role, source, level")
            unknown_inputs = serializers.ListField(child=serializers.CharField())
            unclassified = serializers.ListField(child=serializers.CharField())

        source = serializers.CharField()
        description = serializers.CharField()
        tags = serializers.DictField()
        metrics = serializers.DictField()
        params = serializers.DictField()
        lineage = LineageOut()
        live_in = serializers.ListField(child=serializers.CharField(), help_text="environments it is live in")

    @extend_schema(
        summary="One version: metrics, run, artifact digest, classification and lineage",
        tags=TAGS,
        parameters=[OpenApiParameter("version", OpenApiTypes.INT, OpenApiParameter.PATH)],
        responses=answers({200: Output}, READ_PROBLEMS),
        examples=[OpenApiExample("fraud-detector v7", response_only=True, value={
            "model": "fraud-detector", "version": 7, "run_id": "8c1e0f…", "artifact_digest": "sha256:3f…",
            "creator": "ds-creator", "data_classification": "confidential", "mlflow_status": "READY",
            "mlflow_created_at": "2026-11-01T12:00:00Z", "source": "mlflow-artifacts:/1/8c1e0f…/artifacts/model",
            "description": "Gradient-boosted fraud scorer…", "tags": {}, "metrics": {"auc": 0.94},
            "params": {"max_depth": "6"},
            "lineage": {"complete": True, "level": "confidential", "unknown_inputs": [], "unclassified": [],
                        "datasets": [{"dataset": "card-transactions", "role": "training", "source": "mlflow",
                                      "level": "confidential"}]},
            "live_in": ["staging"]})],
    )
    def get(self, request: Request, name: str, version: int) -> Response:
        found = get_object_or_404(
            selectors.model_versions_visible_to(request.user).select_related("model"), model__name=name,
            version=version,
        )
        state = lineage_state(found)
        links = Lineage.objects.filter(version=found).select_related("dataset").order_by("dataset__name", "role")
        data: dict[str, Any] = {
            **{f: getattr(found, f) for f in (
                "version", "run_id", "artifact_digest", "creator", "registered_by_id", "registered_via",
                "data_classification", "mlflow_status",
                "mlflow_created_at", "source", "description", "tags", "metrics", "params")},
            "model": found.model,
            "lineage": {
                "complete": state.complete, "level": state.level, "unknown_inputs": list(state.unknown),
                "unclassified": list(state.unclassified),
                "datasets": [{"dataset": link.dataset.name, "role": link.role, "source": link.source,
                              "level": link.dataset.effective_level} for link in links],
            },
            "live_in": list(found.live.order_by("environment__order").values_list("environment__name", flat=True)),
        }
        return Response(self.Output(data).data)


class ModelVersionRegisteredByApi(APIView):
    """A pipeline reports that it registered a version: its service account becomes the trusted registrant."""

    required_scope = "promotions:write"

    class Input(StrictInput):
        class Meta:
            ref_name = "ModelVersionRegisteredByInput"

        run_id = Text(max_length=64, help_text="the MLflow run the version was registered from")

    class Output(serializers.Serializer):
        class Meta:
            ref_name = "ModelVersionRegisteredByOutput"

        model = serializers.CharField()
        version = serializers.IntegerField()
        registered_by = serializers.CharField()
        registered_via = serializers.CharField()

    @extend_schema(
        summary="Report that your pipeline registered this version",
        description="Only a service account's API token (scope promotions:write) that can see the model. The "
                    "first report wins; the same account reporting again is a no-op; another account's later "
                    "report is refused 409. The run id must be the version's MLflow run.",
        tags=TAGS,
        parameters=[OpenApiParameter("version", OpenApiTypes.INT, OpenApiParameter.PATH)],
        request=Input,
        responses=answers({200: Output}),
        examples=[OpenApiExample("report", request_only=True, value={"run_id": "8c1e0f…"})],
    )
    def post(self, request: Request, name: str, version: int) -> Response:
        data = parse(self.Input, request.data)
        found = get_object_or_404(
            selectors.model_versions_visible_to(request.user).select_related("model"), model__name=name,
            version=version,
        )
        token = token_of(request)
        if token is None:
            raise NotPermitted("only a pipeline's API token may report that it registered a version")
        updated = model_versions.model_version_report_registered(
            actor=request.user, version=found, token_id=token.pk, run_id=data["run_id"]
        )
        return Response(self.Output({
            "model": found.model.name, "version": updated.version, "registered_by": f"user:{updated.registered_by_id}",
            "registered_via": updated.registered_via,
        }).data)
