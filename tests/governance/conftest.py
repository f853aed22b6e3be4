"""Fixtures of the promotion-governance tests: default environments, personas and a fake MLflow registry."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from config.celery import app
from governance import registry
from governance.models import Environment, ModelVersion, RegisteredModel
from tests.governance.factories import (
    FakeRegistry,
    ModelVersionFactory,
    People,
    RegisteredModelFactory,
    ensure_defaults,
    make_people,
)


@pytest.fixture(autouse=True)
def _celery_eager() -> Iterator[None]:
    """Tasks run in-process even when the environment names a broker; restored afterwards."""
    saved = {k: app.conf[k] for k in ("task_always_eager", "task_eager_propagates")}
    app.conf.update(task_always_eager=True, task_eager_propagates=True)
    yield
    app.conf.update(saved)


@pytest.fixture
def no_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to build an MlflowClient fails the test."""

    def refuse() -> None:
        raise AssertionError("this test must not contact MLflow")

    monkeypatch.setattr(registry, "client", refuse)


@pytest.fixture
def fake_registry(monkeypatch: pytest.MonkeyPatch, no_mlflow: None) -> FakeRegistry:
    fake = FakeRegistry()
    monkeypatch.setattr(registry, "set_alias", fake.set_alias)
    monkeypatch.setattr(registry, "delete_alias", fake.delete_alias)
    monkeypatch.setattr(registry, "alias_version", fake.alias_version)
    return fake


@pytest.fixture
def envs(db: None) -> dict[str, Environment]:
    return ensure_defaults()


@pytest.fixture
def people(envs: dict[str, Environment]) -> People:
    return make_people()


@pytest.fixture
def fraud(envs: dict[str, Environment]) -> RegisteredModel:
    return RegisteredModelFactory(name="fraud-detector", description="Card fraud scoring")


@pytest.fixture
def v7(fraud: RegisteredModel) -> ModelVersion:
    """fraud-detector v7, created in MLflow by ``ds-creator``, trained on internal data."""
    return ModelVersionFactory(model=fraud, version=7, creator="ds-creator", metrics={"auc": 0.94})
