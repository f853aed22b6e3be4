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

An accepted delivery is stored (``WebhookDelivery``, which makes replays detectable and is the
outbox of its follow-up), recorded (``mlflow.webhook_received``; an alias delivery also
``mlflow.alias_observed``: what MLflow says the alias now is) and answered 202, all in one
transaction: the 202 is only sent once the delivery is durable. When it cannot be stored (a
database error) the endpoint answers 503 with ``Retry-After`` and nothing is written, so that
MLflow retries it with the same delivery id. Webhooks are only hints: the follow-up syncs the model
it names from MLflow itself (which puts back an out-of-band alias), and the periodic reconcile is the
truth.

The follow-up is driven from the outbox (``webhook_delivery_follow_up``): after commit a task is
queued with the delivery's id (``signals.webhook_delivery_accepted``); if the broker refuses it the
delivery simply stays ``pending``, and the beat task ``drain_webhook_deliveries`` (every
``MLFLOW_WEBHOOK_DRAIN_INTERVAL`` seconds) claims every pending delivery that is due, retrying a
failed one with exponential backoff (up to ``MLFLOW_WEBHOOK_RETRY_MAX_SECONDS``) until it is done.

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
from django.db.models import DateTimeField, F, Q, Value
from django.db.models.functions import Greatest, Least
from django.utils import timezone

from audit import canonical
from audit.canonical import format_timestamp
from audit.ledger import Actor, Subject, record
from governance import lock_objects, registry, signals
from governance.errors import GovernanceError
from governance.models import WebhookDelivery, WebhookRefusalCounter
from governance.services import registry_mirror

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"
DEFAULT_MAX_BYTES = 1024 * 1024

#: Entities whose deliveries name a registered model to re-sync (prompts and budget policies do not).
ALIAS_ENTITY = "model_version_alias"
MODEL_ENTITIES = frozenset({"registered_model", "model_version", "model_version_tag", ALIAS_ENTITY})

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
        is_alias = entity == ALIAS_ENTITY
        version = _text(data, "version", 20, required=is_alias and action == "created") if is_model else None
        if is_alias and version is not None and not version.isdigit():
            # Recorded as an int (mlflow.alias_observed): a version number, as MLflow sends it.
            raise Refused(400, "invalid_field", "'data.version' of an alias must be a version number")
        return Delivery(
            delivery_id=delivery_id,
            entity=entity,
            action=action,
            model=_text(data, "name", 256, required=is_model) if is_model else None,
            version=version,
            alias=_text(data, "alias", 100, required=is_alias) if is_model else None,
        )
    except Refused as exc:
        exc.delivery_id = delivery_id
        raise


# --- services --------------------------------------------------------------------------------------------


