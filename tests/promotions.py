"""Fixtures of the promotion tests: default environments, fraud-detector's versions, a fake MLflow registry.

Registered for the whole suite by ``pytest_plugins`` in tests/conftest.py. The people are in
tests/personas.py; ``gov`` builds on the catalogue's fraud-detector (tests/catalog.py), owned
by ``people.owner``. Setup goes through the ORM (or a service the test is not about).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.utils import timezone

from config.celery import app
from governance import registry
from governance.models import ComplianceViolation, Environment, ModelVersion, PromotionRequest, RegisteredModel
from governance.services import promotion_request
from tests.catalog import Resources
from tests.factories import MODEL_CARD, ModelVersionFactory, RegisteredModelFactory
from tests.governance.helpers import FakeRegistry, ensure_defaults, make_deployed
from tests.personas import People


@pytest.fixture
def celery_eager() -> Iterator[None]:
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
def fraud(envs: dict[str, Environment]) -> RegisteredModel:
    return RegisteredModelFactory(name="fraud-detector", description="Card fraud scoring")


@pytest.fixture
def v7(fraud: RegisteredModel) -> ModelVersion:
    """fraud-detector v7, created in MLflow by ``ds-creator``, trained on internal data."""
    return ModelVersionFactory(model=fraud, version=7, creator="ds-creator", metrics={"auc": 0.94})


# --- the catalogue's fraud-detector under governance (the API tests) ----------------------------------------


@dataclass
class Gov:
    model: RegisteredModel
    v1: ModelVersion  # confidential
    v2: ModelVersion  # internal, deployed in dev: ready for staging
    dev: Environment
    staging: Environment
    production: Environment


@pytest.fixture
def gov(res: Resources, people: People) -> Gov:
    """fraud-detector with a model card; v2 live in dev (set up through the ORM, not under test)."""
    model = res.model
    model.description = MODEL_CARD
    model.save(update_fields=["description"])
    v1 = ModelVersion.objects.get(model=model, version=1)
    v2 = ModelVersion.objects.get(model=model, version=2)
    ModelVersion.objects.filter(model=model).update(
        creator="ds-creator", run_id="0123456789abcdef0123456789abcdef", artifact_digest="sha256:" + "ab" * 32,
        metrics={"auc": 0.94},
    )
    v1.refresh_from_db()
    v2.refresh_from_db()
    dev = Environment.objects.get(name="dev")
    make_deployed(v2, dev, requested_by=people.owner)
    return Gov(model=model, v1=v1, v2=v2, dev=dev, staging=Environment.objects.get(name="staging"),
               production=res.production)


@pytest.fixture
def other_model(db: None) -> RegisteredModel:
    """A model nobody among the personas owns or holds a grant on."""
    model = RegisteredModelFactory(name="credit-limit", owner=None)
    ModelVersionFactory(model=model, version=1)
    return model


@pytest.fixture
def pending(gov: Gov, people: People) -> PromotionRequest:
    """The owner's pending request to promote v2 to staging (created through the service)."""
    return promotion_request(user=people.owner, version=gov.v2, environment=gov.staging,
                             reason="better recall on CNP fraud")


@pytest.fixture
def violation(db: None) -> ComplianceViolation:
    return ComplianceViolation.objects.create(
        kind=ComplianceViolation.Kind.OUT_OF_BAND_ALIAS, subject_type="registered_model", subject_id="fraud-detector",
        summary="alias production moved outside governance", details={"alias": "production"},
        detected_at=timezone.now(),
    )
