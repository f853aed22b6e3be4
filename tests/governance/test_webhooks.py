"""POST /webhooks/mlflow: deliveries signed exactly as MLflow signs them, and every way to refuse one.

A refusal is answered, counted by reason and never written to the ledger on its own
(tests/governance/test_webhook_refusals.py floods, summarises and rate-limits).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import pytest
import requests
from django.core.cache import cache
from django.test import Client
from mlflow.entities.webhook import Webhook, WebhookAction, WebhookEntity, WebhookEvent
from mlflow.webhooks.delivery import _generate_hmac_signature, _send_webhook_request
from prometheus_client import REGISTRY
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from audit.models import Entry, PendingEntry
from governance import tasks
from governance.models import ModelVersion, RegisteredModel, WebhookDelivery, WebhookRefusalCounter
from tests.governance.mlflow_helpers import MlflowStore, entries

pytestmark = pytest.mark.django_db


SECRET = "whsec-governance-test-3f9a1c"
URL = "/webhooks/mlflow"
Capture = Callable[..., AbstractContextManager[list[Callable[[], Any]]]]
VERSION_CREATED = {"name": "fraud-detector", "version": "3", "source": "models:/m-0a1b2c", "run_id": "abcd1234",
                   "tags": {"team": "risk"}, "description": "Retrained on Q3"}


@pytest.fixture(autouse=True)
def _secret(settings: Any) -> None:
    settings.MLFLOW_WEBHOOK_SECRET = SECRET
    settings.MLFLOW_WEBHOOK_TOLERANCE_SECONDS = 300
    settings.MLFLOW_WEBHOOK_RATE = "120/min"
    settings.MLFLOW_WEBHOOK_REFUSAL_INTERVAL = 3600
    cache.clear()  # the rate limit's windows live in the (process-wide) cache


def ledger_rows() -> int:
    """Every recorded entry, integrated or still pending."""
    return PendingEntry.objects.count() + Entry.objects.count()


def refusals_metric(reason: str) -> float:
    return REGISTRY.get_sample_value("governance_mlflow_webhook_refusals_total", {"reason": reason}) or 0.0


def counted(reason: str) -> int:
    """Refusals of ``reason`` counted in the database, over every interval."""
    return sum(WebhookRefusalCounter.objects.filter(reason=reason).values_list("count", flat=True))


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Models whose follow-up (``follow_up_webhook_delivery``, a sync) was queued, instead of running it."""
    queued: list[str] = []
    monkeypatch.setattr(tasks.follow_up_webhook_delivery, "delay",
                        lambda pk: queued.append(WebhookDelivery.objects.get(pk=pk).model))
    return queued


