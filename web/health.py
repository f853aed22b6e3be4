"""Liveness, readiness and status: cheap, and free of anything sensitive (fixed words only).

``/healthz`` says the process answers (no database, nothing else): the liveness probe.

``/readyz`` says whether *this web process* can serve requests, and checks only what it needs:

* ``database``: ``SELECT 1``. A failure may be a dead *connection* (``pg_terminate_backend``, a
  PostgreSQL restart, a proxy that dropped it) rather than a dead database, so the check then closes the
  connection and tries once more on a fresh one: ``reconnected`` (still ready) when that one answers,
  ``unreachable`` only when it fails too;
* ``cache``: a set and a get of a per-process key with ``READY_CACHE_TIMEOUT`` as the socket timeout;
* ``signing_key``: the checkpoint signing key loads.

What the *worker* does (the sequencer, the broker, the witnesses) is not the web tier's readiness: a
stopped worker must not take every web replica out of service. It is reported at ``/status`` for the
dashboard, and as metrics and alerts (``web.metrics``, docs/operations.md).

``/status`` (the ``METRICS_TOKEN`` bearer, or a signed-in InfoSec member or auditor) always answers 200
with the readiness checks plus ``broker``, ``sequencer`` and, with witnesses, ``witness_quorum``, and
``status``: ``ok`` or ``degraded`` with the names of the failing checks, and ``scheduler``: who runs the beat
schedule in this process (``celery_beat`` with a broker; without one ``running``, ``standby`` (another
process of this machine runs it), ``stopped`` or ``off``: web.embedded_scheduler).

Each check reports a fixed word, never an error message, host name or path; the details go to the log.
"""
from __future__ import annotations

import hmac
import logging
import os
import secrets
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import BaseCache, caches
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.module_loading import import_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from access.roles import AUDITOR, INFOSEC, has_role
from audit.canonical import parse_timestamp
from audit.models import LedgerHead, PendingEntry
from audit.services.witnessing import witness_quorum_status
from audit.signing import load_key_file
from web import embedded_scheduler

logger = logging.getLogger(__name__)

OK = "ok"
RECONNECTED = "reconnected"
_DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671, "pyamqp": 5672}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"alive": True})


# --- what the web process needs --------------------------------------------------------------------------


def _select_one() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_database() -> str:
    """``ok``, ``reconnected`` (the connection was dead, a fresh one answers) or ``unreachable``.

    Inside an atomic block (never in a request: ``ATOMIC_REQUESTS`` is off) closing the connection would
    abort the caller's transaction, so there the first failure is the answer.
    """
    try:
        _select_one()
        return OK
    except DatabaseError:
        if connection.in_atomic_block:
            logger.warning("readiness: the database query failed inside a transaction", exc_info=True)
            return "unreachable"
        logger.info("readiness: the database query failed; retrying on a fresh connection", exc_info=True)
    try:
        connection.close()
    except DatabaseError:
        pass  # the connection was already broken: closing it is all that was asked
    try:
        _select_one()
    except DatabaseError:
        logger.warning("readiness: the database is unreachable (a fresh connection failed too)", exc_info=True)
        return "unreachable"
    logger.warning("readiness: a dead database connection was replaced")
    return RECONNECTED


_probe_lock = threading.Lock()
_probe_caches: dict[str, BaseCache] = {}


def _probe_cache() -> BaseCache:
    """The default cache, with ``READY_CACHE_TIMEOUT`` as its socket timeouts where the backend takes them.

    A separate instance (its own connection pool) built from the same settings, so the probe never waits
    the application's longer timeouts and never changes them. Backends without socket options (locmem,
    database, file, memcached) are probed through the application's own instance.
    """
    conf: dict[str, Any] = dict(settings.CACHES["default"])
    if not conf["BACKEND"].endswith("RedisCache"):
        return caches["default"]
    timeout = float(settings.READY_CACHE_TIMEOUT)
    key = f"{conf!r}|{timeout}"
    with _probe_lock:
        cache = _probe_caches.get(key)
        if cache is None:
            options = dict(conf.get("OPTIONS") or {})
            options.update(socket_connect_timeout=timeout, socket_timeout=timeout, retry_on_timeout=False)
            backend = import_string(conf.pop("BACKEND"))
            location = conf.pop("LOCATION", "")
            cache = backend(location, {**conf, "OPTIONS": options})
            _probe_caches.clear()  # settings changed (tests): the old pool is not used again
            _probe_caches[key] = cache
    return cache


