"""``/api/v1/models/<name>/versions/<n>/attestations``: CI attestations of a version (docs/attestations.md).

``POST`` takes the raw document as the body: a DSSE envelope or a Sigstore bundle, exactly as the CI
tool wrote it (any JSON content type, e.g. ``application/json`` or
``application/vnd.dev.sigstore.bundle.v0.3+json``). 201 with what it says about itself; the same bytes
again answer 200 with the stored row. Stored is not trusted: the attestation gate verifies it. A model
the caller may not see answers 404, exactly like one that does not exist.
"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import parsers, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import selectors
from governance.errors import GovernanceError
from governance.models import Attestation
from governance.services import attestations
from web.api.docs import READ_PROBLEMS, WRITE_PROBLEMS, answers, page
from web.api.pagination import StandardPagination

TAGS = ["models"]


class RawDocumentParser(parsers.BaseParser):
    """The body as bytes, unparsed: the document is stored exactly as sent (its SHA-256 is its identity).

    Reads at most ``ATTESTATION_MAX_BYTES`` + 1 bytes, so an oversized body is refused without buffering it."""

    media_type = "*/*"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> bytes:
        if stream is None:
            return b""
        limit = settings.ATTESTATION_MAX_BYTES
        data: bytes = stream.read(limit + 1)
        if len(data) > limit:
            raise GovernanceError(f"the attestation is larger than {limit} bytes (ATTESTATION_MAX_BYTES)",
                                  code="too_large")
        return data


class Output(serializers.Serializer):
    class Meta:
        ref_name = "AttestationOutput"

    id = serializers.IntegerField()
    model = serializers.CharField(source="version.model.name")
    version = serializers.IntegerField(source="version.version")
    attestation = serializers.SerializerMethodField(help_text="sha256:<hex> of the document as uploaded")
    kind = serializers.CharField(help_text="dsse or sigstore_bundle")
    predicate_type = serializers.CharField()
    subject_digests = serializers.ListField(child=serializers.CharField())
    key_ids = serializers.ListField(child=serializers.CharField(),
                                    help_text="key ids the envelope names (hints, never trusted), or a bundle's "
                                              "certificate fingerprint")
    binds_version = serializers.SerializerMethodField(
        help_text="a subject's sha256 is the version's artifact digest (verification happens at the gate)")
    uploaded_by = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_attestation(self, obj: Attestation) -> str:
        return f"sha256:{obj.sha256}"

    def get_binds_version(self, obj: Attestation) -> bool:
        return bool(obj.version.artifact_digest) and obj.version.artifact_digest in obj.subject_digests

    def get_uploaded_by(self, obj: Attestation) -> str | None:
        return f"user:{obj.uploaded_by_id}" if obj.uploaded_by_id is not None else None


_EXAMPLE = {"id": 3, "model": "fraud-detector", "version": 7, "attestation": "sha256:5be1…", "kind": "dsse",
            "predicate_type": "https://slsa.dev/provenance/v1",
            "subject_digests": ["sha256:3f2a…"], "key_ids": ["ci-release"], "binds_version": True,
            "uploaded_by": "user:12", "created_at": "2026-12-01T10:00:00Z"}


class AttestationListApi(APIView):
    required_scopes = {"GET": "models:read", "POST": "attestations:write"}
    parser_classes = [RawDocumentParser]

    def _version(self, request: Request, name: str, version: int) -> Any:
        return get_object_or_404(
            selectors.model_versions_visible_to(request.user).select_related("model"), model__name=name,
            version=version,
        )

    @extend_schema(
        summary="A version's uploaded attestations, newest first",
        operation_id="models_versions_attestations_list",
        tags=TAGS,
        parameters=[OpenApiParameter("version", OpenApiTypes.INT, OpenApiParameter.PATH)],
        responses=answers({200: page(Output(many=True), "AttestationPage")}, READ_PROBLEMS),
        examples=[OpenApiExample("one", response_only=True,
                                 value={"count": 1, "next": None, "previous": None, "results": [_EXAMPLE]})],
    )
    def get(self, request: Request, name: str, version: int) -> Response:
        found = self._version(request, name, version)
        rows = Attestation.objects.filter(version=found).select_related("version__model").order_by("-created_at", "-id")
        paginator = StandardPagination()
        found_page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(Output(found_page, many=True).data)

    @extend_schema(
        summary="Upload a CI attestation (DSSE envelope or Sigstore bundle) for this version",
        description="The body is the document itself, as the CI tool wrote it. Refused 400 when it is not "
                    "a DSSE envelope or Sigstore bundle around an in-toto Statement v1, or is larger than "
                    "ATTESTATION_MAX_BYTES. Storing is not trusting: the environment's attestation gate "
                    "verifies it against its trusted signers.",
        tags=TAGS,
        parameters=[OpenApiParameter("version", OpenApiTypes.INT, OpenApiParameter.PATH)],
        request={"application/json": OpenApiTypes.OBJECT},
        responses=answers({201: Output, 200: Output}, WRITE_PROBLEMS),
        examples=[OpenApiExample("stored", response_only=True, value=_EXAMPLE)],
    )
    def post(self, request: Request, name: str, version: int) -> Response:
        found = self._version(request, name, version)
        body = request.data
        if not isinstance(body, bytes) or not body:
            raise GovernanceError("send the DSSE envelope or Sigstore bundle as the request body", code="empty_body")
        row, created = attestations.attestation_add(actor=request.user, version=found, document=body)
        return Response(Output(row).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
