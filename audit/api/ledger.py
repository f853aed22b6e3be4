"""``/api/v1/ledger/…``: entries, inclusion and consistency proofs, checkpoints and keys.

Read only. Entries and proofs are for InfoSec and auditors (people) and for
tokens with ``ledger:read``; the latest checkpoint and the verifier keys are
published to every signed-in person too, since they are what anyone verifies
against. Payloads are shown as stored: personal fields stay reference objects
(``{"pii": …, "commitment": …}``); revealing them is ``audit.pii.reveal``'s job.
"""
from __future__ import annotations

import base64
import json
import re
from typing import Any

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import exceptions, serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import selectors
from audit.api.reads import LedgerReadMixin
from audit.console.reads import LedgerRead
from audit.event_types import registry
from audit.export.errors import ExportError
from audit.export.scope import parse_time
from audit.ledger import ACTOR_TYPES
from audit.models import Checkpoint, Entry, SigningKey
from audit.selectors import EntryFilters, checkpoint_at, entries_list, may_read_ledger
from audit.services.ledger_access import PAGES, PRINCIPAL
from audit.services.witnessing import published_note
from audit.signing import current_verifier_key
from audit.verification import trusted_verifiers
from web.api.auth import HasScope, token_of
from web.api.docs import LIST_PROBLEMS, READ_PROBLEMS, answers
from web.api.inputs import StrictQuery
from web.api.pagination import SeqCursorPagination, StandardPagination

TAG = "ledger"
_CURSOR = re.compile(r"[A-Za-z0-9+/_=-]{1,200}")
HEX64 = "3f0c1d1e6a4b2c7d8e9fa0b1c2d3e4f5061728394a5b6c7d8e9f0a1b2c3d4e5f"




# --- shared pieces ------------------------------------------------------------------------------------



class CanReadLedger(BasePermission):
    message = "only InfoSec and auditors may read the ledger"

    def has_permission(self, request: Request, view: Any) -> bool:
        # A token got here only with the view's scope (HasScope runs first).
        return token_of(request) is not None or may_read_ledger(request.user)


