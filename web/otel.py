"""OpenTelemetry tracing: optional, off by default (docs/operations.md).

On when ``OTEL_ENABLED`` is true, or when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the traces-only
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set. Needs the ``otel`` extra (``pip install '.[otel]'``):
the official Django and Celery instrumentations and the OTLP/HTTP exporter. They are not in the
application's lock (the image does not ship them); enabling tracing without them fails at start-up
with ``ImproperlyConfigured`` rather than running untraced in silence.

The exporter reads the standard ``OTEL_*`` variables (endpoint, headers, service name through
``OTEL_SERVICE_NAME`` or ``OTEL_RESOURCE_ATTRIBUTES``, sampler through ``OTEL_TRACES_SAMPLER``).
Spans leave the process in a background thread (``BatchSpanProcessor``, which re-creates its thread in
each forked gunicorn or Celery child); a collector that is down loses spans, never requests.

Database spans: ``opentelemetry-instrumentation-psycopg`` is used when it is installed. It is not in
the extra because its current release pins an older ``opentelemetry-instrumentation`` than the Django
and Celery instrumentations that match the SDK the application's lock already has (MLflow brings it).
"""
from __future__ import annotations

import importlib
import logging
import os
from typing import Any

from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

REQUIRED = (
    "opentelemetry.sdk.trace",
    "opentelemetry.sdk.trace.export",
    "opentelemetry.sdk.resources",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.instrumentation.django",
    "opentelemetry.instrumentation.celery",
)
SERVICE_NAME = "ml-governance-ledger"
PROBES = "healthz,readyz,metrics,status"

_instrumentors: list[Any] = []


def _import_all() -> dict[str, Any]:
    modules: dict[str, Any] = {}
    missing: list[str] = []
    for name in REQUIRED:
        try:
            modules[name] = importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImproperlyConfigured(
            "OpenTelemetry tracing is enabled (OTEL_ENABLED or OTEL_EXPORTER_OTLP_ENDPOINT) but its packages are "
            f"missing ({', '.join(missing)}): install the otel extra (pip install '.[otel]') or unset them"
        )
    return modules


def configure(*, tracer_provider: Any = None) -> Any:
    """Instrument Django (requests) and Celery (tasks, publishing), and psycopg when installed.

    Without ``tracer_provider`` one is built with the OTLP/HTTP exporter and made the global provider (once per
    process). Returns the provider. Raises ``ImproperlyConfigured`` when the packages are missing.
    """
    modules = _import_all()
    if tracer_provider is None:
        sdk_trace = modules["opentelemetry.sdk.trace"]
        resources = modules["opentelemetry.sdk.resources"]
        export = modules["opentelemetry.sdk.trace.export"]
        exporter = modules["opentelemetry.exporter.otlp.proto.http.trace_exporter"].OTLPSpanExporter()
        # Resource.create merges OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES over this default.
        tracer_provider = sdk_trace.TracerProvider(resource=resources.Resource.create({"service.name": SERVICE_NAME}))
        tracer_provider.add_span_processor(export.BatchSpanProcessor(exporter))
        from opentelemetry import trace

        trace.set_tracer_provider(tracer_provider)
    django_instrumentor = modules["opentelemetry.instrumentation.django"].DjangoInstrumentor()
    celery_instrumentor = modules["opentelemetry.instrumentation.celery"].CeleryInstrumentor()
    # Probes and scrapes every few seconds are noise, not traces (OTEL_PYTHON_DJANGO_EXCLUDED_URLS overrides).
    excluded = os.environ.get("OTEL_PYTHON_DJANGO_EXCLUDED_URLS") or PROBES
    django_instrumentor.instrument(tracer_provider=tracer_provider, excluded_urls=excluded)
    celery_instrumentor.instrument(tracer_provider=tracer_provider)
    _instrumentors.extend([django_instrumentor, celery_instrumentor])
    try:
        psycopg = importlib.import_module("opentelemetry.instrumentation.psycopg")
    except ImportError:
        logger.info("tracing: opentelemetry-instrumentation-psycopg is not installed: no database spans")
    else:
        instrumentor = psycopg.PsycopgInstrumentor()
        instrumentor.instrument(tracer_provider=tracer_provider)
        _instrumentors.append(instrumentor)
    return tracer_provider


def unconfigure() -> None:
    """Undo ``configure``'s instrumentation (tests)."""
    while _instrumentors:
        _instrumentors.pop().uninstrument()
