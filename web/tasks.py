"""Celery tasks of the delivery plumbing: the expiry of ``Idempotency-Key`` records, and the sweep that queues
again the follow-up tasks a broker outage lost after their change committed (``web.follow_ups``)."""
from __future__ import annotations

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from web import follow_ups
from web.models import IdempotencyRecord

#: Rows deleted per statement, so one run never holds a long lock on the table.
PURGE_BATCH = 5_000


@shared_task(name="web.tasks.purge_idempotency_keys", autoretry_for=(OperationalError,), retry_backoff=True,
             max_retries=3, soft_time_limit=60, time_limit=90)
def purge_idempotency_keys() -> int:
    """Delete expired ``Idempotency-Key`` records (beat). Idempotent; returns how many were deleted.

    An expired record is already ignored by the middleware (the key starts afresh), so a run that
    stops half-way leaves nothing wrong, only rows for the next run."""
    now = timezone.now()
    deleted = 0
    while True:
        ids = list(IdempotencyRecord.objects.filter(expires_at__lte=now).values_list("pk", flat=True)[:PURGE_BATCH])
        if not ids:
            return deleted
        deleted += IdempotencyRecord.objects.filter(pk__in=ids).delete()[0]


@shared_task(name="web.tasks.requeue_stalled_follow_ups", autoretry_for=(OperationalError,), retry_backoff=True,
             max_retries=3, soft_time_limit=60, time_limit=90)
def requeue_stalled_follow_ups() -> dict[str, int]:
    """Queue again the follow-ups whose task was lost (beat, every ``FOLLOW_UP_SWEEP_INTERVAL`` seconds).

    A follow-up is judged lost when nothing has started it for ``FOLLOW_UP_GRACE_SECONDS``; a slow one
    mistaken for lost only gets an idle twin (every follow-up is idempotent, also run twice at once). The
    reasoning and what each re-queue leaves behind: ``web.follow_ups``."""
    return follow_ups.requeue_stalled_follow_ups()