class SignedIn(BasePermission):
    """Any signed-in person; tokens are governed by HasScope."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated)


LEDGER_PERMISSIONS = [HasScope, CanReadLedger]

# Why the checkpoint and key views are not recorded reads (audit/console/reads.py): they publish what every
# signed-in person and every verifier checks against (signed tree heads, verifier keys), none of the content.
PUBLISHED = "published to every signed-in person: signed tree heads and verifier keys, no entry's content"


class LedgerCursorPagination(SeqCursorPagination):
    """A malformed cursor is bad input (400), not a missing page."""

    invalid = "invalid cursor: use the next/previous links as given"

    def decode_cursor(self, request: Request) -> Any:
        raw = request.query_params.get(self.cursor_query_param)
        # DRF's decoding ignores stray characters (so any junk reads as "the first page").
        if raw is not None and not _CURSOR.fullmatch(raw):
            raise serializers.ValidationError({"cursor": [self.invalid]})
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:
            raise serializers.ValidationError({"cursor": [self.invalid]}) from None


class PlainTextRenderer(BaseRenderer):
    """Text as is; anything else (an error's problem document) as JSON."""

    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if isinstance(data, str):
            return data.encode("utf-8")
        return json.dumps(data).encode("utf-8")


class FirstRenderer(BaseContentNegotiation):
    """Always the view's first renderer: the representation is fixed whatever ``Accept`` says."""

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: Any, format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


def _query_int(request: Request, name: str, *, default: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise serializers.ValidationError({name: ["must be a non-negative integer"]})
    return int(raw)


def _refuse_unknown_params(request: Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise serializers.ValidationError({k: ["unknown query parameter"] for k in unknown})


def entry_data(entry: Entry, *, detail: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "seq": entry.seq,
        "timestamp": entry.timestamp,
        "event_type": entry.event_type,
        "actor": {"type": entry.actor_type, "id": entry.actor_id},
        "subject": {"type": entry.subject_type, "id": entry.subject_id},
        # Stored payloads never hold personal values, only their reference objects.
        "payload": json.loads(entry.payload_json),
        "prev_hash": entry.prev_hash,
        "subject_prev": entry.subject_prev,
        "entry_hash": entry.entry_hash,
        "request_id": entry.request_id,
    }
    if detail:
        body = entry.canonical_body()
        data["leaf_hash"] = entry.entry_hash  # RFC 9162 leaf hash of the canonical body (docs/ledger-format.md §2)
        data["canonical_body"] = body.decode("utf-8")
        data["canonical_body_base64"] = base64.b64encode(body).decode()
    return data


def checkpoint_data(checkpoint: Checkpoint | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    return {
        "id": checkpoint.pk,
        "tree_size": checkpoint.tree_size,
        "root_hash": checkpoint.root_hash,
        "created_at": checkpoint.created_at,
        # Published with the witnesses' cosignature lines (a valid signed note; unknown keys are ignored).
        "note": published_note(checkpoint),
    }


def _integrated(seq: int) -> Entry:
    entry = Entry.objects.filter(seq=seq).first()
    if entry is None:
        raise Http404(f"no integrated ledger entry {seq}")
    return entry


class ActorSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=list(ACTOR_TYPES))
    id = serializers.CharField()


class SubjectSerializer(serializers.Serializer):
    type = serializers.CharField()
    id = serializers.CharField()


class CheckpointSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    tree_size = serializers.IntegerField()
    root_hash = serializers.CharField(help_text="hex")
    created_at = serializers.DateTimeField()
    note = serializers.CharField(
        help_text="the C2SP signed note (tlog-checkpoint body, the log's signature, then any witness cosignatures)"
    )


class CheckpointPendingSerializer(serializers.Serializer):
    due_in_seconds = serializers.IntegerField(help_text="seconds until the next checkpoint should cover it (0: now)")
    overdue = serializers.BooleanField(help_text="more than two checkpoint intervals late: the signer is not running")
    overdue_seconds = serializers.IntegerField()
    detail = serializers.CharField()


def pending_data(pending: selectors.CheckpointPending) -> dict[str, Any]:
    return {"due_in_seconds": pending.due_in_seconds, "overdue": pending.overdue,
            "overdue_seconds": pending.overdue_seconds, "detail": pending.detail}


class EntrySerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    timestamp = serializers.CharField(help_text="UTC, RFC 3339 with six fractional digits")
    event_type = serializers.CharField()
    actor = ActorSerializer()
    subject = SubjectSerializer()
    payload = serializers.JSONField(help_text="personal fields stay reference objects, never plaintext")
    prev_hash = serializers.CharField()
    subject_prev = serializers.IntegerField(allow_null=True)
    entry_hash = serializers.CharField()
    request_id = serializers.CharField(allow_null=True, help_text="the API request that wrote it (hashed), if any")


ENTRY_EXAMPLE = {
    "seq": 41,
    "timestamp": "2026-11-29T09:30:00.123456Z",
    "event_type": "monitoring.data_drift_detected",
    "actor": {"type": "service", "id": "drift-monitor"},
    "subject": {"type": "model_version", "id": "fraud-detector/3"},
    "payload": {"source": "evidently", "occurred_at": "2026-11-29T09:29:58.000000Z", "model": "fraud-detector",
                "version": 3, "environment": "production", "metric": "psi", "value": 0.31, "threshold": 0.2},
    "prev_hash": HEX64,
    "subject_prev": 17,
    "entry_hash": HEX64,
    "request_id": "deploy-7781-step2",
}


# --- entries --------------------------------------------------------------------------------------------


class LedgerEntriesApi(LedgerReadMixin, APIView):
    """The ledger's entries in ``seq`` order, filtered; a cursor stays valid however much is appended."""

    ledger_read = LedgerRead("api-ledger-entries", filter_keys=(
        "since", "until", "event_type", "actor", "subject", "subject_type", "seq_from", "seq_to", "request_id"),
        cursor_keys=("cursor",), covers=PAGES)

    required_scope = "ledger:read"
    permission_classes = LEDGER_PERMISSIONS

    @extend_schema_serializer(component_name="LedgerEntryFilter")
    class FilterSerializer(StrictQuery):
        allowed_extra = frozenset({"cursor", "page_size"})
        unknown_message = "unknown field"

        since = serializers.CharField(required=False, max_length=64,
                                      help_text="ISO 8601 date or date-time (naive = UTC), inclusive")
        until = serializers.CharField(required=False, max_length=64,
                                      help_text="ISO 8601 date or date-time, inclusive (a date: the whole day)")
        event_type = serializers.ListField(child=serializers.CharField(max_length=100), required=False,
                                           max_length=100, help_text="repeatable")
        actor = serializers.CharField(required=False, max_length=220,
                                      help_text="TYPE:ID, e.g. user:12, service:pipeline, system:sequencer")
        subject = serializers.CharField(required=False, max_length=420,
                                        help_text="TYPE:ID, e.g. model_version:fraud-detector/3")
        subject_type = serializers.CharField(required=False, max_length=100)
        seq_from = serializers.IntegerField(required=False, min_value=0)
        seq_to = serializers.IntegerField(required=False, min_value=0)
        request_id = serializers.RegexField(r"^[A-Za-z0-9._:-]{1,64}$", required=False,
                                            help_text="entries written by one API request (X-Request-ID)")

        def _time(self, value: str, *, end: bool, label: str) -> str:
            try:
                return parse_time(value, end_of_day=end, label=label)
            except ExportError as exc:
                raise serializers.ValidationError(str(exc)) from None

        def validate_since(self, value: str) -> str:
            return self._time(value, end=False, label="since")

        def validate_until(self, value: str) -> str:
            return self._time(value, end=True, label="until")

        def validate_event_type(self, value: list[str]) -> list[str]:
            unknown = [v for v in value if v not in registry]
            if unknown:
                raise serializers.ValidationError(f"unknown event type(s): {', '.join(map(repr, unknown))}")
            return value

        def _pair(self, value: str, example: str) -> tuple[str, str]:
            kind, sep, ident = value.partition(":")
            if not sep or not kind or not ident or any(c < " " for c in value):
                raise serializers.ValidationError(f"must look like TYPE:ID, e.g. {example}")
            return kind, ident

        def validate_actor(self, value: str) -> tuple[str, str]:
            kind, ident = self._pair(value, "user:12")
            if kind not in ACTOR_TYPES:
                raise serializers.ValidationError(f"actor type must be one of {', '.join(ACTOR_TYPES)}")
            return kind, ident

        def validate_subject(self, value: str) -> tuple[str, str]:
            return self._pair(value, "model_version:fraud-detector/3")

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if attrs.get("since") and attrs.get("until") and attrs["since"] > attrs["until"]:
                raise serializers.ValidationError({"until": ["is before since"]})
            if attrs.get("seq_from") is not None and attrs.get("seq_to") is not None \
                    and attrs["seq_from"] > attrs["seq_to"]:
                raise serializers.ValidationError({"seq_to": ["is below seq_from"]})
            return attrs

    @extend_schema_serializer(component_name="LedgerEntryPage")
    class PageSerializer(serializers.Serializer):
        next = serializers.URLField(allow_null=True)
        previous = serializers.URLField(allow_null=True)
        results = EntrySerializer(many=True)

    @extend_schema(
        tags=[TAG],
        summary="List ledger entries",
        operation_id="ledger_entries_list",
        parameters=[
            FilterSerializer,
            OpenApiParameter("cursor", OpenApiTypes.STR, description="from a previous page's next/previous link"),
            OpenApiParameter("page_size", OpenApiTypes.INT, description="default 100, at most 1000"),
        ],
        responses=answers({200: PageSerializer}, LIST_PROBLEMS),
        examples=[OpenApiExample("a page", value={
            "next": "https://ledger.example/api/v1/ledger/entries?cursor=cD00Mg%3D%3D", "previous": None,
            "results": [ENTRY_EXAMPLE]}, response_only=True)],
    )
    def get(self, request: Request) -> Response:
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        v = params.validated_data
        qs = entries_list(EntryFilters(
            since=v.get("since"), until=v.get("until"), event_types=tuple(v.get("event_type", ())),
            actor=v.get("actor"), subject=v.get("subject"), subject_type=v.get("subject_type"),
            seq_from=v.get("seq_from"), seq_to=v.get("seq_to"), request_id=v.get("request_id"),
        ))
        paginator = LedgerCursorPagination()
        page = paginator.paginate_queryset(qs, request, view=self) or []
        return paginator.get_paginated_response([entry_data(e) for e in page])


class LedgerEntryApi(LedgerReadMixin, APIView):
    """One integrated entry with its canonical (hashed) body and the first checkpoint covering it."""

    ledger_read = LedgerRead("api-ledger-entry", path_keys=("seq",))

    required_scope = "ledger:read"
    permission_classes = LEDGER_PERMISSIONS

    @extend_schema_serializer(component_name="LedgerEntryDetail")
    class OutputSerializer(EntrySerializer):
        leaf_hash = serializers.CharField(help_text="RFC 9162 leaf hash = entry_hash")
        canonical_body = serializers.CharField(help_text="the JCS body that is hashed, as UTF-8 text")
        canonical_body_base64 = serializers.CharField()
        checkpoint = CheckpointSerializer(allow_null=True, help_text="the earliest checkpoint covering it")
        checkpoint_pending = CheckpointPendingSerializer(
            allow_null=True, help_text="while no checkpoint covers it (a normal state, not a failure): when one should")

    @extend_schema(
        tags=[TAG], summary="Get one ledger entry",
        responses=answers({200: OutputSerializer}, READ_PROBLEMS),
        examples=[OpenApiExample("an entry", response_only=True, value={
            **ENTRY_EXAMPLE, "leaf_hash": HEX64, "canonical_body": '{"actor":{"id":"drift-monitor",…}',
            "canonical_body_base64": "eyJhY3RvciI6…", "checkpoint": {
                "id": 9, "tree_size": 64, "root_hash": HEX64, "created_at": "2026-11-29T09:31:00Z",
                "note": "ledger.example/log\n64\nPwwdHmpLLH2On6Cxw9Pk9QYXKDlKW2x9jp8KGyw9Tl8=\n\n"
                        "— ledger.example/log …\n"}, "checkpoint_pending": None})],
    )
    def get(self, request: Request, seq: int) -> Response:
        entry = _integrated(seq)
        data = entry_data(entry, detail=True)
        checkpoint = selectors.checkpoint_covering(seq)
        data["checkpoint"] = checkpoint_data(checkpoint)
        pending = None if checkpoint is not None else selectors.checkpoint_pending(entry)
        data["checkpoint_pending"] = None if pending is None else pending_data(pending)
        return Response(data)


class InclusionProofApi(LedgerReadMixin, APIView):
    """An RFC 9162 inclusion proof of one entry in the tree of ``tree_size`` entries."""

    # Verifiers ask for proofs at high rates: one entry per principal per window (the first request's filter).
    ledger_read = LedgerRead("api-ledger-inclusion-proof", subject=("ledger", "proofs"), path_keys=("seq",),
                             filter_keys=("tree_size",), covers=PRINCIPAL)

    required_scope = "ledger:read"
    permission_classes = LEDGER_PERMISSIONS

    @extend_schema_serializer(component_name="InclusionProof")
    class OutputSerializer(serializers.Serializer):
        seq = serializers.IntegerField()
        leaf_index = serializers.IntegerField()
        tree_size = serializers.IntegerField()
        leaf_hash = serializers.CharField()
        audit_path = serializers.ListField(child=serializers.CharField(), help_text="hex, leaf to root")
        root_hash = serializers.CharField()
        checkpoint = CheckpointSerializer(allow_null=True, help_text="the checkpoint signed at tree_size, if any")

    @extend_schema(
        tags=[TAG], summary="Inclusion proof of an entry",
        parameters=[OpenApiParameter("tree_size", OpenApiTypes.INT,
                                     description="default: the latest checkpoint's size (else the ledger's)")],
        responses=answers({200: OutputSerializer}, READ_PROBLEMS),
        examples=[OpenApiExample("a proof", response_only=True, value={
            "seq": 41, "leaf_index": 41, "tree_size": 64, "leaf_hash": HEX64, "audit_path": [HEX64, HEX64],
            "root_hash": HEX64, "checkpoint": None})],
    )
    def get(self, request: Request, seq: int) -> Response:
        _refuse_unknown_params(request, {"tree_size"})
        _integrated(seq)
        latest = selectors.latest_checkpoint()
        size = selectors.ledger_size()
        tree_size = _query_int(request, "tree_size", default=latest.tree_size if latest else size)
        assert tree_size is not None
        if tree_size > size:
            raise serializers.ValidationError({"tree_size": [f"is larger than the ledger ({size} entries)"]})
        if seq >= tree_size:
            raise serializers.ValidationError(
                {"tree_size": [f"entry {seq} is not in the tree of size {tree_size}; pass a larger tree_size"]})
        proof = selectors.inclusion_proof(seq=seq, tree_size=tree_size)
        return Response({
            "seq": seq,
            "leaf_index": seq,
            "tree_size": tree_size,
            "leaf_hash": proof.leaf_hash.hex(),
            "audit_path": [h.hex() for h in proof.path],
            "root_hash": proof.root.hex(),
            "checkpoint": checkpoint_data(checkpoint_at(tree_size)),
        })


class ConsistencyProofApi(LedgerReadMixin, APIView):
    """An RFC 9162 consistency proof between two tree sizes: the older tree is a prefix of the newer."""

    ledger_read = LedgerRead("api-ledger-consistency-proof", subject=("ledger", "proofs"),
                             filter_keys=("old_size", "new_size"), covers=PRINCIPAL)

    required_scope = "ledger:read"
    permission_classes = LEDGER_PERMISSIONS

    @extend_schema_serializer(component_name="ConsistencyProof")
    class OutputSerializer(serializers.Serializer):
        old_size = serializers.IntegerField()
        new_size = serializers.IntegerField()
        proof = serializers.ListField(child=serializers.CharField(), help_text="hex")
        old_root = serializers.CharField()
        new_root = serializers.CharField()
        old_checkpoint = CheckpointSerializer(allow_null=True)
        new_checkpoint = CheckpointSerializer(allow_null=True)

    @extend_schema(
        tags=[TAG], summary="Consistency proof between two tree sizes",
        parameters=[
            OpenApiParameter("old_size", OpenApiTypes.INT, required=True, description="≥ 1"),
            OpenApiParameter("new_size", OpenApiTypes.INT, description="default: the latest checkpoint's size"),
        ],
        responses=answers({200: OutputSerializer}, LIST_PROBLEMS),
        examples=[OpenApiExample("a proof", response_only=True, value={
            "old_size": 32, "new_size": 64, "proof": [HEX64], "old_root": HEX64, "new_root": HEX64,
            "old_checkpoint": None, "new_checkpoint": None})],
    )
    def get(self, request: Request) -> Response:
        _refuse_unknown_params(request, {"old_size", "new_size"})
        size = selectors.ledger_size()
        latest = selectors.latest_checkpoint()
        old_size = _query_int(request, "old_size")
        new_size = _query_int(request, "new_size", default=latest.tree_size if latest else size)
        assert new_size is not None
        if old_size is None:
            raise serializers.ValidationError({"old_size": ["is required"]})
        if new_size > size:
            raise serializers.ValidationError({"new_size": [f"is larger than the ledger ({size} entries)"]})
        if not 0 < old_size <= new_size:
            raise serializers.ValidationError({"old_size": [f"must be between 1 and new_size ({new_size})"]})
        proof = selectors.consistency_proof(old_size=old_size, new_size=new_size)
        return Response({
            "old_size": old_size,
            "new_size": new_size,
            "proof": [h.hex() for h in proof.path],
            "old_root": proof.old_root.hex(),
            "new_root": proof.new_root.hex(),
            "old_checkpoint": checkpoint_data(checkpoint_at(old_size)),
            "new_checkpoint": checkpoint_data(checkpoint_at(new_size)),
        })


# --- checkpoints and keys ------------------------------------------------------------------------------


class LatestCheckpointApi(APIView):
    """The latest signed checkpoint, as the C2SP signed note itself with its witness cosignatures (``text/plain``)."""

    ledger_read_exempt = PUBLISHED

    required_scope = "ledger:read"
    permission_classes = [HasScope, SignedIn]
    renderer_classes = [PlainTextRenderer]
    content_negotiation_class = FirstRenderer

    @extend_schema(
        tags=[TAG], summary="Latest signed checkpoint (signed note)",
        responses=answers({(200, "text/plain"): OpenApiTypes.STR}, READ_PROBLEMS),
        examples=[OpenApiExample("a checkpoint", response_only=True, media_type="text/plain", value=(
            "ledger.example/log\n64\nPwwdHmpLLH2On6Cxw9Pk9QYXKDlKW2x9jp8KGyw9Tl8=\n\n"
            "— ledger.example/log Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
            "/Zhcyv2q1gGzGku9nTo+zyWE+xeM\n"))],
    )
    def get(self, request: Request) -> Response:
        checkpoint = selectors.latest_checkpoint()
        if checkpoint is None:
            raise Http404("no checkpoint has been signed yet")
        return Response(published_note(checkpoint), content_type="text/plain; charset=utf-8")


class CheckpointsApi(APIView):
    """Signed checkpoints, newest first; ``tree_size`` picks the ones signed at that size."""

    ledger_read_exempt = PUBLISHED

    required_scope = "ledger:read"
    permission_classes = [HasScope, SignedIn]

    @extend_schema_serializer(component_name="CheckpointPage")
    class PageSerializer(serializers.Serializer):
        count = serializers.IntegerField()
        next = serializers.URLField(allow_null=True)
        previous = serializers.URLField(allow_null=True)
        results = CheckpointSerializer(many=True)

    @extend_schema(
        tags=[TAG], summary="List signed checkpoints",
        parameters=[OpenApiParameter("tree_size", OpenApiTypes.INT), OpenApiParameter("page", OpenApiTypes.INT),
                    OpenApiParameter("page_size", OpenApiTypes.INT)],
        responses=answers({200: PageSerializer}, READ_PROBLEMS),
        examples=[OpenApiExample("checkpoints", response_only=True, value={
            "count": 1, "next": None, "previous": None, "results": [{
                "id": 9, "tree_size": 64, "root_hash": HEX64, "created_at": "2026-11-29T09:31:00Z",
                "note": "ledger.example/log\n64\n…\n\n— ledger.example/log …\n"}]})],
    )
    def get(self, request: Request) -> Response:
        _refuse_unknown_params(request, {"tree_size", "page", "page_size"})
        tree_size = _query_int(request, "tree_size")
        qs = Checkpoint.objects.order_by("-id").prefetch_related("cosignatures")
        if tree_size is not None:
            qs = qs.filter(tree_size=tree_size)
        paginator = StandardPagination()
        page = paginator.paginate_queryset(qs, request, view=self) or []
        return paginator.get_paginated_response([checkpoint_data(c) for c in page])


class KeysApi(APIView):
    """Verifier keys: the current signing key's, every one trusted (incl. rotated-out keys) and all registered."""

    ledger_read_exempt = PUBLISHED

    required_scope = "ledger:read"
    permission_classes = [HasScope, SignedIn]

    @extend_schema_serializer(component_name="LedgerKeys")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="SigningKey")
        class KeySerializer(serializers.Serializer):
            name = serializers.CharField()
            key_id = serializers.CharField()
            verifier_key = serializers.CharField()
            created_at = serializers.DateTimeField()

        current = serializers.CharField(help_text="signed-note verifier key: name+hexid+base64(0x01||key)")
        trusted = serializers.ListField(child=serializers.CharField())
        registered = KeySerializer(many=True)

    @extend_schema(
        tags=[TAG], summary="Checkpoint verifier keys",
        responses=answers({200: OutputSerializer}, (401, 403, 429)),
        examples=[OpenApiExample("keys", response_only=True, value={
            "current": "ledger.example/log+3b2f1a0c+AQ4w…",
            "trusted": ["ledger.example/log+3b2f1a0c+AQ4w…"],
            "registered": [{"name": "ledger.example/log", "key_id": "3b2f1a0c",
                            "verifier_key": "ledger.example/log+3b2f1a0c+AQ4w…",
                            "created_at": "2026-11-01T00:00:00Z"}]})],
    )
    def get(self, request: Request) -> Response:
        registered = [
            {"name": k.name, "key_id": k.key_id, "verifier_key": k.verifier_key, "created_at": k.created_at}
            for k in SigningKey.objects.order_by("id")
        ]
        return Response({
            "current": current_verifier_key(),
            "trusted": [str(v) for v in trusted_verifiers()],
            "registered": registered,
        })

