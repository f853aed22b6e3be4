"""Optional OpenTelemetry tracing (web/otel.py): off by default, loud when enabled without its packages, and with
the otel extra installed a request and a Celery task produce spans (an in-memory exporter, no collector)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from tests.settings_helpers import settings_environ, settings_module
from web import otel

ROOT = Path(__file__).resolve().parents[2]


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing (find_spec imports the parents)
        return False


INSTALLED = all(_installed(name) for name in (
    "opentelemetry.sdk", "opentelemetry.instrumentation.django", "opentelemetry.instrumentation.celery",
    "opentelemetry.exporter.otlp.proto.http"))
needs_otel = pytest.mark.skipif(not INSTALLED, reason="the otel extra is not installed (pip install '.[otel]')")


def test_off_by_default_and_on_by_the_standard_endpoint_variable(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    def enabled(**environ: str) -> bool:
        base = {k: v for k, v in settings_environ(tmp_path).items() if not k.startswith("OTEL_")}
        return bool(settings_module(monkeypatch, {**base, **environ})["OTEL_ENABLED"])

    assert enabled() is False
    assert enabled(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318") is True
    assert enabled(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://127.0.0.1:4318/v1/traces") is True
    assert enabled(OTEL_ENABLED="1") is True
    assert enabled(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318", OTEL_ENABLED="0") is False


def test_enabled_without_the_packages_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules is how Python spells "this module cannot be imported": the package missing.
    monkeypatch.setitem(sys.modules, "opentelemetry.instrumentation.django", None)
    with pytest.raises(ImproperlyConfigured, match=r"opentelemetry\.instrumentation\.django.*\.\[otel\]"):
        otel.configure()
    assert otel._instrumentors == []


@pytest.mark.skipif(INSTALLED, reason="the otel extra is installed here: a start-up cannot fail for its absence")
def test_a_process_started_with_tracing_but_without_the_packages_refuses_to_start() -> None:
    env = {**os.environ, "OTEL_ENABLED": "1", "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert "install the otel extra" in result.stderr


@pytest.fixture
def spans() -> Iterator[Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel.configure(tracer_provider=provider)
    try:
        yield exporter
    finally:
        otel.unconfigure()


@needs_otel
@pytest.mark.django_db
def test_a_request_and_a_task_produce_spans(spans: Any) -> None:
    from audit.tasks import integrate_pending

    client = Client()  # a new client loads the middleware the instrumentation added
    assert client.get("/healthz").status_code == 200  # a probe: not traced
    assert client.get("/api/v1/schema/").status_code == 200
    integrate_pending.apply()

    finished = spans.get_finished_spans()
    server = [s for s in finished if s.kind.name == "SERVER"]
    assert len(server) == 1, [s.name for s in finished]
    assert server[0].name.startswith("GET") and "healthz" not in server[0].name
    assert server[0].attributes.get("http.response.status_code", server[0].attributes.get("http.status_code")) == 200
    task = [s for s in finished if "integrate_pending" in s.name]
    assert task, [s.name for s in finished]


@needs_otel
@pytest.mark.django_db
def test_unconfigured_nothing_is_traced(spans: Any) -> None:
    otel.unconfigure()
    Client().get("/api/v1/schema/")
    assert spans.get_finished_spans() == ()
