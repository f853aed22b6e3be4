"""``/api/v1/datasets…`` and ``/api/v1/lineage``: the data catalog, its classification and lineage.

A dataset the caller may not see (``datasets_visible_to``) answers 404, like one that
does not exist. Changes go through ``access.services.datasets``; who may make them is decided
there (data stewards and InfoSec classify), and a refused change writes nothing.
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.api.common import field_error, paginate
from access.classification import LEVELS
from access.models import PII_CATEGORIES, Dataset, DatasetField
from access.selectors import datasets_visible_to
from access.services.datasets import dataset_classify, dataset_create, dataset_field_classify
from audit.ledger import Actor
from governance.models import Lineage
from governance.services.lineage import lineage_link, lineage_versions_visible_to
from web.api.docs import READ_PROBLEMS, answers, page
from web.api.inputs import StrictInput, StrictQuery, parse, parse_query

TAGS = ["datasets"]
LINEAGE_TAGS = ["lineage"]
NOT_FOUND = "no such dataset, or you may not see it"


def visible_dataset(request: Request, name: str) -> Dataset:
    return get_object_or_404(datasets_visible_to(request.user).select_related("owner"), name=name)


# --- shapes ----------------------------------------------------------------------------------------


class FieldOut(serializers.Serializer):
    name = serializers.CharField()
    level = serializers.ChoiceField(choices=LEVELS)
    pii_categories = serializers.ListField(child=serializers.CharField())
    classified = serializers.BooleanField()
    classified_at = serializers.DateTimeField(allow_null=True)
    classification_reason = serializers.CharField()


def field_data(column: DatasetField) -> dict[str, Any]:
    return {
        "name": column.name, "level": column.level, "pii_categories": sorted(column.pii_categories or []),
        "classified": column.classified_at is not None, "classified_at": column.classified_at,
        "classification_reason": column.classification_reason,
    }


class DatasetOut(serializers.Serializer):
    name = serializers.CharField()
    owner = serializers.CharField(help_text="the owner's username")
    source_uri = serializers.CharField()
    description = serializers.CharField()
    level = serializers.ChoiceField(choices=LEVELS, help_text="the dataset's own classification")
    effective_level = serializers.ChoiceField(choices=LEVELS, help_text="the highest of its own and its fields'")
    classified = serializers.BooleanField(help_text="false until a steward classified it (level is then public)")
    pii_categories = serializers.ListField(child=serializers.CharField(), help_text="its own categories")
    effective_pii_categories = serializers.ListField(child=serializers.CharField(),
                                                     help_text="its own and its fields' categories")
    created_at = serializers.DateTimeField()


def dataset_data(dataset: Dataset, columns: list[DatasetField]) -> dict[str, Any]:
    effective = set(dataset.pii_categories or [])
    for column in columns:
        effective.update(column.pii_categories or [])
    return {
        "name": dataset.name, "owner": dataset.owner.username, "source_uri": dataset.source_uri,
        "description": dataset.description, "level": dataset.level, "effective_level": dataset.effective_level,
        "classified": dataset.classified_at is not None, "pii_categories": sorted(dataset.pii_categories or []),
        "effective_pii_categories": sorted(effective), "created_at": dataset.created_at,
    }


class TrainedModelOut(serializers.Serializer):
    model = serializers.CharField()
    version = serializers.IntegerField()
    role = serializers.ChoiceField(choices=Lineage.Role.values)
    source = serializers.ChoiceField(choices=Lineage.Source.values)
    data_classification = serializers.CharField()


class DatasetDetailOut(DatasetOut):
    classification_reason = serializers.CharField()
    classified_at = serializers.DateTimeField(allow_null=True)
    classified_by = serializers.CharField(allow_null=True)
    fields = FieldOut(many=True)
    models = TrainedModelOut(many=True, help_text="model versions linked to it (the ones you may see)")


DATASET_EXAMPLE = {
    "name": "customers", "owner": "olga", "source_uri": "s3://lake/customers/", "description": "CRM extract",
    "level": "confidential", "effective_level": "restricted", "classified": True,
    "pii_categories": ["email"], "effective_pii_categories": ["email", "national_id"],
    "created_at": "2026-11-02T08:00:00Z",
}
DETAIL_EXAMPLE = {
    **DATASET_EXAMPLE, "classification_reason": "CRM data with contact details",
    "classified_at": "2026-11-03T10:00:00Z", "classified_by": "sam",
    "fields": [{"name": "ssn", "level": "restricted", "pii_categories": ["national_id"], "classified": True,
                "classified_at": "2026-11-03T10:05:00Z", "classification_reason": "national id"}],
    "models": [{"model": "fraud-detector", "version": 7, "role": "training", "source": "mlflow",
                "data_classification": "restricted"}],
}


def _detail(request: Request, dataset: Dataset) -> dict[str, Any]:
    columns = list(dataset.fields.select_related(None).order_by("name"))
    links = (
        Lineage.objects.filter(dataset=dataset, version__in=lineage_versions_visible_to(request.user))
        .select_related("version__model").order_by("version__model__name", "version__version", "role")
    )
    classified_by = (
        User.objects.filter(pk=dataset.classified_by_id).values_list("username", flat=True).first()
        if dataset.classified_by_id else None
    )
    return {
        **dataset_data(dataset, columns),
        "classification_reason": dataset.classification_reason, "classified_at": dataset.classified_at,
        "classified_by": classified_by, "fields": [field_data(c) for c in columns],
        "models": [{"model": link.version.model.name, "version": link.version.version, "role": link.role,
                    "source": link.source, "data_classification": link.version.data_classification}
                   for link in links],
    }


class ClassificationIn(StrictInput):
    level = serializers.ChoiceField(choices=LEVELS)
    pii_categories = serializers.ListField(
        child=serializers.ChoiceField(choices=PII_CATEGORIES), max_length=len(PII_CATEGORIES), default=list,
        help_text="personal data it carries (empty for none); any category needs confidential or higher",
    )
    reason = serializers.CharField(max_length=5000)


# --- datasets ---------------------------------------------------------------------------------------


class DatasetListApi(APIView):
    required_scopes = {"GET": "access:read", "POST": "access:write"}

    class Filters(StrictQuery):
        class Meta:
            ref_name = "AccessDatasetListFilters"

        level = serializers.ChoiceField(choices=LEVELS, required=False, help_text="effective level")
        pii = serializers.ChoiceField(choices=PII_CATEGORIES, required=False,
                                      help_text="carries this PII category (itself or a field)")
        owner = serializers.CharField(required=False, max_length=150, help_text="the owner's username")
        name = serializers.CharField(required=False, max_length=200, help_text="part of the name")

    class Input(StrictInput):
        class Meta:
            ref_name = "AccessDatasetListInput"

        name = serializers.CharField(max_length=200)
        owner = serializers.CharField(max_length=150, help_text="the owner's username")
        source_uri = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")
        description = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")

    @extend_schema(
        operation_id="datasets_list",
        summary="List the datasets you may see", tags=TAGS,
        parameters=[
            OpenApiParameter("level", str, enum=list(LEVELS), description="effective classification level"),
            OpenApiParameter("pii", str, enum=list(PII_CATEGORIES), description="carries this PII category"),
            OpenApiParameter("owner", str, description="the owner's username"),
            OpenApiParameter("name", str, description="part of the name (case-insensitive)"),
        ],
        responses=answers({200: page(DatasetOut(many=True), "AccessDatasetPage")}, READ_PROBLEMS),
        examples=[OpenApiExample("one dataset", response_only=True, value={
            "count": 1, "next": None, "previous": None, "results": [DATASET_EXAMPLE]})],
    )
    def get(self, request: Request) -> Response:
        filters = parse_query(self.Filters, request.query_params)
        rows: QuerySet[Dataset] = datasets_visible_to(request.user).select_related("owner").order_by("name")
        if "level" in filters:
            rows = rows.filter(effective_level=filters["level"])
        if "owner" in filters:
            rows = rows.filter(owner__username=filters["owner"])
        if "name" in filters:
            rows = rows.filter(name__icontains=filters["name"])
        if "pii" in filters:
            # JSON text match: portable (SQLite has no JSON containment) and exact thanks to the quotes.
            needle = f'"{filters["pii"]}"'
            rows = rows.filter(Q(pii_categories__icontains=needle) | Exists(
                DatasetField.objects.filter(dataset=OuterRef("pk"), pii_categories__icontains=needle)))
        rows = rows.prefetch_related(Prefetch("fields", DatasetField.objects.only("dataset_id", "pii_categories")))
        return paginate(request, self, rows, lambda page: [dataset_data(d, list(d.fields.all())) for d in page])

    @extend_schema(
        summary="Register a dataset (data steward or InfoSec)", tags=TAGS, request=Input,
        responses=answers({201: DatasetDetailOut}),
        examples=[OpenApiExample("register", request_only=True, value={
            "name": "customers", "owner": "olga", "source_uri": "s3://lake/customers/", "description": "CRM extract"})],
    )
    def post(self, request: Request) -> Response:
        data = parse(self.Input, request.data)
        owner = User.objects.filter(username=data["owner"], is_active=True).first()
        if owner is None:
            raise field_error("owner", f"no active user named {data['owner']!r}")
        dataset = dataset_create(actor=request.user, name=data["name"], owner=owner,
                                         source_uri=data["source_uri"], description=data["description"])
        return Response(_detail(request, dataset), status=status.HTTP_201_CREATED)


class DatasetDetailApi(APIView):
    required_scope = "access:read"

    @extend_schema(
        summary="A dataset: fields, own and effective classification, PII, models trained on it", tags=TAGS,
        responses=answers({200: DatasetDetailOut}, READ_PROBLEMS),
        examples=[OpenApiExample("dataset", response_only=True, value=DETAIL_EXAMPLE)],
    )
    def get(self, request: Request, name: str) -> Response:
        return Response(_detail(request, visible_dataset(request, name)))


class DatasetClassifyApi(APIView):
    required_scope = "access:write"

    @extend_schema(
        summary="Classify a dataset (data steward or InfoSec)", tags=TAGS, request=ClassificationIn,
        responses=answers({200: DatasetDetailOut}),
        examples=[OpenApiExample("classify", request_only=True, value={
            "level": "confidential", "pii_categories": ["email"], "reason": "CRM data with contact details"})],
    )
    def post(self, request: Request, name: str) -> Response:
        dataset = visible_dataset(request, name)
        data = parse(ClassificationIn, request.data)
        dataset = dataset_classify(actor=request.user, dataset=dataset, level=data["level"],
                                           pii_categories=data["pii_categories"], reason=data["reason"])
        return Response(_detail(request, visible_dataset(request, dataset.name)))


class DatasetFieldsApi(APIView):
    required_scopes = {"GET": "access:read", "POST": "access:write"}

    class Input(ClassificationIn):
        class Meta:
            ref_name = "AccessDatasetFieldsInput"

        name = serializers.CharField(max_length=200)

    @extend_schema(
        operation_id="datasets_fields_list",
        summary="The fields of a dataset", tags=TAGS,
        responses=answers({200: FieldOut(many=True)}, READ_PROBLEMS),
        examples=[OpenApiExample("fields", response_only=True, value=DETAIL_EXAMPLE["fields"])])
    def get(self, request: Request, name: str) -> Response:
        dataset = visible_dataset(request, name)
        return Response([field_data(c) for c in dataset.fields.order_by("name")])

    @extend_schema(
        summary="Add (and classify) a field (data steward or InfoSec)", tags=TAGS, request=Input,
        responses=answers({201: FieldOut}),
        examples=[OpenApiExample("add field", request_only=True, value={
            "name": "ssn", "level": "restricted", "pii_categories": ["national_id"], "reason": "national id"})],
    )
    def post(self, request: Request, name: str) -> Response:
        dataset = visible_dataset(request, name)
        data = parse(self.Input, request.data)
        if dataset.fields.filter(name=data["name"]).exists():
            raise field_error("name", f"field {data['name']!r} exists; POST to its /classification to change it")
        column = dataset_field_classify(
            actor=request.user, dataset=dataset, field_name=data["name"], level=data["level"],
            pii_categories=data["pii_categories"], reason=data["reason"])
        return Response(field_data(column), status=status.HTTP_201_CREATED)


class DatasetFieldClassifyApi(APIView):
    required_scope = "access:write"

    @extend_schema(
        summary="Classify a field of a dataset (data steward or InfoSec)", tags=TAGS, request=ClassificationIn,
        responses=answers({200: FieldOut}),
        examples=[OpenApiExample("classify field", request_only=True, value={
            "level": "restricted", "pii_categories": ["national_id"], "reason": "national id"})],
    )
    def post(self, request: Request, name: str, field: str) -> Response:
        dataset = visible_dataset(request, name)
        get_object_or_404(DatasetField, dataset=dataset, name=field)
        data = parse(ClassificationIn, request.data)
        column = dataset_field_classify(
            actor=request.user, dataset=dataset, field_name=field, level=data["level"],
            pii_categories=data["pii_categories"], reason=data["reason"])
        return Response(field_data(column))


# --- lineage -----------------------------------------------------------------------------------------


class LineageOut(serializers.Serializer):
    class Meta:
        ref_name = "AccessLineageLink"

    model = serializers.CharField()
    version = serializers.IntegerField()
    dataset = serializers.CharField()
    role = serializers.ChoiceField(choices=Lineage.Role.values)
    source = serializers.ChoiceField(choices=Lineage.Source.values)
    created_at = serializers.DateTimeField()


def lineage_data(link: Lineage) -> dict[str, Any]:
    return {"model": link.version.model.name, "version": link.version.version, "dataset": link.dataset.name,
            "role": link.role, "source": link.source, "created_at": link.created_at}


LINEAGE_EXAMPLE = {"model": "fraud-detector", "version": 7, "dataset": "customers", "role": "training",
                   "source": "declared", "created_at": "2026-11-05T12:00:00Z"}


class LineageApi(APIView):
    required_scopes = {"GET": "access:read", "POST": "access:write"}

    class Filters(StrictQuery):
        class Meta:
            ref_name = "AccessLineageFilters"

        model = serializers.CharField(required=False, max_length=256)
        version = serializers.IntegerField(required=False, min_value=1)
        dataset = serializers.CharField(required=False, max_length=200)

    class Input(StrictInput):
        class Meta:
            ref_name = "AccessLineageInput"

        model = serializers.CharField(max_length=256)
        version = serializers.IntegerField(min_value=1)
        dataset = serializers.CharField(max_length=200)
        role = serializers.ChoiceField(choices=Lineage.Role.values, default=Lineage.Role.TRAINING)

    @extend_schema(
        operation_id="lineage_list",
        summary="Lineage links you may see (the model and the dataset both visible to you)", tags=LINEAGE_TAGS,
        parameters=[OpenApiParameter("model", str), OpenApiParameter("version", int),
                    OpenApiParameter("dataset", str)],
        responses=answers({200: page(LineageOut(many=True), "AccessLineagePage")}, READ_PROBLEMS),
        examples=[OpenApiExample("links", response_only=True, value={
            "count": 1, "next": None, "previous": None, "results": [LINEAGE_EXAMPLE]})],
    )
    def get(self, request: Request) -> Response:
        filters = parse_query(self.Filters, request.query_params)
        rows = Lineage.objects.filter(
            dataset__in=datasets_visible_to(request.user), version__in=lineage_versions_visible_to(request.user),
        ).select_related("version__model", "dataset").order_by("version__model__name", "version__version",
                                                                 "dataset__name", "role")
        if "model" in filters:
            rows = rows.filter(version__model__name=filters["model"])
        if "version" in filters:
            rows = rows.filter(version__version=filters["version"])
        if "dataset" in filters:
            rows = rows.filter(dataset__name=filters["dataset"])
        return paginate(request, self, rows, lambda page: [lineage_data(link) for link in page])

    @extend_schema(
        summary="Declare that a model version was trained (or evaluated) on a dataset", tags=LINEAGE_TAGS,
        description="A data steward, InfoSec or the model's owner. Re-derives the version's classification. "
                    "201 for a new link, 200 when it already existed (nothing recorded).",
        request=Input,
        responses=answers({201: LineageOut, 200: LineageOut}),
        examples=[OpenApiExample("declare", request_only=True, value={
            "model": "fraud-detector", "version": 7, "dataset": "customers", "role": "training"})],
    )
    def post(self, request: Request) -> Response:
        data = parse(self.Input, request.data)
        version = (lineage_versions_visible_to(request.user).select_related("model")
                   .filter(model__name=data["model"], version=data["version"]).first())
        if version is None:
            raise field_error("version", f"no version {data['version']} of a model {data['model']!r} you may see")
        dataset = datasets_visible_to(request.user).filter(name=data["dataset"]).first()
        if dataset is None:
            raise field_error("dataset", f"no dataset named {data['dataset']!r} that you may see")
        link, created = lineage_link(actor=Actor.user(request.user), version=version, dataset=dataset,
                                             role=data["role"], user=request.user)
        link = Lineage.objects.select_related("version__model", "dataset").get(pk=link.pk)
        return Response(lineage_data(link), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


__all__ = [
    "DatasetClassifyApi", "DatasetDetailApi", "DatasetFieldClassifyApi", "DatasetFieldsApi", "DatasetListApi",
    "LineageApi",
]
