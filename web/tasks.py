"""Celery tasks of the delivery plumbing: the expiry of ``Idempotency-Key`` records."""
from __future__ import annotations

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

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
