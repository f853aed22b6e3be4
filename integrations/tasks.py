"""Celery tasks of the outbound streams. Idempotent: a run delivers what is after each stream's cursor."""
from __future__ import annotations

import logging
import time

from celery import shared_task

from integrations.siem import services as siem

logger = logging.getLogger(__name__)
# One run keeps delivering while a sink is behind, up to this long, then leaves the rest to the next beat.
SIEM_RUN_SECONDS = 20.0


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