def delivery(
    data: dict[str, Any] | None = None, *, entity: str = "model_version", action: str = "created",
    secret: str = SECRET, timestamp: int | None = None, delivery_id: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Body and headers built the way mlflow.webhooks.delivery._send_webhook_request builds them."""
    payload_json = json.dumps({"entity": entity, "action": action, "timestamp": datetime.now(UTC).isoformat(),
                               "data": VERSION_CREATED if data is None else data})
    delivery_id = delivery_id or str(uuid.uuid4())
    unix_timestamp = str(int(time.time()) if timestamp is None else timestamp)
    return payload_json.encode("utf-8"), {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": unix_timestamp,
        "X-MLflow-Signature": _generate_hmac_signature(secret, delivery_id, unix_timestamp, payload_json),
    }


def post(client: Client, body: bytes, headers: dict[str, str], method: str = "post") -> Any:
    headers = dict(headers)
    content_type = headers.pop("Content-Type", "application/json")
    return client.generic(method.upper(), URL, data=body, content_type=content_type, headers=headers)


def all_events(event_type: str) -> list[dict[str, Any]]:
    """Payloads of recorded events of one type, integrated or not."""
    pending = [json.loads(p.payload_json) for p in PendingEntry.objects.filter(event_type=event_type)]
    return [json.loads(e.payload_json) for e in Entry.objects.filter(event_type=event_type)] + pending


class DjangoTransport(BaseAdapter):
    """A requests transport that hands MLflow's webhook request to the Django test client, byte for byte."""

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent.append(request)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("content-type", "content-length")}
        answer = self.client.generic(
            str(request.method), urlparse(str(request.url)).path, data=request.body or b"",
            content_type=request.headers.get("Content-Type", ""), headers=headers,
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response._content = answer.content
        response.headers = CaseInsensitiveDict(dict(answer.items()))
        response.url, response.request = str(request.url), request
        return response

    def close(self) -> None:
        pass


# --- accepted ---------------------------------------------------------------------------------------------


def test_a_delivery_sent_by_mlflow_is_accepted_recorded_and_queues_a_sync(
    client: Client, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Capture, syncs: list[str],
) -> None:
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")  # the URL's host is the test server
    session = requests.Session()
    transport = DjangoTransport(client)
    session.mount("https://", transport)
    webhook = Webhook(webhook_id="wh-1", name="governance", url=f"https://testserver{URL}",
                      events=[WebhookEvent(WebhookEntity.MODEL_VERSION, WebhookAction.CREATED)],
                      creation_timestamp=0, last_updated_timestamp=0, secret=SECRET)
    event = WebhookEvent(WebhookEntity.MODEL_VERSION, WebhookAction.CREATED)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = _send_webhook_request(webhook, VERSION_CREATED, event, session)  # MLflow's own delivery code

    assert response.status_code == 202
    [sent] = transport.sent
    delivery_id = sent.headers["X-MLflow-Delivery-Id"]
    assert response.json() == {"status": "accepted", "delivery_id": delivery_id}
    assert WebhookDelivery.objects.filter(delivery_id=delivery_id, entity="model_version", action="created").exists()
    [received] = entries("mlflow.webhook_received")
    assert received.payload == {"delivery_id": delivery_id, "entity": "model_version", "action": "created",
                                "model": "fraud-detector", "version": "3"}
    assert (received.subject_type, received.subject_id, received.actor_type, received.actor_id) == (
        "registered_model", "fraud-detector", "service", "mlflow")
    assert len(callbacks) == 1 and syncs == ["fraud-detector"]
    assert entries("mlflow.webhook_refused") == [] and not WebhookRefusalCounter.objects.exists()


def test_an_alias_delivery_syncs_the_model_from_the_real_registry(
    client: Client, mlflow_store: MlflowStore, django_capture_on_commit_callbacks: Capture,
) -> None:
    run_id = mlflow_store.run(metrics={"auc": 0.93})
    mlflow_store.register("fraud-detector", run_id)
    mlflow_store.client.set_registered_model_alias("fraud-detector", "staging", "1")
    body, headers = delivery({"name": "fraud-detector", "alias": "staging", "version": "1"},
                             entity="model_version_alias", action="created")

    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body, headers)

    assert response.status_code == 202
    assert ModelVersion.objects.get(model__name="fraud-detector", version=1).metrics == {"auc": 0.93}
    [received] = entries("mlflow.webhook_received")
    assert (received.payload["alias"], received.payload["version"]) == ("staging", "1")
    # The hint was followed: the alias nobody approved is found out of band (staging does not revert).
    assert [e.payload["details"]["alias"] for e in entries("compliance.violation", kind="out_of_band_alias")] == [
        "staging"]


def test_a_prompt_delivery_is_recorded_but_syncs_nothing(client: Client, syncs: list[str]) -> None:
    body, headers = delivery({"name": "support-prompt", "tags": {}, "description": None}, entity="prompt")
    assert post(client, body, headers).status_code == 202
    [received] = entries("mlflow.webhook_received")
    assert (received.payload["model"], received.subject_type) == (None, "webhook_endpoint")
    assert syncs == [] and not RegisteredModel.objects.exists()


def test_csrf_does_not_apply_the_signature_does(syncs: list[str]) -> None:
    body, headers = delivery()
    assert post(Client(enforce_csrf_checks=True), body, headers).status_code == 202


