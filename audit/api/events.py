"""``POST /api/v1/events``: runtime events from serving and monitoring systems.

The body is validated in one pass of plain Python by ``governance.services.runtime_events``
against the event-type registry; the serializers below only document it (they
are generated from the same registry, so the schema cannot drift from it) and
are never run on a 1,000-event batch.
"""
from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.utils import (
    OpenApiExample,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.roles import INFOSEC, has_role
from audit.event_types import Field, registry
from audit.ledger import Actor
from governance.services.runtime_events import (
    MAX_BATCH,
    InvalidRuntimeEvents,
    canonical_event_id,
    runtime_events_record,
)
from web.api.auth import HasScope, token_of
from web.api.docs import answers
from web.metrics import runtime_events_counted

TAG = "events"

_KINDS: dict[str, type[serializers.Field]] = {
    "str": serializers.CharField,
    "int": serializers.IntegerField,
    "number": serializers.FloatField,
    "bool": serializers.BooleanField,
    "object": serializers.DictField,
    "list": serializers.ListField,
    "any": serializers.JSONField,
}


def _doc_field(name: str, spec: Field) -> serializers.Field:
    kwargs: dict[str, Any] = {"required": spec.required, "allow_null": spec.nullable}
    if name == "source":
        # The API fills it in from the calling service account.
        kwargs.update(required=False, help_text="the calling service account's name (filled in when left out; any "
                                                "other value is a 400: name the reporting tool in `detail`)")
    if name == "occurred_at":
        return serializers.DateTimeField(help_text="ISO 8601 with a time zone", **kwargs)
    return _KINDS[spec.kind](**kwargs)


def _event_serializer(type_name: str) -> type[serializers.Serializer]:
    event_type = registry.get(type_name)
    attrs: dict[str, Any] = {
        "event_id": serializers.UUIDField(help_text="the sender's id of the event; a retry reuses it"),
        "type": serializers.ChoiceField(choices=[type_name]),
        **{name: _doc_field(name, spec) for name, spec in event_type.fields.items()},
        "__doc__": event_type.description,
    }
    class_name = "".join(p.capitalize() for p in type_name.replace(".", "_").split("_")) + "Event"
    return type(class_name, (serializers.Serializer,), attrs)


class EventsPermission(BasePermission):
    """Tokens with ``events:write`` (checked by HasScope); of people, only InfoSec (manual entries)."""

    message = "only InfoSec may send runtime events with a session; systems use a token with events:write"

    def has_permission(self, request: Request, view: Any) -> bool:
        return token_of(request) is not None or has_role(request.user, INFOSEC)


EXAMPLE_EVENT = {
    "event_id": "0b8f5a52-3c1d-4c3e-9a51-2f1e2d3c4b5a",
    "type": "monitoring.data_drift_detected",
    "occurred_at": "2026-11-29T09:29:58Z",
    "model": "fraud-detector",
    "version": 3,
    "environment": "production",
    "source": "fraud-serving",
    "metric": "psi",
    "value": 0.31,
    "threshold": 0.2,
    "detail": {"tool": "evidently"},
}


class EventsIngestApi(APIView):
    """Record up to 1,000 runtime events, all or nothing, idempotently by ``event_id``."""

    ledger_read_exempt = "writes runtime events; reads none (its answer is the new entries' pending ids)"
    required_scope = "events:write"
    permission_classes = [HasScope, EventsPermission]

    @extend_schema_serializer(component_name="RuntimeEventBatch")
    class InputSerializer(serializers.Serializer):
        events = serializers.ListField(
            child=PolymorphicProxySerializer(
                component_name="RuntimeEvent",
                serializers={n: _event_serializer(n) for n in registry.runtime_names()},
                resource_type_field_name="type",
            ),
            min_length=1, max_length=MAX_BATCH,
        )

    @extend_schema_serializer(component_name="RuntimeEventsRecorded")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="RuntimeEventRecorded")
        class RecordedSerializer(serializers.Serializer):
            event_id = serializers.UUIDField()
            pending_id = serializers.IntegerField()
            seq = serializers.IntegerField(allow_null=True, help_text="null until the sequencer integrates it")
            created = serializers.BooleanField(help_text="false: recorded by an earlier request")

        events = RecordedSerializer(many=True)

    @extend_schema(
        tags=[TAG], summary="Record runtime events",
        description=(
            "Up to 1,000 events per request, recorded all or nothing. Each `type` is one of the runtime event "
            "types of `audit/event_types.py`, with that type's own fields. `model`/`version`/`environment`, when "
            "given, must exist in the registry mirror, and a token may only name models its service account may "
            "see (others are refused exactly like missing ones). `source` is the calling service account's name: "
            "leave it out, or send exactly that. Retrying a batch writes nothing twice (idempotency by "
            "`event_id`); the same `event_id` with different content is a 409."
        ),
        request=InputSerializer,
        # 200: nothing new (a retry); 400: `errors[].field` names the event index; 409: an event_id reused.
        responses=answers({201: OutputSerializer, 200: OutputSerializer}, (400, 401, 403, 409, 413, 415, 429)),
        examples=[
            OpenApiExample("one drift event", request_only=True, value={"events": [EXAMPLE_EVENT]}),
            OpenApiExample("recorded", response_only=True, status_codes=["201"], value={"events": [{
                "event_id": EXAMPLE_EVENT["event_id"], "pending_id": 1207, "seq": None, "created": True}]}),
        ],
    )
    def post(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict) or set(body) != {"events"}:
            raise serializers.ValidationError({"events": ['the body must be a JSON object {"events": [...]}']})
        events = body["events"]
        if not isinstance(events, list):
            raise serializers.ValidationError({"events": ["must be a list of events"]})
        token = token_of(request)
        # A token speaks for its service account: source is bound to it and only its visible models may be named.
        account = token.service_account if token is not None else None
        actor = Actor.service(account.name) if account is not None else Actor.user(request.user)
        try:
            recorded = runtime_events_record(actor=actor, events=events, service_account=account)
        except InvalidRuntimeEvents as exc:
            raise serializers.ValidationError({e["field"]: [e["message"]] for e in exc.errors}) from None
        out = [
            {"event_id": canonical_event_id(event["event_id"]), "pending_id": r.pending_id, "seq": r.seq,
             "created": r.created}
            for event, r in zip(events, recorded, strict=True)
        ]
        # Counted once the batch is durable (a rolled-back request counts nothing).
        types, news = [str(event["type"]) for event in events], [r.created for r in recorded]
        transaction.on_commit(lambda: runtime_events_counted(types, news))
        created = any(r.created for r in recorded)
        return Response({"events": out}, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
