"""Celery tasks of integrations. Idempotent: each delivers what is waiting and the stream's lease makes a
second concurrent run a no-op (integrations.streams)."""
from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from integrations.webhooks.delivery import attempts_prune, due_subscriptions, subscription_deliver


@shared_task(name="integrations.tasks.deliver_webhooks", autoretry_for=(OperationalError,), retry_backoff=True,
             max_retries=3, soft_time_limit=300, time_limit=360)
def deliver_webhooks() -> int:
    """The beat's round: every active subscription whose retry is due (one at a time; a slow receiver delays
    the others by at most its batch's timeouts)."""
    return sum(deliver_webhook.run(subscription_id) for subscription_id in due_subscriptions())


@shared_task(name="integrations.tasks.deliver_webhook", autoretry_for=(OperationalError,), retry_backoff=True,
             max_retries=3, soft_time_limit=300, time_limit=360)
def deliver_webhook(subscription_id: int) -> int:
    """Deliver one subscription's waiting entries (queued on commit after a replay or a resume)."""
    return subscription_deliver(subscription_id=subscription_id)


@shared_task(name="integrations.tasks.prune_webhook_log", autoretry_for=(OperationalError,), retry_backoff=True,
             max_retries=3, soft_time_limit=300, time_limit=360)
def prune_webhook_log() -> int:
    """The daily prune of the delivery log (``WEBHOOK_LOG_DAYS``)."""
    return attempts_prune()