def test_a_signature_list_with_a_rotated_secret_is_accepted(client: Client, syncs: list[str]) -> None:
    body, headers = delivery()
    old = delivery(secret="the-old-secret", delivery_id=headers["X-MLflow-Delivery-Id"],
                   timestamp=int(headers["X-MLflow-Timestamp"]))[1]["X-MLflow-Signature"]
    headers["X-MLflow-Signature"] = f"{old} {headers['X-MLflow-Signature']}"
    assert post(client, body, headers).status_code == 202


# --- refused ----------------------------------------------------------------------------------------------


def _bad_signature() -> tuple[bytes, dict[str, str]]:
    return delivery(secret="not-the-secret")


def _tampered_body() -> tuple[bytes, dict[str, str]]:
    body, headers = delivery()
    return body.replace(b"fraud-detector", b"fraud-detectoR"), headers


def _signed(raw: str) -> tuple[bytes, dict[str, str]]:
    """A correctly signed delivery whose body is ``raw``."""
    delivery_id, ts = str(uuid.uuid4()), str(int(time.time()))
    return raw.encode(), {"X-MLflow-Delivery-Id": delivery_id, "X-MLflow-Timestamp": ts,
                          "X-MLflow-Signature": _generate_hmac_signature(SECRET, delivery_id, ts, raw)}


def _signed_bytes(raw: bytes) -> tuple[bytes, dict[str, str]]:
    """Signed over bytes that are not UTF-8 (MLflow's helper only signs text)."""
    delivery_id, ts = str(uuid.uuid4()), str(int(time.time()))
    mac = hmac.new(SECRET.encode(), f"{delivery_id}.{ts}.".encode() + raw, hashlib.sha256).digest()
    return raw, {"X-MLflow-Delivery-Id": delivery_id, "X-MLflow-Timestamp": ts,
                 "X-MLflow-Signature": "v1," + base64.b64encode(mac).decode()}


def _without(header: str) -> Callable[[], tuple[bytes, dict[str, str]]]:
    def build() -> tuple[bytes, dict[str, str]]:
        body, headers = delivery()
        del headers[header]
        return body, headers

    return build


def _oversized() -> tuple[bytes, dict[str, str]]:
    return delivery({**VERSION_CREATED, "description": "x" * (1024 * 1024)})


def _with_header(header: str, value: str) -> Callable[[], tuple[bytes, dict[str, str]]]:
    def build() -> tuple[bytes, dict[str, str]]:
        body, headers = delivery()
        headers[header] = value
        return body, headers

    return build


