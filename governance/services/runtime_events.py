"""Runtime events from serving and monitoring systems (``POST /api/v1/events``).

Governance's: the events name models, versions and environments of the registry mirror, and a
service account sends only about the models it may see (``governance.selectors``).

``runtime_events_record`` validates a whole batch in one pass of plain Python
against the event-type registry (the single definition of each type's fields),
checks the model versions and environments it names against the mirror with a
couple of queries for the whole batch, and appends every event with one
``record_many`` call in one transaction: all of the batch or none of it.

Each event's idempotency key is ``runtime:<event_id>``, so a retried batch
writes nothing twice, and an ``event_id`` reused for different content is an
``IdempotencyConflict`` (409).
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import QuerySet

from audit.canonical import format_timestamp
from audit.event_types import InvalidPayload, registry
from audit.ledger import Actor, Event, LedgerError, Recorded, Subject, record_many
from governance.models import Environment, ModelVersion, RegisteredModel
from governance.selectors import models_visible_to

if TYPE_CHECKING:
    from access.models import ServiceAccount

MAX_BATCH = 1000
MAX_NAME = 300


class InvalidRuntimeEvents(LedgerError):
    """One or more events of a batch are invalid; ``errors`` names each by index."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{first['field']}: {first['message']}{more}")


_CONTROL = re.compile(r"[\x00-\x1f]")
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical_event_id(value: str) -> str:
    """The UUID's canonical text; raises ValueError. (The canonical form, by far the usual one, is not re-parsed.)"""
    if _CANONICAL_UUID.fullmatch(value):
        return value
    return str(uuid.UUID(value))


