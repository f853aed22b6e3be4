"""MLflow webhook deliveries: verified, accepted (stored and recorded), refusals counted and summarised.

The endpoint itself (POST /webhooks/mlflow) is ``governance.api.webhooks``; it counts each refusal in
Prometheus and here.

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
with a 4xx and ``{"error": code, "detail": message}``.

An accepted delivery is stored (``WebhookDelivery``, which makes replays detectable),
recorded (``mlflow.webhook_received``) and answered 202; after commit ``sync_model`` is queued for
the model it names (``signals.webhook_delivery_accepted``). Webhooks are only hints: the sync reads MLflow
itself, and the periodic reconcile is the truth.

Refusals never write ledger entries of their own: anyone can send a delivery, and the
ledger is permanent. Each refusal is counted by reason, in the Prometheus counter
``governance_mlflow_webhook_refusals_total{reason}`` and in ``WebhookRefusalCounter``
(one row per reason and interval of ``MLFLOW_WEBHOOK_REFUSAL_INTERVAL`` seconds, an
atomic UPDATE). Once an interval has closed, ``webhook_refusals_summarise`` writes one
``mlflow.webhook_refusals_summarised`` entry per reason (count, first and last time; no
address, delivery id or anything else the caller sent): the beat task
``summarise_webhook_refusals`` does it every few minutes, and the first refusal of a new
interval queues it too, so the embedded setup (no broker, no beat) summarises as well.
A replayed delivery (409) carries a valid signature but is counted like the others:
whoever captured one delivery could otherwise replay it into the ledger until its
timestamp goes stale. (Before this, refusals were recorded one by one as
``mlflow.webhook_refused``; that type stays registered for the history.)

Each source address (``REMOTE_ADDR``: behind a proxy, the proxy's) may send at most
``MLFLOW_WEBHOOK_RATE`` deliveries per fixed window (default ``120/min``, counted in the
Django cache, so shared by every process when ``CACHE_URL`` is Redis); beyond that it is
answered 429 with ``Retry-After`` and counted as ``rate_limited``, before its body is read.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, F, Value
from django.db.models.functions import Greatest, Least
from django.utils import timezone

from audit import canonical
from audit.canonical import format_timestamp
from audit.ledger import Actor, Subject, record
from governance import lock_objects, signals
from governance.errors import GovernanceError
from governance.models import WebhookDelivery, WebhookRefusalCounter

logger = logging.getLogger(__name__)

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
        doc = canonical.loads(body)
    except canonical.CanonicalizationError as exc:  # nested deeper than the ledger's bound: a 400, never a crash
        raise Refused(400, "too_deep", f"malformed JSON: {exc}", delivery_id=delivery_id) from None
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
        signals.webhook_delivery_accepted.send(sender=WebhookDelivery, model=delivery.model)
    return stored


def _window_start(at: datetime, seconds: int) -> datetime:
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


@transaction.atomic
def webhook_refusal_count(*, reason: str, at: datetime | None = None) -> None:
    """Count one refused delivery under ``reason`` (a refusal code of this module, never caller text).

    One atomic ``UPDATE … count = count + 1`` of the reason's ``WebhookRefusalCounter`` for the
    interval of ``at`` (default: now), creating it when it is the interval's first; nothing is
    written to the ledger. A refusal that comes in while its interval is being (or has been)
    summarised is counted in the next interval, so no count is ever lost or summarised twice.
    The first refusal of an interval queues ``summarise_webhook_refusals`` after commit, so that
    closed intervals are summarised even without the beat.
    """
    at = at or timezone.now()
    seconds = int(settings.MLFLOW_WEBHOOK_REFUSAL_INTERVAL)
    start = _window_start(at, seconds)
    stamp = Value(at, output_field=DateTimeField())
    for _ in range(4):
        window = WebhookRefusalCounter.objects.filter(reason=reason, window_start=start, window_seconds=seconds)
        if window.filter(summarised_at__isnull=True).update(
            count=F("count") + 1, first_at=Least("first_at", stamp), last_at=Greatest("last_at", stamp)
        ):
            return
        try:
            with transaction.atomic():
                WebhookRefusalCounter.objects.create(
                    reason=reason, window_start=start, window_seconds=seconds,
                    window_end=start + timedelta(seconds=seconds), count=1, first_at=at, last_at=at,
                )
        except IntegrityError:
            # Created meanwhile by another process (count again), or already summarised (next interval).
            if window.filter(summarised_at__isnull=False).exists():
                start += timedelta(seconds=seconds)
            continue
        signals.webhook_refusal_interval_opened.send(sender=WebhookRefusalCounter)
        return
    logger.warning("webhook refusal (%s) not counted: its counter kept changing", reason)


#: Summarised counters are kept this long (for the console and debugging), then forgotten.
COUNTER_RETENTION = timedelta(days=30)


@transaction.atomic
def webhook_refusals_summarise(*, now: datetime) -> int:
    """Record each closed, not yet summarised interval of refusals; return how many entries were written.

    One ``mlflow.webhook_refusals_summarised`` entry per reason and interval (reason, count, first
    and last refusal, interval start and length), in this transaction, and the counter is marked
    summarised in the same one: running it again, or twice at once, writes nothing more (the rows
    are locked, and the entry's idempotency key names the interval). Counters summarised more
    than ``COUNTER_RETENTION`` ago are deleted.
    """
    closed = list(
        lock_objects.webhook_refusal_counters_lock()
        .filter(summarised_at__isnull=True, window_end__lte=now)
        .order_by("window_start", "reason")
    )
    for counter in closed:
        window_start = format_timestamp(counter.window_start)
        record(
            event_type="mlflow.webhook_refusals_summarised",
            actor=ENDPOINT_ACTOR,
            subject=ENDPOINT_SUBJECT,
            payload={"reason": counter.reason, "count": counter.count,
                     "first_at": format_timestamp(counter.first_at), "last_at": format_timestamp(counter.last_at),
                     "window_start": window_start, "interval_seconds": counter.window_seconds},
            idempotency_key=f"mlflow.webhook_refusals:{counter.reason}:{window_start}:{counter.window_seconds}",
        )
    if closed:
        WebhookRefusalCounter.objects.filter(pk__in=[c.pk for c in closed]).update(summarised_at=now)
    WebhookRefusalCounter.objects.filter(summarised_at__lt=now - COUNTER_RETENTION).delete()
    return len(closed)


# --- the rate limit ----------------------------------------------------------------------------------------

_RATE = re.compile(r"([1-9][0-9]{0,8})/(s|sec|second|m|min|minute|h|hour|d|day)")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@functools.lru_cache(maxsize=16)
def parse_rate(rate: str) -> tuple[int, int]:
    """``"120/min"`` -> ``(120, 60)``: requests allowed per window of seconds. ValueError when malformed."""
    match = _RATE.fullmatch(rate.strip())
    if match is None:
        raise ValueError(f"{rate!r} is not '<n>/<sec|min|hour|day>'")
    return int(match[1]), _UNIT_SECONDS[match[2][0]]


def rate_limit_wait(*, source: str, now: float) -> int | None:
    """Count one request from ``source``; the seconds to wait when it is over the limit, else None.

    Fixed windows in the Django cache (``MLFLOW_WEBHOOK_RATE``). When the cache cannot be
    reached the request is let through: refusals no longer reach the ledger, so an open limit
    costs CPU, not history, and a cache outage must not stop MLflow's deliveries.
    """
    limit, period = parse_rate(settings.MLFLOW_WEBHOOK_RATE)
    window = int(now // period)
    key = f"mlflow-webhook-rate:{period}:{window}:{source[:64]}"
    try:
        cache.add(key, 0, timeout=period + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=period + 1)
            count = 1
    except Exception:  # the cache backend's own errors (redis, connection) have no common base
        logger.warning("webhook rate limit: the cache could not be reached", exc_info=True)
        return None
    if count <= limit:
        return None
    return max(1, math.ceil((window + 1) * period - now))