REFUSALS: dict[str, tuple[Callable[[], tuple[bytes, dict[str, str]]], int, str]] = {
    "bad-signature": (_bad_signature, 401, "bad_signature"),
    "tampered-body": (_tampered_body, 401, "bad_signature"),
    "signature-not-v1": (_with_header("X-MLflow-Signature", "v2,AAAA"), 401, "bad_signature"),
    "signature-not-base64": (_with_header("X-MLflow-Signature", "v1,***"), 401, "bad_signature"),
    # 30 s past the 300 s tolerance: a second ticking between building and checking must not let one through.
    "stale-timestamp": (lambda: delivery(timestamp=int(time.time()) - 330), 400, "stale_timestamp"),
    "future-timestamp": (lambda: delivery(timestamp=int(time.time()) + 330), 400, "stale_timestamp"),
    "timestamp-not-an-integer": (_with_header("X-MLflow-Timestamp", "1.7e9"), 400, "invalid_timestamp"),
    "malformed-json": (lambda: _signed('{"entity": "model_version", "action": '), 400, "malformed_json"),
    "not-utf8": (lambda: _signed_bytes(b'{"entity": "\xff", "action": "created", "data": {}}'), 400, "malformed_json"),
    "json-array": (lambda: _signed("[1, 2]"), 400, "malformed_json"),
    # Signed, so only a holder of the secret can send it; still a 400, never a RecursionError.
    "too-deep": (lambda: _signed('{"entity": "model_version", "action": "created", "data": {"name": "m"}, "x": '
                                 + "[" * 5000 + "]" * 5000 + "}"), 400, "too_deep"),
    "missing-data": (lambda: _signed('{"entity": "model_version", "action": "created"}'), 400, "missing_field"),
    "missing-entity": (lambda: _signed('{"action": "created", "data": {}}'), 400, "missing_field"),
    "missing-model-name": (lambda: delivery({"version": "3"}), 400, "missing_field"),
    "data-not-an-object": (lambda: _signed('{"entity": "model_version", "action": "created", "data": []}'), 400,
                           "invalid_field"),
    "missing-delivery-id": (_without("X-MLflow-Delivery-Id"), 400, "missing_header"),
    "missing-timestamp": (_without("X-MLflow-Timestamp"), 400, "missing_header"),
    "missing-signature": (_without("X-MLflow-Signature"), 400, "missing_header"),
    "odd-delivery-id": (_with_header("X-MLflow-Delivery-Id", "a b"), 400, "invalid_header"),
    "oversized-body": (_oversized, 413, "payload_too_large"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_deliveries_get_a_4xx_are_counted_and_write_nothing(
    client: Client, case: str, django_capture_on_commit_callbacks: Capture, syncs: list[str],
) -> None:
    build, status, code = REFUSALS[case]
    body, headers = build()
    before, metric = ledger_rows(), refusals_metric(code)

    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body, headers)

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == {"error", "detail"} and response.json()["error"] == code
    _assert_counted_and_nothing_written(code, before, metric, syncs)


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_other_methods_are_refused(
    client: Client, method: str, django_capture_on_commit_callbacks: Capture, syncs: list[str]
) -> None:
    body, headers = delivery()
    before, metric = ledger_rows(), refusals_metric("method_not_allowed")
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body, headers, method=method)
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert response.json()["error"] == "method_not_allowed"
    _assert_counted_and_nothing_written("method_not_allowed", before, metric, syncs)


def test_a_replayed_delivery_is_refused_and_counted_not_recorded(
    client: Client, django_capture_on_commit_callbacks: Capture, syncs: list[str]
) -> None:
    # A replay carries a valid signature, but whoever captured one delivery could replay it until its
    # timestamp goes stale: it is counted like every other refusal, and writes no entry of its own.
    body, headers = delivery()
    assert post(client, body, headers).status_code == 202
    syncs.clear()
    before, metric = ledger_rows(), refusals_metric("replayed_delivery")

    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body, headers)

    assert response.status_code == 409 and response.json()["error"] == "replayed_delivery"
    assert syncs == [] and ledger_rows() == before
    assert WebhookDelivery.objects.count() == 1 and len(all_events("mlflow.webhook_received")) == 1
    assert counted("replayed_delivery") == 1 and refusals_metric("replayed_delivery") == metric + 1


def test_a_body_over_a_configured_limit_is_refused(
    client: Client, settings: Any, django_capture_on_commit_callbacks: Capture, syncs: list[str]
) -> None:
    settings.MLFLOW_WEBHOOK_MAX_BYTES = 100
    body, headers = delivery()
    before, metric = ledger_rows(), refusals_metric("payload_too_large")
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, body, headers).status_code == 413
    _assert_counted_and_nothing_written("payload_too_large", before, metric, syncs)


def _assert_counted_and_nothing_written(code: str, ledger_before: int, metric_before: float, syncs: list[str]) -> None:
    assert ledger_rows() == ledger_before  # not even a refusal entry
    assert all_events("mlflow.webhook_refused") == [] and all_events("mlflow.webhook_received") == []
    assert not WebhookDelivery.objects.exists()
    assert syncs == []
    assert counted(code) == 1 and refusals_metric(code) == metric_before + 1
    [counter] = WebhookRefusalCounter.objects.all()
    assert counter.summarised_at is None  # its interval is still open
