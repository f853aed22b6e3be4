"""docker/prometheus/alerts.yml and docker/grafana/governance.json: valid, unit-tested, and built on metrics that exist.

``promtool`` (Debian's ``prometheus`` package, installed by .ci/run) checks the rules and runs their unit tests
(docker/prometheus/alerts_test.yml). Every metric an alert or a dashboard panel names must be one that a real
scrape exports: the web's /metrics with every optional part switched on (a checkpoint, a verification, a real
witness, a Redis broker of the test's own, a registry sweep, a refused webhook, a task that waited in a queue).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.test import Client

from audit.services.checkpoints import checkpoint_create
from audit.services.integrity import verification_run
from integrations.streams import stream_cursor
from tests.audit.witnessing.helpers import configure
from tests.ops.helpers import notes, own_redis
from tests.ops.test_metrics import TOKEN, scrape
from web.metrics import SENT_AT_HEADER

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "docker" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
DASHBOARD = ROOT / "docker" / "grafana" / "governance.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")

METRIC = re.compile(r"\b(governance_[a-z0-9_]+)")


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    result = subprocess.run([str(PROMTOOL), "check", "rules", str(ALERTS)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


@needs_promtool
def test_promtool_runs_the_rules_unit_tests() -> None:
    result = subprocess.run([str(PROMTOOL), "test", "rules", "alerts_test.yml"], cwd=PROMETHEUS,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test_and_a_runbook_section() -> None:
    tests = (PROMETHEUS / "alerts_test.yml").read_text()
    runbook = (ROOT / "docs" / "operations.md").read_text()
    anchors = {"#" + re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", runbook, re.M)}
    for rule in alert_rules():
        name = rule["alert"]
        assert f"alertname: {name}\n" in tests, f"{name} has no unit test in alerts_test.yml"
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        link = rule["annotations"]["runbook"]
        assert link.startswith("docs/operations.md#") and link.removeprefix("docs/operations.md") in anchors, (
            f"{name}: {link} is not a heading of docs/operations.md")


@pytest.fixture
def exported(client: Client, settings: Any, witness_factory: Any, mlflow_store: Any) -> set[str]:
    """Every sample name of a scrape with all the optional metrics present."""
    from audit.signing import current_verifier_key
    from audit.tasks import integrate_pending
    from governance import tasks
    from web import follow_ups  # noqa: F401  (the sweep's counter: on the worker, as the beat task imports it)

    settings.METRICS_TOKEN = TOKEN
    notes(3)
    checkpoint_create()
    verification_run(mode="incremental")
    verification_run(mode="full")
    configure(settings, [witness_factory(log_vkeys=[current_verifier_key()], name="w1.test", behaviour="honest")],
              quorum=None)
    tasks.reconcile_registry.apply(throw=True)
    integrate_pending.apply(headers={SENT_AT_HEADER: time.time() - 3})
    assert client.post("/webhooks/mlflow", b"{}", content_type="application/json").status_code >= 400
    stream_cursor("siem.syslog")  # an outbound stream (integrations.streams): its lag and failing gauges
    with own_redis() as redis:
        settings.CELERY_TASK_ALWAYS_EAGER = False
        settings.CELERY_BROKER_URL = redis.url
        text = scrape(client)
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    assert "governance_celery_queue_depth" in names and "governance_ledger_witness_quorum_ok" in names
    return names


def _missing(exprs: list[str], exported: set[str]) -> list[str]:
    named = {name for expr in exprs for name in METRIC.findall(expr)}
    assert named, "no governance_ metric named at all"
    return sorted(named - exported)


@pytest.mark.django_db
def test_every_metric_an_alert_names_is_exported(exported: set[str]) -> None:
    assert _missing([rule["expr"] for rule in alert_rules()], exported) == []


@pytest.mark.django_db
def test_every_metric_a_dashboard_panel_names_is_exported(exported: set[str]) -> None:
    assert _missing(dashboard_exprs(), exported) == []


def test_the_dashboard_is_one_grafana_can_import() -> None:
    doc = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    assert doc["uid"] and doc["templating"]["list"][0]["type"] == "datasource"
    for panel in doc["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and all(METRIC.search(t["expr"]) for t in panel["targets"]), panel["title"]


@pytest.mark.django_db
def test_the_check_catches_a_misspelt_metric(exported: set[str]) -> None:
    assert _missing(["rate(governance_http_request_total[5m])"], exported) == ["governance_http_request_total"]


@needs_promtool
def test_promtool_checks_the_example_scrape_configuration() -> None:
    result = subprocess.run([str(PROMTOOL), "check", "config", "--syntax-only", str(PROMETHEUS / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