def _name(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME and _CONTROL.search(value) is None


def _occurred_at(value: object) -> str | None:
    """The time in the ledger's own format (UTC, microseconds), or None when not ISO 8601 with a zone."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None or not 1 <= moment.astimezone(UTC).year <= 9999:
        return None
    return format_timestamp(moment)


def _validate(
    events: Sequence[object], *, default_source: str | None, bound_source: str | None = None,
) -> tuple[list[tuple[str, str, dict[str, Any]]], list[dict[str, str]]]:
    """(event_id, type, payload) per event, and the problems found (field paths name the index).

    With ``bound_source`` an event may omit ``source`` (it is filled in) or send exactly that value;
    any other is a problem of that event.

    One pass of plain Python: a batch is up to 1,000 events on the ingest hot path, so
    names and times seen once in the batch are not checked again.
    """
    errors: list[dict[str, str]] = []
    checked: list[tuple[str, str, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    runtime = {name: registry.get(name) for name in registry.runtime_names()}
    good_names: set[str] = set()
    times: dict[str, str | None] = {}

    def bad(i: int, field: str, message: str) -> None:
        errors.append({"field": f"events[{i}]{'.' + field if field else ''}", "message": message})

    for i, raw in enumerate(events):
        if not isinstance(raw, dict):
            bad(i, "", "must be a JSON object")
            continue
        ok = True
        event_id = raw.get("event_id")
        try:
            if not isinstance(event_id, str) or len(event_id) > 64:
                raise ValueError
            event_id = canonical_event_id(event_id)
        except ValueError:
            bad(i, "event_id", "is required and must be a UUID")
            ok = False
        else:
            if event_id in seen:
                bad(i, "event_id", f"repeats the event_id of events[{seen[event_id]}]")
                ok = False
            seen[event_id] = i
        kind = raw.get("type")
        event_type = runtime.get(kind) if isinstance(kind, str) else None
        if event_type is None:
            shown = repr(kind)[:100] if kind is not None else "missing"
            bad(i, "type", f"{shown} is not a runtime event type (one of: {', '.join(sorted(runtime))})")
            continue
        payload = {k: v for k, v in raw.items() if k != "event_id" and k != "type"}
        if "source" not in payload and default_source is not None:
            payload["source"] = default_source
        if bound_source is not None and payload.get("source") != bound_source:
            # A token speaks for its service account only: it cannot attribute events to another system.
            bad(i, "source", f"must be {bound_source!r}, the calling service account (or be left out); "
                             "name the reporting tool in detail")
            ok = False
        if "occurred_at" in payload:
            raw_when = payload["occurred_at"]
            when = times.get(raw_when, "") if isinstance(raw_when, str) else None
            if when == "":
                when = times[raw_when] = _occurred_at(raw_when)
            if when is None:
                bad(i, "occurred_at", "must be an ISO 8601 date-time with a time zone, e.g. 2026-11-29T09:30:00Z")
                ok = False
            else:
                payload["occurred_at"] = when
        for key in ("source", "model", "environment"):
            value = payload.get(key)
            if value is not None and not (isinstance(value, str) and value in good_names):
                if _name(value):
                    good_names.add(value)
                else:
                    bad(i, key,
                        f"must be a non-empty string of at most {MAX_NAME} characters without control characters")
                    ok = False
        if payload.get("version") is not None and payload.get("model") is None:
            bad(i, "version", "needs a model")
            ok = False
        try:
            event_type.validate(payload)
        except InvalidPayload as exc:
            # The registry's message names every problem of the payload.
            bad(i, "", str(exc))
            ok = False
        if ok and isinstance(event_id, str):
            checked.append((event_id, event_type.name, payload))
    return checked, errors


def _check_mirror(
    checked: list[tuple[str, str, dict[str, Any]]], *, service_account: ServiceAccount | None = None,
) -> list[dict[str, str]]:
    """Every named model, version and environment must exist in the mirror (at most three queries, plus the
    caller's roles once). With ``service_account`` the models must also be visible to its user
    (``governance.selectors.models_visible_to``), and an invisible one is reported exactly like a missing one.
    """
    visible: QuerySet[RegisteredModel] = (
        models_visible_to(service_account.user) if service_account is not None else RegisteredModel.objects.all()
    )

    models = {p["model"] for _, _, p in checked if p.get("model") is not None}
    versions = {p["version"] for _, _, p in checked if p.get("version") is not None}
    envs = {p["environment"] for _, _, p in checked if p.get("environment") is not None}
    alone = {p["model"] for _, _, p in checked if p.get("model") is not None and p.get("version") is None}
    known_models = set(visible.filter(name__in=alone).values_list("name", flat=True)) if alone else set()
    # Names x versions over-fetches a little, but stays one query whatever the batch holds.
    known_versions: set[tuple[str, int]] = set(
        ModelVersion.objects.filter(model__in=visible.filter(name__in=models), version__in=versions)
        .values_list("model__name", "version")
    ) if versions else set()
    known_envs = set(Environment.objects.filter(name__in=envs).values_list("name", flat=True)) if envs else set()
    errors: list[dict[str, str]] = []
    for i, (_, _, p) in enumerate(checked):
        model, version, env = p.get("model"), p.get("version"), p.get("environment")
        if model is not None and version is not None and (model, version) not in known_versions:
            errors.append({"field": f"events[{i}].version", "message": f"no model version {model}/{version}"})
        elif model is not None and version is None and model not in known_models:
            errors.append({"field": f"events[{i}].model", "message": f"no registered model named {model!r}"})
        if env is not None and env not in known_envs:
            errors.append({"field": f"events[{i}].environment", "message": f"no environment named {env!r}"})
    return errors


def _subject(payload: Mapping[str, Any]) -> Subject:
    if payload.get("model") is not None and payload.get("version") is not None:
        return Subject("model_version", f"{payload['model']}/{payload['version']}")
    if payload.get("environment") is not None:
        return Subject("environment", str(payload["environment"]))
    return Subject("runtime_source", str(payload["source"]))


@transaction.atomic
def runtime_events_record(
    *, actor: Actor, events: Sequence[object], default_source: str | None = None,
    service_account: ServiceAccount | None = None,
) -> list[Recorded]:
    """Record a batch of runtime events, all or nothing; results in request order.

    ``default_source`` fills ``source`` for events that do not name one.
    ``service_account`` (the API passes the token's) binds the batch to that
    account: ``source`` is its name (filled in when left out, any other value
    refused) and every model or version named must be one its user may see; an
    invisible model is refused exactly like a missing one. Raises
    ``InvalidRuntimeEvents`` (every problem, by index) before anything is
    written, and ``IdempotencyConflict`` when an ``event_id`` was already
    recorded with other content.
    """
    if not events:
        raise InvalidRuntimeEvents([{"field": "events", "message": "must hold at least one event"}])
    if len(events) > MAX_BATCH:
        raise InvalidRuntimeEvents([{
            "field": "events",
            "message": f"holds {len(events)} events; at most {MAX_BATCH} per request (split the batch)",
        }])
    bound = service_account.name if service_account is not None else None
    checked, errors = _validate(events, default_source=bound or default_source, bound_source=bound)
    if not errors:
        errors = _check_mirror(checked, service_account=service_account)
    if errors:
        raise InvalidRuntimeEvents(errors)
    batch = [
        Event(event_type=kind, actor=actor, subject=_subject(payload), payload=payload,
              idempotency_key=f"runtime:{event_id}")
        for event_id, kind, payload in checked
    ]
    return record_many(batch)