def check_cache() -> str:
    """``ok``, ``unreachable`` (an error or a timeout) or ``inconsistent`` (the value read is not the one set).

    The key is per process and thread, so concurrent probes of several workers never read each other's value.
    """
    key = f"ops:readyz:{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    nonce = secrets.token_hex(8)
    try:
        cache = _probe_cache()
        cache.set(key, nonce, timeout=30)
        got = cache.get(key)
    except Exception:  # any backend's failure is "unreachable", never a 500 of the probe
        logger.warning("readiness: the cache is unreachable", exc_info=True)
        return "unreachable"
    if got != nonce:
        logger.warning("readiness: the cache did not return the value just set")
        return "inconsistent"
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


_READY = {OK, RECONNECTED}


def readiness_checks() -> dict[str, str]:
    return {"database": check_database(), "cache": check_cache(), "signing_key": check_signing_key()}


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = readiness_checks()
    ready = all(v in _READY for v in checks.values())
    return JsonResponse({"ready": ready, "checks": checks}, status=200 if ready else 503)


# --- what the worker does: the status endpoint, metrics and alerts ----------------------------------------


def check_broker() -> str:
    """``ok``, ``in_process`` (no broker: tasks run eagerly), ``unreachable`` or ``unsupported`` (a URL
    without a host). A TCP connection within ``READY_BROKER_TIMEOUT``: the broker's own protocol is the
    worker's business."""
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
        logger.warning("status: the Celery broker is unreachable")
        return "unreachable"
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
    recorded = parse_timestamp(oldest)
    lag = (now - recorded).total_seconds()
    head = LedgerHead.objects.values_list("updated_at", flat=True).filter(pk=1).first()
    if head is not None:
        lag = min(lag, (now - head).total_seconds())
    return max(lag, 0.0)


def check_sequencer() -> str:
    """``ok``, ``lagging`` (the oldest pending entry waited more than ``READY_MAX_PENDING_AGE_SECONDS``)
    or ``unknown`` (the database could not be read)."""
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


_PASSING = _READY | {"in_process"}


def status_checks() -> dict[str, str]:
    """Every check, readiness's first; the worker's are ``unknown`` while the database is unreachable."""
    checks = readiness_checks()
    db_ok = checks["database"] in _READY
    checks["broker"] = check_broker()
    checks["sequencer"] = check_sequencer() if db_ok else "unknown"
    if settings.LEDGER_WITNESSES:
        checks["witness_quorum"] = (check_witness_quorum() or "unknown") if db_ok else "unknown"
    return checks


def bearer_matches(request: HttpRequest) -> bool:
    """``Authorization: Bearer <METRICS_TOKEN>``, compared in constant time (False without a token)."""
    expected = settings.METRICS_TOKEN
    if not expected:
        return False
    keyword, _, presented = request.headers.get("Authorization", "").partition(" ")
    return keyword.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected.encode())


def _may_read_status(request: HttpRequest) -> bool:
    if bearer_matches(request):
        return True
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return has_role(user, INFOSEC) or has_role(user, AUDITOR)


@never_cache
@require_GET
def status_view(request: HttpRequest) -> HttpResponse:
    """The dashboard's view of every dependency: always 200 when allowed (it is not a probe).

    Allowed: the ``METRICS_TOKEN`` bearer, a signed-in InfoSec member or auditor. Otherwise 401 (with a
    token configured or a signed-in user) or 404 (anonymous, no token configured), like ``/metrics``.
    """
    if not _may_read_status(request):
        user = getattr(request, "user", None)
        if not settings.METRICS_TOKEN and not (user is not None and user.is_authenticated):
            raise Http404
        response = HttpResponse("authentication required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="status"'
        return response
    checks = status_checks()
    failing = [name for name, word in checks.items() if word not in _PASSING]
    # Who runs the beat schedule here: informative only (a standby gunicorn worker is not a fault).
    return JsonResponse({"status": "degraded" if failing else OK, "checks": checks, "degraded": failing,
                         "scheduler": embedded_scheduler.state()})
