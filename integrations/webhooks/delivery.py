"""Deliver a subscription's stream: one signed POST per matching ledger entry, in ``seq`` order.

Through ``integrations.streams.stream_deliver`` (leased cursor, at least once, no transaction open during the
HTTP call). The stream reads only the entries matching the subscription's filters (``entry_filter``, on the
ledger's event-type and subject indexes), so a narrow subscription does not scan a busy ledger; the cursor stays
on the last entry delivered. The first entry the receiver does not accept (no 2xx, a timeout, a refused
connection, a redirect) stops the batch there: the cursor advances only past what was taken, so that entry is the
next one tried and nothing behind it overtakes it. Its retry waits ``WEBHOOK_RETRY_BASE_SECONDS *
2^(failures-1)`` (+/-20 % jitter, at most ``WEBHOOK_RETRY_MAX_SECONDS``); after ``WEBHOOK_FAILING_AFTER_HOURS``
of failures in a row the subscription is marked failing (paused, a ``webhook.subscription_failing`` entry) until
InfoSec resumes it.

Each request (Standard Webhooks, https://www.standardwebhooks.com/): ``webhook-id`` = ``ledger-<seq>-sub-<id>``
(the same for every retry and replay of that entry to that subscription: receivers de-duplicate on it),
``webhook-timestamp`` = now (each attempt is signed afresh, so the receiver's 5-minute tolerance holds on
retries), ``webhook-signature`` = ``v1,<base64 HMAC-SHA256>`` by the ``standardwebhooks`` library. The body is
``payload(entry)``. A crash after the POST but before the advance sends that entry again with the same id.

Never logged or stored: the secret, the signature, the request body; only the status, duration, error and the
first ``EXCERPT`` characters of the response.
"""
from __future__ import annotations

import http.client
import json
import logging
import random
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import reduce
from operator import or_
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from audit.canonical import format_timestamp
from audit.ledger import Actor, Subject, record
from audit.models import Entry
from integrations.models import WebhookAttempt, WebhookSubscription
from integrations.streams import stream_deliver
from integrations.webhooks import targets
from integrations.webhooks.errors import TargetRefused
from integrations.webhooks.services import ALL, matches

logger = logging.getLogger(__name__)
EXCERPT = 500
BATCH = 50
USER_AGENT = "ml-governance-ledger-webhooks/1"


def webhook_id(subscription_id: int, seq: int) -> str:
    return f"ledger-{seq}-sub-{subscription_id}"


def proof_reference(seq: int) -> dict[str, Any]:
    """Where the receiver gets the inclusion proof: in the smallest tree that holds the entry (so the
    payload is the same on every retry); a consistency proof carries it to any later signed checkpoint."""
    size = seq + 1
    return {"tree_size": size, "url": f"/api/v1/ledger/entries/{seq}/inclusion-proof?tree_size={size}"}


