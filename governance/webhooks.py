"""The MLflow webhook endpoint: POST /webhooks/mlflow.

MLflow signs each delivery (Standard Webhooks style, see mlflow/webhooks/delivery.py)::

    X-MLflow-Delivery-Id: <uuid>
    X-MLflow-Timestamp:   <unix seconds>
    X-MLflow-Signature:   v1,<base64(HMAC-SHA256(secret, f"{delivery_id}.{timestamp}.{body}"))>
    body: {"entity": ..., "action": ..., "timestamp": ..., "data": {...}}

A delivery is accepted only if it is a POST of at most ``MLFLOW_WEBHOOK_MAX_BYTES``
(default 1 MiB), carries the three headers, its timestamp is within
``MLFLOW_WEBHOOK_TOLERANCE_SECONDS`` of now, its signature over the raw body matches
``MLFLOW_WEBHOOK_SECRET``, its body is a JSON object with ``entity``, ``action`` and
``data``, and its delivery id was never accepted before. Anything else is refused
with a 4xx and ``{"error": code, "detail": message}``, and the refusal is recorded
in the ledger (``mlflow.webhook_refused``: reason code, short detail, delivery id,
remote address; never the body or the secret).

An accepted delivery is stored (``WebhookDelivery``, which makes replays detectable),
recorded (``mlflow.webhook_received``) and answered 202; after commit it queues
``sync_model`` for the model it names. Webhooks are only hints: the sync reads MLflow
itself, and the periodic reconcile is the truth.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from audit.ledger import Actor, Subject, record
from governance.errors import GovernanceError
from governance.models import WebhookDelivery

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"
DEFAULT_MAX_BYTES = 1024 * 1024

#: Entities whose deliveries name a registered model to re-sync (prompts and budget policies do not).
MODEL_ENTITIES = frozenset({"registered_model", "model_version", "model_version_tag", "model_version_alias"})

MLFLOW_ACTOR = Actor.service("mlflow")
ENDPOINT_ACTOR = Actor.system("mlflow-webhook")
ENDPOINT_SUBJECT = Subject("webhook_endpoint", "mlflow")

_DELIVERY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


class Refused(GovernanceError):
    """A delivery is refused: ``status`` is the HTTP answer, ``code`` the reason."""

    def __init__(self, status: int, code: str, detail: str, *, delivery_id: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.status = status
        self.detail = detail
        self.delivery_id = delivery_id


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: what the ledger keeps of it (the body itself is not kept)."""

    delivery_id: str
    entity: str
    action: str
    model: str | None
    version: str | None
    alias: str | None


# --- verification (pure: no database, no clock of its own) --------------------------------------------


def _signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> bytes:
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).digest()


def _signature_matches(header: str, expected: bytes) -> bool:
    # Several space-separated signatures are allowed (Standard Webhooks), e.g. while a secret rotates.
    matched = False
    for candidate in header.split():
        version, _, encoded = candidate.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        matched |= hmac.compare_digest(given, expected)
    return matched


