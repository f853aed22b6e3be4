"""Fixtures of the promotion-governance tests: default environments, personas and a fake MLflow registry."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User

from access import roles
from governance import registry
from governance.celery import app
from governance.models import Environment, ModelVersion, RegisteredModel
from tests.factories import UserFactory
from tests.governance.factories import ModelVersionFactory, RegisteredModelFactory, ensure_defaults


@pytest.fixture(autouse=True)
def _celery_eager() -> Iterator[None]:
    """Tasks run in-process even when the environment names a broker; restored afterwards."""
    saved = {k: app.conf[k] for k in ("task_always_eager", "task_eager_propagates")}
    app.conf.update(task_always_eager=True, task_eager_propagates=True)
    yield
    app.conf.update(saved)


class FakeRegistry:
    """Stands in for governance.registry (MLflow aliases as a dict); thread-safe for the concurrency tests."""

    def __init__(self) -> None:
        self.aliases: dict[tuple[str, str], int] = {}
        self.calls: list[tuple[str, ...]] = []
        # Registry calls raise ``fail_with`` while ``fail_times`` > 0 (None: every call).
        self.fail_with: BaseException | None = None
        self.fail_times: int | None = None
        self._lock = threading.Lock()

    def _maybe_fail(self) -> None:
        if self.fail_with is None:
            return
        if self.fail_times is None:
            raise self.fail_with
        if self.fail_times > 0:
            self.fail_times -= 1
            raise self.fail_with

    def set_alias(self, model: str, alias: str, version: int) -> None:
        with self._lock:
            self._maybe_fail()
            self.calls.append(("set", model, alias, str(version)))
            self.aliases[(model, alias)] = int(version)

    def delete_alias(self, model: str, alias: str) -> None:
        with self._lock:
            self._maybe_fail()
            self.calls.append(("delete", model, alias))
            self.aliases.pop((model, alias), None)

    def alias_version(self, model: str, alias: str) -> int | None:
        with self._lock:
            self._maybe_fail()
            return self.aliases.get((model, alias))

    def of(self, model: str) -> dict[str, int]:
        """Every alias of ``model`` and its version."""
        return {alias: v for (m, alias), v in self.aliases.items() if m == model}


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


@dataclass
class People:
    requester: User  # model-owner
    approver: User  # approver (the staging policy's group)
    approver2: User
    model_risk: User
    model_risk2: User
    infosec: User
    outsider: User  # no role at all
    creator: User  # ModelVersion.creator; in every approval group
    breakglass: User
    steward: User  # data-steward


def make_people() -> People:
    return People(
        requester=UserFactory(username="olivia-owner", roles=[roles.MODEL_OWNER]),
        approver=UserFactory(username="adam-approver", roles=[roles.APPROVER]),
        approver2=UserFactory(username="anna-approver", roles=[roles.APPROVER]),
        model_risk=UserFactory(username="mira-risk", roles=[roles.MODEL_RISK]),
        model_risk2=UserFactory(username="max-risk", roles=[roles.MODEL_RISK]),
        infosec=UserFactory(username="ines-infosec", roles=[roles.INFOSEC]),
        outsider=UserFactory(username="oscar-outsider"),
        creator=UserFactory(
            username="ds-creator", roles=[roles.APPROVER, roles.MODEL_RISK, roles.INFOSEC, roles.MODEL_OWNER]
        ),
        breakglass=UserFactory(username="bruno-breakglass", roles=[roles.BREAK_GLASS]),
        steward=UserFactory(username="dana-steward", roles=[roles.DATA_STEWARD]),
    )


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
