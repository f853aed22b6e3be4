"""Celery tasks of the integrations app: they take ids (or nothing), call a service, and are idempotent.

Scheduled from ``CELERY_BEAT_SCHEDULE`` (the embedded scheduler in the demo). Every delivery happens outside
a database transaction (the services open only short ones around it); a stream's lease makes a second
concurrent run a no-op (integrations.streams).
"""
from __future__ import annotations

import logging
import time
from typing import Any

from celery import shared_task
from django.db import OperationalError

from integrations.notifications import services as notifications
from integrations.siem import services as siem
from integrations.webhooks.delivery import attempts_prune, due_subscriptions, subscription_deliver

logger = logging.getLogger(__name__)
# One SIEM run keeps delivering while a sink is behind, up to this long, then leaves the rest to the next beat.
SIEM_RUN_SECONDS = 20.0

_TASK: dict[str, Any] = {"soft_time_limit": 300, "time_limit": 360, "acks_late": True}
# Webhook rounds: a database hiccup is retried; a receiver's failure is the subscription's backoff, not Celery's.
_WEBHOOK_TASK: dict[str, Any] = {"autoretry_for": (OperationalError,), "retry_backoff": True, "max_retries": 3,
                                 "soft_time_limit": 300, "time_limit": 360}


@shared_task(name="integrations.tasks.collect_notifications", **_TASK)
def collect_notifications(rounds: int = 20) -> int:
    """Read the ``notifications`` stream into people's queues (up to ``rounds`` batches), then send what is due
    (an "immediately" notification waits out its coalescing window: a later run sends it)."""
    total = 0
    for _ in range(rounds):
        delivered = notifications.notifications_collect()
        total += delivered.count
        if not delivered.count:
            break
    send_notifications.delay()
    return total


@shared_task(name="integrations.tasks.send_notifications", **_TASK)
def send_notifications() -> dict[str, int]:
    """Send every due digest; a failed one stays queued with its backoff (the next run retries it)."""
    return notifications.notifications_send()


@shared_task(name="integrations.tasks.send_notifications_to", **_TASK)
def send_notifications_to(recipient_id: int) -> dict[str, int]:
    return notifications.notifications_send_to(recipient_id=recipient_id)


@shared_task(name="integrations.tasks.scan_expiring_grants", **_TASK)
def scan_expiring_grants() -> int:
    """The daily scan: grants expiring within 7 days are announced to grantee and owner, once per grant."""
    return notifications.grants_expiring_scan()


@shared_task(name="integrations.tasks.deliver_webhooks", **_WEBHOOK_TASK)
def deliver_webhooks() -> int:
    """The beat's round: every active subscription whose retry is due (one at a time; a slow receiver delays
    the others by at most its batch's timeouts)."""
    return sum(deliver_webhook.run(subscription_id) for subscription_id in due_subscriptions())


@shared_task(name="integrations.tasks.deliver_webhook", **_WEBHOOK_TASK)
def deliver_webhook(subscription_id: int) -> int:
    """Deliver one subscription's waiting entries (queued on commit after a replay or a resume)."""
    return subscription_deliver(subscription_id=subscription_id)


@shared_task(name="integrations.tasks.prune_webhook_log", **_WEBHOOK_TASK)
def prune_webhook_log() -> int:
    """The daily prune of the delivery log (``WEBHOOK_LOG_DAYS``)."""
    return attempts_prune()


@shared_task(name="integrations.tasks.siem_deliver", soft_time_limit=60, time_limit=90, ignore_result=True)
def siem_deliver() -> dict[str, int]:
    """Deliver each configured SIEM sink until caught up (or ``SIEM_RUN_SECONDS``). A failing sink is logged
    (type of error and sink, never a token) and retried at the next beat; it does not stop the other sink.
    No Celery retry: the beat runs it again every ``SIEM_INTERVAL`` seconds and the cursor keeps the place."""
    delivered: dict[str, int] = {}
    for name, run in ((siem.SYSLOG_STREAM, siem.syslog_deliver), (siem.HEC_STREAM, siem.hec_deliver)):
        deadline = time.monotonic() + SIEM_RUN_SECONDS
        total = 0
        try:
            while time.monotonic() < deadline:
                result = run()
                if result is None or not result.claimed or result.count == 0:
                    break
                total += result.count
        except Exception as exc:
            logger.warning("SIEM sink %s: delivery failed (%s); retried at the next run", name, type(exc).__name__)
        delivered[name] = total
    return delivered
