"""Prometheus metrics at ``/metrics`` (docs/deploy.md).

Two kinds:

* process counters (requests, Celery task outcomes, MLflow webhook deliveries refused
  by reason and accepted) kept by ``prometheus_client``,
  updated by ``MetricsMiddleware`` and Celery signals. Under gunicorn with several
  workers set ``PROMETHEUS_MULTIPROC_DIR`` (an empty, writable directory) so the
  workers' counters are summed at scrape time (``MultiProcessCollector``);
* ledger and governance gauges read from the database at scrape time by
  ``DatabaseCollector`` (a handful of indexed queries), so every web process
  reports the same numbers and nothing has to be kept in sync; the Celery queue depth
  read from a Redis broker at scrape time by ``BrokerCollector``;
* worker-side numbers (task latency and queue wait, the last successful registry sweep)
  kept by the worker's processes and served on its own port (``CELERY_METRICS_PORT``).

docs/operations.md lists every metric and the alerts built on them
(docker/prometheus/alerts.yml).

Access: ``Authorization: Bearer <METRICS_TOKEN>`` (compared in constant time) or a
signed-in InfoSec member. Otherwise 401 when a token is configured, 404 when not.
"""
from __future__ import annotations

import collections
import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from celery.signals import (
    before_task_publish,
    task_failure,
    task_postrun,
    task_prerun,
    task_retry,
    task_success,
    worker_ready,
)
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Min
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from access.models import Grant
from access.roles import INFOSEC, has_role
from audit.models import Checkpoint, LedgerHead, PendingEntry, VerificationRun
from audit.services.witnessing import witness_quorum_status
from governance.models import ComplianceViolation, PromotionRequest, WebhookDelivery
from integrations.models import StreamCursor
from web.health import bearer_matches, sequencer_lag_seconds
from web.logging import route_of

logger = logging.getLogger(__name__)