def payload(entry: Entry) -> bytes:
    """The request body: the entry exactly as hashed (``canonical``: its RFC 8785 body, whose RFC 9162 leaf
    hash is ``entry_hash``) and its inclusion proof reference. Personal data is already out of the hashed
    body (commitments only), so nothing here reveals any."""
    body = {
        "type": entry.event_type,
        "timestamp": entry.timestamp,
        "data": {
            "entry": {"seq": entry.seq, "event_type": entry.event_type, "entry_hash": entry.entry_hash,
                      "canonical": entry.canonical_body().decode("utf-8")},
            "proof": proof_reference(entry.seq),
        },
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status_code: int | None
    duration_ms: int
    error: str
    excerpt: str


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, whatever the name resolves to by now (DNS rebinding)."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # The certificate is checked against the URL's host name, not the address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def _clean(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)[:EXCERPT]


def post(url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    """One POST, without following redirects, resolving and checking the host now. Never raises."""
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target = targets.parse(url)
        address = targets.resolve(target)
    except TargetRefused as exc:
        return Outcome(False, None, took(), str(exc)[:EXCERPT], "")
    cls = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    conn = cls(target.host, target.port, address, settings.WEBHOOK_TIMEOUT_SECONDS)
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        response = conn.getresponse()
        excerpt = _clean(response.read(EXCERPT).decode("utf-8", errors="replace"))
        code = response.status
    except (OSError, http.client.HTTPException) as exc:
        # OSError covers refused connections, timeouts and TLS failures.
        return Outcome(False, None, took(), _clean(f"{type(exc).__name__}: {exc}"), "")
    finally:
        conn.close()
    if 200 <= code < 300:
        return Outcome(True, code, took(), "", excerpt)
    error = f"HTTP {code}" + (" (redirects are not followed)" if 300 <= code < 400 else "")
    return Outcome(False, code, took(), error, excerpt)


def _headers(sub: WebhookSubscription, seq: int, body: bytes, now: datetime) -> dict[str, str]:
    msg_id = webhook_id(sub.pk, seq)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(sub.secret).sign(msg_id, now, body),
    }


def retry_delay(failures: int) -> float:
    """Seconds before the next attempt after ``failures`` failures in a row (exponential, +/-20 % jitter)."""
    base = settings.WEBHOOK_RETRY_BASE_SECONDS * (2 ** min(max(failures - 1, 0), 30))
    delay = min(base, settings.WEBHOOK_RETRY_MAX_SECONDS)
    return float(delay * random.uniform(0.8, 1.2))  # noqa: S311 (jitter, not a secret)


def _log_attempt(sub: WebhookSubscription, entry: Entry, outcome: Outcome, at: datetime,
                 next_at: datetime | None) -> None:
    WebhookAttempt.objects.create(
        subscription=sub, seq=entry.seq, event_type=entry.event_type, webhook_id=webhook_id(sub.pk, entry.seq),
        attempted_at=at, delivered=outcome.delivered, status_code=outcome.status_code,
        duration_ms=outcome.duration_ms, error=outcome.error, response_excerpt=outcome.excerpt,
        next_attempt_at=next_at)


@transaction.atomic
def _failed(sub: WebhookSubscription, entry: Entry, outcome: Outcome, now: datetime) -> None:
    fresh = WebhookSubscription.objects.select_for_update().get(pk=sub.pk)
    fresh.failures_in_row += 1
    fresh.failing_since = fresh.failing_since or now
    give_up = now - fresh.failing_since >= timedelta(hours=settings.WEBHOOK_FAILING_AFTER_HOURS)
    fresh.next_attempt_at = None if give_up else now + timedelta(seconds=retry_delay(fresh.failures_in_row))
    if give_up and fresh.status == WebhookSubscription.ACTIVE:
        fresh.status = WebhookSubscription.FAILING
        record(event_type="webhook.subscription_failing", actor=Actor.system("webhooks"),
               subject=Subject("webhook_subscription", str(fresh.pk)),
               payload={"subscription_id": fresh.pk, "failing_since": format_timestamp(fresh.failing_since),
                        "failures": fresh.failures_in_row, "seq": entry.seq, "last_error": outcome.error or "?"})
    fresh.save(update_fields=["failures_in_row", "failing_since", "next_attempt_at", "status", "updated_at"])
    _log_attempt(fresh, entry, outcome, now, fresh.next_attempt_at)
    logger.warning("webhook delivery failed", extra={"subscription": fresh.pk, "seq": entry.seq,
                                                    "status_code": outcome.status_code, "error": outcome.error,
                                                    "failures": fresh.failures_in_row})


def _delivered(sub: WebhookSubscription, entry: Entry, outcome: Outcome, now: datetime) -> None:
    with transaction.atomic():
        if sub.failures_in_row or sub.failing_since or sub.next_attempt_at:
            WebhookSubscription.objects.filter(pk=sub.pk).update(failures_in_row=0, failing_since=None,
                                                                 next_attempt_at=None)
            sub.failures_in_row, sub.failing_since, sub.next_attempt_at = 0, None, None
        _log_attempt(sub, entry, outcome, now, None)


def entry_filter(sub: WebhookSubscription) -> Q:
    """The subscription's filters as a query on ``Entry`` (``services.matches`` is the same rule in Python)."""
    query = Q()
    if ALL not in sub.event_types:
        query &= reduce(or_, [Q(event_type__startswith=t[:-1]) if t.endswith(".*") else Q(event_type=t)
                              for t in sub.event_types])
    if sub.subject_type:
        query &= Q(subject_type=sub.subject_type)
    if sub.subject_id:
        query &= Q(subject_id=sub.subject_id)
    return query


def _entries(sub: WebhookSubscription) -> Any:
    query = entry_filter(sub)

    def entries(after: int, limit: int) -> list[Entry]:
        return list(Entry.objects.filter(query, seq__gt=after).order_by("seq")[:limit])

    return entries


def _deliverer(sub: WebhookSubscription) -> Any:
    def deliver(batch: Sequence[Entry]) -> int:
        for i, entry in enumerate(batch):
            if not matches(sub.event_types, sub.subject_type, sub.subject_id, entry):
                continue  # (the query already filtered; kept as the one rule's second reading)
            body = payload(entry)
            now = timezone.now()
            outcome = post(sub.url, body, _headers(sub, entry.seq, body, now))
            if not outcome.delivered:
                _failed(sub, entry, outcome, now)
                return i
            _delivered(sub, entry, outcome, now)
        return len(batch)

    return deliver


def subscription_deliver(*, subscription_id: int, max_batches: int = 20) -> int:
    """Send what is waiting on one subscription (up to ``max_batches`` batches); returns how many entries the
    stream advanced over. Does nothing for a subscription that is not active or whose retry is not due.
    Safe to run concurrently: the stream's lease lets one run deliver, the other returns 0."""
    advanced = 0
    for _ in range(max_batches):
        sub = WebhookSubscription.objects.filter(pk=subscription_id).first()
        if sub is None or sub.status != WebhookSubscription.ACTIVE or not sub.secret:
            return advanced
        if sub.next_attempt_at is not None and sub.next_attempt_at > timezone.now():
            return advanced
        lease = settings.WEBHOOK_TIMEOUT_SECONDS * BATCH + 60
        result = stream_deliver(name=sub.stream_name, deliver=_deliverer(sub), batch_size=BATCH, lease_seconds=lease,
                                entries=_entries(sub))
        advanced += result.count
        if result.count < BATCH:
            return advanced
    return advanced


def due_subscriptions() -> list[int]:
    now = timezone.now()
    return list(WebhookSubscription.objects.filter(status=WebhookSubscription.ACTIVE).exclude(
        next_attempt_at__gt=now).values_list("pk", flat=True))


def attempts_prune(*, now: datetime | None = None) -> int:
    """Delete delivery-log rows older than ``WEBHOOK_LOG_DAYS``; returns how many. Idempotent."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.WEBHOOK_LOG_DAYS)
    deleted, _ = WebhookAttempt.objects.filter(attempted_at__lt=cutoff).delete()
    return deleted