def _text(data: Mapping[str, Any], key: str, max_length: int, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise Refused(400, "missing_field", f"'data.{key}' is required for this entity")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Refused(400, "invalid_field", f"'data.{key}' must be a string")
    text = str(value)
    if not text or len(text) > max_length or any(ord(c) < 0x20 for c in text):
        raise Refused(400, "invalid_field", f"'data.{key}' must be 1 to {max_length} printable characters")
    return text


def verify_delivery(
    *, method: str, headers: Mapping[str, str], body: bytes, content_length: int | None, now: float,
    secret: str, tolerance: int, max_bytes: int,
) -> Delivery:
    """Check one delivery as it arrived; raise ``Refused`` with the first problem found."""
    if method != "POST":
        raise Refused(405, "method_not_allowed", "only POST is accepted")
    if (content_length or 0) > max_bytes or len(body) > max_bytes:
        raise Refused(413, "payload_too_large", f"the body is larger than {max_bytes} bytes")
    missing = [h for h in (DELIVERY_ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER) if not headers.get(h)]
    if missing:
        raise Refused(400, "missing_header", "missing header(s): " + ", ".join(missing))
    delivery_id = headers[DELIVERY_ID_HEADER]
    if not _DELIVERY_ID.match(delivery_id):
        raise Refused(400, "invalid_header", f"{DELIVERY_ID_HEADER} must be 1 to 100 letters, digits or . _ : -")
    timestamp = headers[TIMESTAMP_HEADER]
    if not _TIMESTAMP.match(timestamp):
        raise Refused(400, "invalid_timestamp", f"{TIMESTAMP_HEADER} must be an integer of unix seconds",
                      delivery_id=delivery_id)
    skew = int(timestamp) - now
    if abs(skew) > tolerance:
        where = "in the future" if skew > 0 else "old"
        raise Refused(400, "stale_timestamp", f"stale timestamp: {abs(int(skew))} s {where}, tolerance {tolerance} s",
                      delivery_id=delivery_id)
    expected = _signature(secret, delivery_id, timestamp, body)
    if not secret or not _signature_matches(headers[SIGNATURE_HEADER], expected):
        raise Refused(401, "bad_signature", "bad signature", delivery_id=delivery_id)
    try:
        doc = json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise Refused(400, "malformed_json", "malformed JSON: the body is not a JSON document",
                      delivery_id=delivery_id) from None
    if not isinstance(doc, dict):
        raise Refused(400, "malformed_json", "malformed JSON: the body is not a JSON object", delivery_id=delivery_id)
    for key in ("entity", "action", "data"):
        if key not in doc:
            raise Refused(400, "missing_field", f"missing field '{key}'", delivery_id=delivery_id)
    entity, action, data = doc["entity"], doc["action"], doc["data"]
    if not all(isinstance(v, str) and 0 < len(v) <= 50 and v.replace("_", "").isalnum() for v in (entity, action)):
        raise Refused(400, "invalid_field", "'entity' and 'action' must be short identifiers", delivery_id=delivery_id)
    if not isinstance(data, dict):
        raise Refused(400, "invalid_field", "'data' must be a JSON object", delivery_id=delivery_id)
    try:
        is_model = entity in MODEL_ENTITIES
        return Delivery(
            delivery_id=delivery_id,
            entity=entity,
            action=action,
            model=_text(data, "name", 256, required=is_model) if is_model else None,
            version=_text(data, "version", 20) if is_model else None,
            alias=_text(data, "alias", 100) if is_model else None,
        )
    except Refused as exc:
        exc.delivery_id = delivery_id
        raise


# --- services --------------------------------------------------------------------------------------------


@transaction.atomic
def webhook_delivery_accept(*, delivery: Delivery) -> WebhookDelivery:
    """Store and record a verified delivery; queue a sync of its model after commit.

    Raises ``Refused`` (409) when the delivery id was accepted before: a replay.
    """
    try:
        with transaction.atomic():
            stored = WebhookDelivery.objects.create(
                delivery_id=delivery.delivery_id, entity=delivery.entity, action=delivery.action
            )
    except IntegrityError:
        raise Refused(409, "replayed_delivery", "replayed delivery: this delivery id was already accepted",
                      delivery_id=delivery.delivery_id) from None
    payload: dict[str, Any] = {"delivery_id": delivery.delivery_id, "entity": delivery.entity,
                               "action": delivery.action, "model": delivery.model}
    if delivery.version is not None:
        payload["version"] = delivery.version
    if delivery.alias is not None:
        payload["alias"] = delivery.alias
    record(
        event_type="mlflow.webhook_received",
        actor=MLFLOW_ACTOR,
        subject=Subject("registered_model", delivery.model) if delivery.model else ENDPOINT_SUBJECT,
        payload=payload,
    )
    if delivery.model:
        from governance import tasks

        name = delivery.model
        # robust: a failing eager sync (no broker) must not turn an accepted delivery into an error.
        transaction.on_commit(lambda: tasks.sync_model.delay(name), robust=True)
    return stored


@transaction.atomic
def webhook_refusal_record(
    *, reason: str, detail: str, delivery_id: str | None = None, remote_addr: str | None = None
) -> None:
    """Record a refused delivery: the reason code and a short detail (never the body or the secret)."""
    if delivery_id is not None and not _DELIVERY_ID.match(delivery_id):
        delivery_id = None  # unauthenticated and unusable: not worth keeping
    record(
        event_type="mlflow.webhook_refused",
        actor=ENDPOINT_ACTOR,
        subject=ENDPOINT_SUBJECT,
        payload={"delivery_id": delivery_id, "reason": reason, "detail": detail[:300],
                 "remote_addr": remote_addr[:100] if remote_addr else None},
    )


# --- the view --------------------------------------------------------------------------------------------


def _content_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None


@csrf_exempt  # authenticated by the HMAC signature, not by a session
def mlflow_webhook(request: HttpRequest) -> JsonResponse:
    max_bytes = int(getattr(settings, "MLFLOW_WEBHOOK_MAX_BYTES", DEFAULT_MAX_BYTES))
    headers = request.headers
    try:
        length = _content_length(request)
        if length is None:
            raise Refused(400, "invalid_header", "Content-Length is not a number")
        # Read the body only when it is a POST of acceptable size.
        body = request.body if request.method == "POST" and length <= max_bytes else b""
        delivery = verify_delivery(
            method=request.method or "", headers={h: headers.get(h, "") for h in
                                                  (DELIVERY_ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)},
            body=body, content_length=length, now=time.time(), secret=settings.MLFLOW_WEBHOOK_SECRET,
            tolerance=settings.MLFLOW_WEBHOOK_TOLERANCE_SECONDS, max_bytes=max_bytes,
        )
        webhook_delivery_accept(delivery=delivery)
    except Refused as refused:
        given_id = refused.delivery_id or headers.get(DELIVERY_ID_HEADER)
        webhook_refusal_record(reason=refused.code, detail=refused.detail, delivery_id=given_id,
                               remote_addr=request.META.get("REMOTE_ADDR"))
        response = JsonResponse({"error": refused.code, "detail": refused.detail}, status=refused.status)
        if refused.status == 405:
            response["Allow"] = "POST"
        return response
    return JsonResponse({"status": "accepted", "delivery_id": delivery.delivery_id}, status=202)
