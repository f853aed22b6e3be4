"""Prometheus metrics at ``/metrics`` (docs/deploy.md).

Two kinds:

* process counters (requests, Celery task outcomes, MLflow webhook deliveries refused
  by reason and accepted) kept by ``prometheus_client``,
  updated by ``MetricsMiddleware`` and Celery signals. Under gunicorn with several
  workers set ``PROMETHEUS_MULTIPROC_DIR`` (an empty, writable directory) so the
  workers' counters are summed at scrape time (``MultiProcessCollector``);
* ledger and governance gauges read from the database at scrape time by
  ``DatabaseCollector`` (a handful of indexed queries), so every web process
  reports the same numbers and nothing has to be kept in sync.

Access: ``Authorization: Bearer <METRICS_TOKEN>`` (compared in constant time) or a
signed-in InfoSec member. Otherwise 401 when a token is configured, 404 when not.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from celery.signals import task_failure, task_retry, task_success, worker_ready
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
from governance.models import PromotionRequest
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
        try:
            yield from _collect_db()
        except DatabaseError:
            logger.warning("metrics: the database could not be read", exc_info=True)
            up = GaugeMetricFamily("governance_metrics_database_up", "Whether the scrape could read the database.")
            up.add_metric([], 0)
            yield up


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


DB_REGISTRY = CollectorRegistry(auto_describe=False)
DB_REGISTRY.register(DatabaseCollector())


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
