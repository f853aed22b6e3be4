"""Liveness and readiness probes: cheap, unauthenticated and free of anything sensitive.

``/healthz`` says the process answers (no database, nothing else). ``/readyz`` says
whether this instance can do its work: the database answers, the Celery broker
accepts a TCP connection, the checkpoint signing key loads, and the sequencer is
not lagging (the oldest pending ledger entry is younger than
``READY_MAX_PENDING_AGE_SECONDS``). Each check reports a fixed word, never an
error message, host name or path.

With witnesses configured, ``witness_quorum`` says whether every checkpoint older than
``LEDGER_WITNESS_DEADLINE`` is covered by a quorum of cosignatures: "degraded" when not.
It never makes the instance unready: writes go on while the witnesses catch up.
"""
from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from audit.models import LedgerHead, PendingEntry
from audit.services.witnessing import witness_quorum_status
from audit.signing import load_key_file

logger = logging.getLogger(__name__)

OK = "ok"
_DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671, "pyamqp": 5672}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"alive": True})


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        logger.warning("readiness: the database is unreachable", exc_info=True)
        return "unreachable"
    return OK


def check_broker() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "in_process"  # no broker configured: tasks run eagerly in the web process
    url = urlsplit(str(settings.CELERY_BROKER_URL))
    if url.scheme in ("memory", ""):
        return "in_process"
    port = url.port or _DEFAULT_PORTS.get(url.scheme)
    if not url.hostname or port is None:
        return "unsupported"
    try:
        with socket.create_connection((url.hostname, port), timeout=settings.READY_BROKER_TIMEOUT):
            pass
    except OSError:
        logger.warning("readiness: the Celery broker is unreachable")
        return "unreachable"
    return OK


def check_signing_key() -> str:
    path = Path(settings.LEDGER_SIGNING_KEY)
    if settings.LEDGER_SIGNING_KEY_IS_DEV and not path.exists():
        return OK  # the dev key is generated on first use
    if not path.exists():
        return "missing"
    try:
        load_key_file(path)
    except (ImproperlyConfigured, OSError):
        return "invalid"
    return OK


def sequencer_lag_seconds() -> float:
    """Seconds the oldest pending entry has waited (0 with an empty queue).

    Bounded by the time since the sequencer last advanced the head, so an event
    recorded with an old (caller-given) timestamp does not look like a stall.
    """
    oldest = PendingEntry.objects.order_by("id").values_list("timestamp", flat=True).first()
    if oldest is None:
        return 0.0
    now = timezone.now()
    recorded = datetime.fromisoformat(oldest.rstrip("Z")).replace(tzinfo=UTC)
    lag = (now - recorded).total_seconds()
    head = LedgerHead.objects.values_list("updated_at", flat=True).filter(pk=1).first()
    if head is not None:
        lag = min(lag, (now - head).total_seconds())
    return max(lag, 0.0)


def check_sequencer() -> str:
    try:
        lag = sequencer_lag_seconds()
    except DatabaseError:
        return "unknown"
    return OK if lag <= settings.READY_MAX_PENDING_AGE_SECONDS else "lagging"


def check_witness_quorum() -> str | None:
    """"ok", "degraded" (a checkpoint past its deadline without a quorum) or "unknown"; None without witnesses."""
    if not settings.LEDGER_WITNESSES:
        return None
    try:
        return OK if witness_quorum_status().ok else "degraded"
    except DatabaseError:
        return "unknown"


_PASSING = {OK, "in_process"}
# Reported, but not a reason to take the instance out of service.
_ADVISORY = ("witness_quorum",)


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": check_database(), "broker": check_broker(), "signing_key": check_signing_key()}
    checks["sequencer"] = check_sequencer() if checks["database"] == OK else "unknown"
    ready = all(v in _PASSING for v in checks.values())
    witnesses = check_witness_quorum() if checks["database"] == OK else None
    if settings.LEDGER_WITNESSES and witnesses is None:
        witnesses = "unknown"
    body: dict[str, object] = {"ready": ready, "checks": checks}
    if witnesses is not None:
        checks["witness_quorum"] = witnesses
        body["degraded"] = [name for name in _ADVISORY if checks.get(name) not in _PASSING]
    return JsonResponse(body, status=200 if ready else 503)
