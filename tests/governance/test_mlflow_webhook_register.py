"""``manage.py mlflow_webhook_register`` against a real MLflow registry (tests/mlflow_registry.py).

MLflow itself refuses plain-HTTP and private webhook URLs unless its server is told otherwise; the
compose stack's MLflow is (docker/compose.yml), and these tests set the same two variables.
The delivery with the registered secret is exercised against a real ``mlflow server`` in
tests/ops/test_compose_emulation.py.
"""
from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from governance import registry
from tests.governance.mlflow_helpers import MlflowStore

pytestmark = pytest.mark.django_db
URL = "http://web:8000/webhooks/mlflow"


@pytest.fixture(autouse=True)
def _mlflow_as_in_compose(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    settings.MLFLOW_WEBHOOK_SECRET = "a-real-webhook-secret-of-enough-length"
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http,https")
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")


def _ours(store: MlflowStore) -> list:
    return list(store.client.list_webhooks())


def test_twice_leaves_one_webhook_with_our_events(mlflow_store: MlflowStore) -> None:
    out = io.StringIO()
    call_command("mlflow_webhook_register", "--url", URL, stdout=out)
    call_command("mlflow_webhook_register", "--url", URL, stdout=out)
    hooks = _ours(mlflow_store)
    assert len(hooks) == 1
    hook = hooks[0]
    assert hook.name == registry.WEBHOOK_NAME and hook.url == URL and str(hook.status) == "ACTIVE"
    assert sorted(str(e) for e in hook.events) == sorted(registry.WEBHOOK_EVENTS)
    assert out.getvalue().splitlines()[0].startswith("created") and out.getvalue().splitlines()[1].startswith("updated")


def test_updates_a_stale_one_and_removes_duplicates(mlflow_store: MlflowStore) -> None:
    stale = mlflow_store.client.create_webhook(name=registry.WEBHOOK_NAME, url="http://old:8000/webhooks/mlflow",
                                               events=["model_version.created"], secret="old", status="DISABLED")
    mlflow_store.client.create_webhook(name="someone-else", url=URL, events=["model_version.created"])
    mlflow_store.client.create_webhook(name="unrelated", url="http://other:1/x", events=["prompt.created"])
    call_command("mlflow_webhook_register", "--url", URL, stdout=io.StringIO())
    hooks = {h.name: h for h in _ours(mlflow_store)}
    assert set(hooks) == {registry.WEBHOOK_NAME, "unrelated"}
    kept = hooks[registry.WEBHOOK_NAME]
    assert kept.webhook_id == stale.webhook_id and kept.url == URL and str(kept.status) == "ACTIVE"
    assert len(kept.events) == len(registry.WEBHOOK_EVENTS)


def test_a_url_that_is_not_our_endpoint_is_refused(mlflow_store: MlflowStore) -> None:
    with pytest.raises(CommandError, match="/webhooks/mlflow endpoint"):
        call_command("mlflow_webhook_register", "--url", "http://web:8000/")
    assert _ours(mlflow_store) == []


def test_mlflow_refusal_is_a_clear_error(
    mlflow_store: MlflowStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "https")  # MLflow's default
    with pytest.raises(CommandError, match=r"MLflow refused: .*scheme"):
        call_command("mlflow_webhook_register", "--url", URL)
    assert _ours(mlflow_store) == []


def test_the_dev_secret_is_refused(mlflow_store: MlflowStore, settings: Any) -> None:
    settings.MLFLOW_WEBHOOK_SECRET = settings.DEV_MLFLOW_WEBHOOK_SECRET
    with pytest.raises(CommandError, match="dev secret"):
        call_command("mlflow_webhook_register", "--url", URL)
    assert _ours(mlflow_store) == []