REQUESTS = Counter(
    "governance_http_requests_total", "HTTP requests by URL route name, method and status.",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "governance_http_request_duration_seconds", "HTTP request duration by URL route name.", ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CELERY_TASKS = Counter(
    "governance_celery_tasks_total", "Celery task outcomes by task name.", ["task", "outcome"],
)
# Reasons are the endpoint's own refusal codes (a fixed set), never anything a caller sent.
WEBHOOK_REFUSALS = Counter(
    "governance_mlflow_webhook_refusals_total", "MLflow webhook deliveries refused, by reason.", ["reason"],
)
WEBHOOK_ACCEPTED = Counter(
    "governance_mlflow_webhook_deliveries_accepted_total", "MLflow webhook deliveries accepted.",
)


# Runtime events (POST /api/v1/events) by type family (the part of the registered type before the dot:
# deployment, incident, monitoring) and outcome: accepted (newly recorded) or duplicate (a retry, by event_id).
RUNTIME_EVENTS = Counter(
    "governance_runtime_events_total", "Runtime events ingested, by type family and outcome.", ["family", "outcome"],
)
# Celery task latency, observed in the worker (task_prerun/task_postrun); task names are the registered ones.
_TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
CELERY_TASK_SECONDS = Histogram(
    "governance_celery_task_duration_seconds", "Celery task run time in the worker, by task name.", ["task"],
    buckets=_TASK_BUCKETS,
)
CELERY_QUEUE_WAIT = Histogram(
    "governance_celery_task_queue_wait_seconds",
    "Time from publishing (or the task's ETA) to the start of its run, by task name.", ["task"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
# Set by the worker when governance.tasks.reconcile_registry succeeds. "max" in multiprocess mode: the prefork
# children that ran a sweep each leave a file, and the newest wins (also after the child is recycled).
REGISTRY_SWEEP_SUCCESS = Gauge(
    "governance_registry_sweep_last_success_timestamp_seconds",
    "When the last full MLflow registry sweep (reconcile_registry) succeeded (Unix time).",
    multiprocess_mode="max",
)
_SWEEP_TASK = "governance.tasks.reconcile_registry"
SENT_AT_HEADER = "governance_sent_at"


def runtime_events_counted(types: list[str], created: list[bool]) -> None:
    """Count one ingested batch (call it once the batch committed).

    Tallied first and incremented once per (family, outcome): a batch is up to 1,000 events, and a labelled
    child's lookup and lock per event cost more than the rest of the counting."""
    tally = collections.Counter(zip(types, created, strict=True))
    for (kind, new), n in tally.items():
        family = kind.partition(".")[0] if kind.partition(".")[0] in _RUNTIME_FAMILIES else "other"
        RUNTIME_EVENTS.labels(family, "accepted" if new else "duplicate").inc(n)


_RUNTIME_FAMILIES = frozenset({"deployment", "incident", "monitoring"})
for _family in sorted(_RUNTIME_FAMILIES):  # every series from the start, so that rate() sees the first event
    for _outcome in ("accepted", "duplicate"):
        RUNTIME_EVENTS.labels(_family, _outcome)


class MetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        route = route_of(request)
        if route != "ops-metrics":
            method = request.method if request.method in _METHODS else "OTHER"
            REQUESTS.labels(route, method, str(response.status_code)).inc()
            REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)
        return response


_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def _task_name(sender: Any) -> str:
    return str(getattr(sender, "name", None) or "unknown")


@task_success.connect(weak=False)
def _on_success(sender: Any = None, **_: Any) -> None:
    CELERY_TASKS.labels(_task_name(sender), "success").inc()


@task_failure.connect(weak=False)
def _on_failure(sender: Any = None, **_: Any) -> None:
    CELERY_TASKS.labels(_task_name(sender), "failure").inc()


@task_retry.connect(weak=False)
def _on_retry(sender: Any = None, **_: Any) -> None:
    CELERY_TASKS.labels(_task_name(sender), "retry").inc()


@task_success.connect(weak=False)
def _on_sweep_success(sender: Any = None, **_: Any) -> None:
    if _task_name(sender) == _SWEEP_TASK:
        REGISTRY_SWEEP_SUCCESS.set(time.time())


@before_task_publish.connect(weak=False)
def _stamp_sent_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Stamp the wall-clock time of publishing into the message headers (protocol 2), for the queue wait.

    Publisher and worker clocks must agree (NTP); a negative wait from a skewed clock is counted as 0.
    """
    if headers is not None:
        headers[SENT_AT_HEADER] = time.time()


# task id -> monotonic start; popped by task_postrun (a task whose worker died never gets there: bounded by
# the pool's concurrency, as each child runs one task at a time).
_started: dict[str, float] = {}


@task_prerun.connect(weak=False)
def _on_prerun(sender: Any = None, task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id is None:
        return
    _started[task_id] = time.monotonic()
    request = getattr(task, "request", None)
    # A worker puts a message's custom headers on the request itself; apply(headers=...) under "headers".
    sent_at = getattr(request, SENT_AT_HEADER, None) or (getattr(request, "headers", None) or {}).get(SENT_AT_HEADER)
    if not isinstance(sent_at, int | float):
        return  # run eagerly or published by a client that does not stamp: no queue to wait in
    since = float(sent_at)
    eta = getattr(request, "eta", None)
    if eta:  # a countdown or retry delay is not queueing
        try:
            since = max(since, datetime.fromisoformat(str(eta)).timestamp())
        except ValueError:
            pass
    CELERY_QUEUE_WAIT.labels(_task_name(sender)).observe(max(0.0, time.time() - since))


@task_postrun.connect(weak=False)
def _on_postrun(sender: Any = None, task_id: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id, None) if task_id is not None else None
    if started is not None:
        CELERY_TASK_SECONDS.labels(_task_name(sender)).observe(time.monotonic() - started)


@worker_ready.connect(weak=False)
def _serve_worker_metrics(**_: Any) -> None:
    """A Celery worker is not behind the web app: it serves its own counters when asked to.

    Tasks run in prefork children, so their counters reach this (parent) process only
    through ``PROMETHEUS_MULTIPROC_DIR``; without it only the parent's own are served.
    """
    port = getattr(settings, "CELERY_METRICS_PORT", None)
    if not port:
        return
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(int(port), addr=str(settings.CELERY_METRICS_ADDR), registry=registry)


class DatabaseCollector(Collector):
    """Ledger and governance gauges computed at scrape time."""

    def collect(self) -> Iterator[Any]:
        # Gathered first, so that a failure half-way never leaves a scrape with half of the gauges.
        up = GaugeMetricFamily("governance_metrics_database_up", "Whether the scrape could read the database.")
        try:
            families = list(_collect_db())
        except DatabaseError:
            logger.warning("metrics: the database could not be read", exc_info=True)
            families = []
        up.add_metric([], 1 if families else 0)
        yield up
        yield from families


def _gauge(name: str, doc: str, value: float | None, labels: dict[str, str] | None = None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels or {}))
    if value is not None:
        family.add_metric(list((labels or {}).values()), value)
    return family


def _collect_db() -> Iterator[Any]:
    now = timezone.now()
    head = LedgerHead.objects.filter(pk=1).values_list("tree_size", flat=True).first() or 0
    appended = CounterMetricFamily("governance_ledger_entries", "Entries integrated into the ledger (tree size).")
    appended.add_metric([], head)
    yield appended
    yield _gauge("governance_ledger_pending_entries", "Recorded entries waiting for the sequencer.",
                 PendingEntry.objects.count())
    yield _gauge("governance_ledger_sequencer_lag_seconds", "Age of the oldest pending entry (0 when none).",
                 sequencer_lag_seconds())
    checkpoint = Checkpoint.objects.order_by("-id").values_list("created_at", "tree_size").first()
    if checkpoint is not None:
        yield _gauge("governance_ledger_checkpoint_age_seconds", "Seconds since the latest signed checkpoint.",
                     (now - checkpoint[0]).total_seconds())
        yield _gauge("governance_ledger_checkpoint_tree_size", "Tree size of the latest signed checkpoint.",
                     checkpoint[1])
    yield from _collect_witnesses()
    yield from _collect_streams(head)
    ok = GaugeMetricFamily("governance_ledger_verification_ok",
                           "Outcome of the latest finished verification run (1 intact, 0 not).", labels=["mode"])
    seconds = GaugeMetricFamily("governance_ledger_verification_duration_seconds",
                                "Duration of the latest finished verification run.", labels=["mode"])
    finished = GaugeMetricFamily("governance_ledger_verification_finished_timestamp_seconds",
                                 "When the latest verification run finished (Unix time).", labels=["mode"])
    size = GaugeMetricFamily("governance_ledger_verification_tree_size",
                             "Entries covered by the latest verification run.", labels=["mode"])
    for mode in VerificationRun.Mode.values:
        run = (VerificationRun.objects.filter(mode=mode, finished_at__isnull=False)
               .order_by("-finished_at", "-id").values_list("ok", "duration_ms", "finished_at", "tree_size").first())
        if run is None:
            continue
        ok.add_metric([mode], 1 if run[0] else 0)
        seconds.add_metric([mode], (run[1] or 0) / 1000)
        if run[2] is not None:
            finished.add_metric([mode], run[2].timestamp())
        size.add_metric([mode], run[3])
    yield from (ok, seconds, finished, size)
    promotions = GaugeMetricFamily("governance_promotions", "Promotion requests by state.", labels=["state"])
    counts = dict(PromotionRequest.objects.values_list("state").annotate(n=Count("id")).values_list("state", "n"))
    for state in PromotionRequest.State.values:
        promotions.add_metric([state], counts.get(state, 0))
    yield promotions
    violations = GaugeMetricFamily("governance_compliance_violations_open",
                                   "Compliance violations not yet acknowledged, by kind.", labels=["kind"])
    open_counts = dict(ComplianceViolation.objects.filter(acknowledged_at__isnull=True).order_by()
                       .values_list("kind").annotate(n=Count("id")).values_list("kind", "n"))
    for kind in ComplianceViolation.Kind.values:
        violations.add_metric([kind], open_counts.get(kind, 0))
    yield violations
    # The webhook outbox (docs/promotions.md): accepted deliveries whose follow-up has not run yet. A few
    # rows for a few seconds is normal; an old one means the drain is not running or keeps failing.
    outbox = WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING).aggregate(
        n=Count("id"), oldest=Min("received_at"))
    yield _gauge("governance_mlflow_webhook_outbox_pending",
                 "Accepted MLflow webhook deliveries whose follow-up (a model sync) has not run yet.", outbox["n"])
    yield _gauge("governance_mlflow_webhook_outbox_oldest_age_seconds",
                 "Seconds the oldest pending webhook delivery has waited for its follow-up (0 when none).",
                 max((now - outbox["oldest"]).total_seconds(), 0.0) if outbox["oldest"] is not None else 0.0)
    expiring = GaugeMetricFamily("governance_access_grants_expiring",
                                 "Active grants that expire within the window.", labels=["within"])
    active = Grant.objects.filter(revoked_at__isnull=True, expires_at__gt=now)
    for label, delta in (("24h", timedelta(hours=24)), ("7d", timedelta(days=7))):
        expiring.add_metric([label], active.filter(expires_at__lte=now + delta).count())
    yield expiring
    oldest = active.aggregate(m=Min("expires_at"))["m"]
    if oldest is not None:
        yield _gauge("governance_access_next_grant_expiry_seconds", "Seconds until the next active grant expires.",
                     (oldest - now).total_seconds())


def _collect_streams(tree_size: int) -> Iterator[Any]:
    """Each outbound stream (integrations.streams: SIEM sinks, webhooks, notifications): how far behind the
    ledger head it is, when it last delivered, and whether its last run failed."""
    lag = GaugeMetricFamily("governance_stream_lag_entries",
                            "Ledger entries not yet delivered by each outbound stream.", labels=["stream"])
    last = GaugeMetricFamily("governance_stream_last_delivery_timestamp_seconds",
                             "When each outbound stream last delivered (absent: never).", labels=["stream"])
    failing = GaugeMetricFamily("governance_stream_failing",
                                "1 when the stream's last run failed (its error is on the console).", labels=["stream"])
    for name, seq, delivered_at, error in StreamCursor.objects.values_list(
            "name", "seq", "last_delivered_at", "last_error"):
        lag.add_metric([name], max(0, tree_size - 1 - seq))
        if delivered_at is not None:
            last.add_metric([name], delivered_at.timestamp())
        failing.add_metric([name], 1 if error else 0)
    yield from (lag, last, failing)


def _collect_witnesses() -> Iterator[Any]:
    """Witnessing (audit.services.witnessing): nothing at all when no witness is configured."""
    if not settings.LEDGER_WITNESSES:
        return
    status = witness_quorum_status()
    yield _gauge("governance_ledger_witness_quorum_lag_entries",
                 "Entries between the latest checkpoint and the largest one cosigned by a witness quorum.", status.lag)
    yield _gauge("governance_ledger_witness_quorum_ok",
                 "1 unless a checkpoint is past LEDGER_WITNESS_DEADLINE without a witness quorum.", int(status.ok))
    cosigned = GaugeMetricFamily("governance_ledger_witness_cosigned_size",
                                 "Largest tree size each witness cosigned.", labels=["witness"])
    lag = GaugeMetricFamily("governance_ledger_witness_lag_entries",
                            "Entries between the latest checkpoint and what each witness cosigned.", labels=["witness"])
    refusals = CounterMetricFamily("governance_ledger_witness_refusals",
                                   "Witness answers refused (bad or missing cosignature, a lie, an error status).",
                                   labels=["witness"])
    for row in status.witnesses:
        cosigned.add_metric([row.name], row.cosigned_size)
        lag.add_metric([row.name], max(0, status.latest_size - row.cosigned_size))
        refusals.add_metric([row.name], row.refusals)
    yield from (cosigned, lag, refusals)


# kombu's Redis transport keeps a queue's messages in one list per priority step (default steps 0, 3, 6, 9):
# the queue's own name for step 0, "<queue>\x06\x16<step>" for the others.
_REDIS_PRIORITY_STEPS = (0, 3, 6, 9)
_REDIS_PRIORITY_SEP = "\x06\x16"
_broker_clients: dict[tuple[str, float], Any] = {}


def _redis_client(url: str, timeout: float) -> Any:
    import redis

    key = (url, timeout)
    client = _broker_clients.get(key)
    if client is None:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                      retry_on_timeout=False)
        _broker_clients.clear()
        _broker_clients[key] = client
    return client


class BrokerCollector(Collector):
    """Celery queue depth at scrape time: ``LLEN`` of the default queue's lists on a Redis broker.

    Nothing for an eager (in-process) or non-Redis broker. ``READY_BROKER_TIMEOUT`` bounds the wait;
    an unreachable broker is ``governance_celery_broker_up 0`` and no depth (never a failed scrape).
    """

    def collect(self) -> Iterator[Any]:
        url = str(settings.CELERY_BROKER_URL)
        if settings.CELERY_TASK_ALWAYS_EAGER or not url.startswith(("redis://", "rediss://")):
            return
        queue = str(getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", None) or "celery")
        up = GaugeMetricFamily("governance_celery_broker_up", "Whether the scrape could read the Celery broker.")
        try:
            client = _redis_client(url, float(settings.READY_BROKER_TIMEOUT))
            with client.pipeline(transaction=False) as pipe:
                for step in _REDIS_PRIORITY_STEPS:
                    pipe.llen(queue if step == 0 else f"{queue}{_REDIS_PRIORITY_SEP}{step}")
                depth = sum(int(n) for n in pipe.execute())
        except Exception:  # any broker failure is "down" for this scrape, never a 500 of /metrics
            logger.warning("metrics: the Celery broker could not be read", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield _gauge("governance_celery_queue_depth", "Messages waiting in the Celery queue.", depth,
                     {"queue": queue})


# Computed at scrape time, in every process alike: the database's gauges and the broker's queue depth.
DB_REGISTRY = CollectorRegistry(auto_describe=False)
DB_REGISTRY.register(DatabaseCollector())
DB_REGISTRY.register(BrokerCollector())


def exposition() -> bytes:
    """The scrape body: process counters (summed over processes in multiprocess mode) and DB gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        process = generate_latest(registry)
    else:
        process = generate_latest(REGISTRY)
    return process + generate_latest(DB_REGISTRY)


def _authorised(request: HttpRequest) -> bool:
    if bearer_matches(request):
        return True
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_active:
        return has_role(user, INFOSEC)
    return False


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _authorised(request):
        if not settings.METRICS_TOKEN:
            raise Http404
        response = HttpResponse("authentication required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