@transaction.atomic
def webhook_delivery_accept(*, delivery: Delivery, now: datetime | None = None) -> WebhookDelivery:
    """Store and record a verified delivery, as the outbox of its follow-up; queue the follow-up after commit.

    One transaction: the ``WebhookDelivery`` row (``pending`` when it names a model, else ``done``:
    nothing follows a prompt), ``mlflow.webhook_received``, and for an alias delivery
    ``mlflow.alias_observed``. A database error leaves nothing at all (the endpoint answers 503 and
    MLflow retries). The follow-up is announced with the row's id (``signals.webhook_delivery_accepted``);
    whether or not it can be queued, the row stays ``pending`` until a drain has done it.

    Raises ``Refused`` (409) when the delivery id was accepted before: a replay, which stores, records
    and queues nothing.
    """
    now = now or timezone.now()
    follows = bool(delivery.model)
    try:
        with transaction.atomic():
            stored = WebhookDelivery.objects.create(
                delivery_id=delivery.delivery_id, entity=delivery.entity, action=delivery.action,
                model=delivery.model or "", version=delivery.version or "", alias=delivery.alias or "",
                state=WebhookDelivery.State.PENDING if follows else WebhookDelivery.State.DONE,
                next_attempt_at=now if follows else None, processed_at=None if follows else now,
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
    subject = Subject("registered_model", delivery.model) if delivery.model else ENDPOINT_SUBJECT
    record(event_type="mlflow.webhook_received", actor=MLFLOW_ACTOR, subject=subject, payload=payload)
    if delivery.entity == ALIAS_ENTITY and delivery.model and delivery.alias:
        # MLflow's word about the alias (whoever changed it); the follow-up's reconcile judges it.
        record(
            event_type="mlflow.alias_observed",
            actor=MLFLOW_ACTOR,
            subject=subject,
            payload={"model": delivery.model, "alias": delivery.alias,
                     "version": int(delivery.version) if delivery.version is not None else None,
                     "action": delivery.action, "delivery_id": delivery.delivery_id},
        )
    if follows:
        signals.webhook_delivery_accepted.send(sender=WebhookDelivery, delivery_id=stored.pk, model=delivery.model)
    return stored


# --- the outbox: claiming, following up and retrying accepted deliveries -----------------------------------

#: How long a claimed delivery is left to the drain that claimed it before another may claim it again: longer
#: than the follow-up task's hard time limit (90 s), so a running sync is never doubled, and a drain that
#: crashed mid-sync (worker killed) is retried once it lapses.
CLAIM_LEASE = timedelta(seconds=120)

#: One drain run claims at most this many deliveries, and none once this long has passed (its task's soft
#: time limit is 240 s; a sync's own is 60 s): the rest are the next run's.
DRAIN_BATCH = 100
DRAIN_BUDGET = timedelta(seconds=150)


def retry_delay(attempts: int) -> timedelta:
    """When a follow-up that failed on its ``attempts``-th attempt is tried again: the drain interval doubled
    per attempt, at most ``MLFLOW_WEBHOOK_RETRY_MAX_SECONDS``."""
    base = float(settings.MLFLOW_WEBHOOK_DRAIN_INTERVAL)
    cap = float(settings.MLFLOW_WEBHOOK_RETRY_MAX_SECONDS)
    return timedelta(seconds=min(cap, base * 2 ** min(max(attempts - 1, 0), 30)))


def webhook_deliveries_due(*, now: datetime, limit: int = DRAIN_BATCH) -> list[int]:
    """Ids of the pending deliveries whose next attempt is due, oldest first (a read: nothing is claimed)."""
    return list(
        WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


@dataclass(frozen=True)
class Claim:
    """A delivery claimed for a follow-up attempt, and the newest delivery of its model stored before the claim
    (``covers``, an id): a sync that starts after the claim covers every delivery of the model up to it."""

    delivery: WebhookDelivery
    covers: int


@transaction.atomic
def webhook_delivery_claim(*, delivery_id: int, now: datetime) -> Claim | None:
    """Claim one pending delivery for a follow-up attempt, or None (done, not due, or another drain holds it).

    ``SELECT … FOR UPDATE SKIP LOCKED``: two drains never wait for each other nor claim the same row. A
    claim counts the attempt and sets ``next_attempt_at`` to the end of its lease (``CLAIM_LEASE``), then
    commits: the sync that follows calls MLflow, which never happens inside a transaction. A first
    attempt (the task queued on commit) is claimable at once, whatever the clocks of web and worker say.
    Bookkeeping of the outbox, not a ledger entry: what the follow-up changes records its own.
    """
    row = (
        lock_objects.webhook_deliveries_lock(skip_locked=True)
        .filter(Q(next_attempt_at__lte=now) | Q(attempts=0), pk=delivery_id, state=WebhookDelivery.State.PENDING)
        .first()
    )
    if row is None:
        return None
    row.attempts += 1
    row.next_attempt_at = now + CLAIM_LEASE
    row.save(update_fields=["attempts", "next_attempt_at"])
    newest = WebhookDelivery.objects.filter(model=row.model).order_by("-pk").values_list("pk", flat=True).first()
    return Claim(delivery=row, covers=max(row.pk, newest or row.pk))


@transaction.atomic
def webhook_delivery_done(*, claim: Claim, now: datetime) -> int:
    """The follow-up of the claimed delivery is done: mark it ``done``, and with it every pending delivery of
    the same model up to ``claim.covers``. Those were inserted before the claim (ids grow with inserts), so
    the change in MLflow each announces precedes the sync that just read MLflow: a burst of deliveries about
    one model costs one sync, not one each. Returns how many were marked. Idempotent: a delivery already
    done stays as it is (a drain that claimed one of them meanwhile finds it done and changes nothing).
    """
    return WebhookDelivery.objects.filter(
        state=WebhookDelivery.State.PENDING, model=claim.delivery.model, pk__lte=claim.covers
    ).update(state=WebhookDelivery.State.DONE, processed_at=now, next_attempt_at=None, last_error="")


@transaction.atomic
def webhook_delivery_retry_later(*, delivery: WebhookDelivery, error: str, now: datetime) -> datetime | None:
    """The follow-up attempt failed: keep the delivery pending, due again after ``retry_delay(attempts)``.

    ``error`` is a class name or a fixed phrase of ours, never an exception's message (MLflow's can carry
    a tracking URI with its credentials). Returns when it is due again (None: it was done meanwhile).
    """
    due = now + retry_delay(delivery.attempts)
    changed = WebhookDelivery.objects.filter(pk=delivery.pk, state=WebhookDelivery.State.PENDING).update(
        next_attempt_at=due, last_error=error[:200]
    )
    return due if changed else None


def webhook_delivery_follow_up(*, delivery_id: int, now: datetime | None = None) -> str:
    """Do the follow-up of one accepted delivery: claim it, sync its model from MLflow, mark it done.

    Not one transaction, on purpose: the sync reads and writes MLflow (it puts an out-of-band alias
    back), which never happens inside a database transaction, and records each of its findings in its own
    short transaction (the model and versions mirrored, the violation, the revert). Holding the claim's
    row lock across all that would hold database locks for as long as MLflow takes, and a rollback at the
    end would lose the record of a revert MLflow already made. Instead every step is idempotent: the
    reconcile records an out-of-band change once per distinct change and reverts only an alias still
    found as it was judged, so an attempt that crashed anywhere (its lease lapses) is simply run again.

    The delivery is marked ``done`` only when the sync completed without an error, including a revert
    that MLflow refused (``ReconcileReport.errors``); otherwise it stays pending and is retried with
    backoff (``webhook_delivery_retry_later``), until done. Returns what happened, for the task's result.
    """
    claim = webhook_delivery_claim(delivery_id=delivery_id, now=now or timezone.now())
    if claim is None:
        return "nothing to do"
    claimed = claim.delivery
    try:
        report = registry_mirror.registered_model_sync(claimed.model)
    except Exception as exc:  # the registry's errors have no common base; anything else: retried as well
        known = isinstance(exc, registry.REGISTRY_ERRORS)
        logger.warning("webhook delivery %s: the sync of its model failed (%s); retried later", claimed.pk,
                       type(exc).__name__, exc_info=not known)
        webhook_delivery_retry_later(delivery=claimed, error=type(exc).__name__, now=now or timezone.now())
        return "retry"
    if report.errors:
        logger.warning("webhook delivery %s: the sync of its model left %s error(s); retried later", claimed.pk,
                       len(report.errors))
        webhook_delivery_retry_later(delivery=claimed, error="the sync reported errors", now=now or timezone.now())
        return "retry"
    webhook_delivery_done(claim=claim, now=now or timezone.now())
    return "done"


def webhook_deliveries_drain(*, now: datetime | None = None) -> dict[str, int]:
    """Follow up every pending delivery that is due (the beat task, every ``MLFLOW_WEBHOOK_DRAIN_INTERVAL`` s).

    At most ``DRAIN_BATCH`` per run and none claimed after ``DRAIN_BUDGET``; several drains at once each
    take other rows (``webhook_delivery_claim``). Returns the count of each outcome. ``now``: the time it runs
    at (tests move it; by default the clock's, read at each claim).
    """
    started = timezone.now()
    outcomes: dict[str, int] = {}
    for delivery_id in webhook_deliveries_due(now=now or started):
        if timezone.now() - started > DRAIN_BUDGET:
            break
        outcome = webhook_delivery_follow_up(delivery_id=delivery_id, now=now)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


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
