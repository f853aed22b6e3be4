"""Fixtures of the promotion-governance API tests (models, promotions, environments).

Test modules import what they use from here::

    from tests.api.conftest_promotions import *  # noqa: F403

The personas are ``people`` from tests/access/personas.py (via tests/api/conftest.py):
``people.owner`` owns ``res.model`` (fraud-detector, v1 confidential, v2 internal).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from access import roles
from audit.models import PendingEntry
from governance.models import (
    ComplianceViolation,
    Environment,
    ModelVersion,
    PromotionRequest,
    RegisteredModel,
)
from tests.access.personas import People, Resources, make_user
from tests.governance.conftest import _celery_eager, fake_registry, no_mlflow
from tests.governance.factories import ModelVersionFactory, RegisteredModelFactory, make_deployed

CARD = "Gradient-boosted fraud scorer for card-not-present payments; trained on 2025 transactions."

__all__ = [
    "Gov",
    "_celery_eager",
    "breakglass",
    "fake_registry",
    "gov",
    "no_mlflow",
    "other_model",
    "pending",
    "violation",
    "writes_no_ledger",
]


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
    model.description = CARD
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
    from governance.services.promotions import promotion_request

    return promotion_request(actor=people.owner, version=gov.v2, environment=gov.staging,
                             reason="better recall on CNP fraud")


@pytest.fixture
def breakglass(db: None) -> User:
    return make_user("bianca", roles.BREAK_GLASS)


@pytest.fixture
def violation(db: None) -> ComplianceViolation:
    return ComplianceViolation.objects.create(
        kind=ComplianceViolation.Kind.OUT_OF_BAND_ALIAS, subject_type="registered_model", subject_id="fraud-detector",
        summary="alias production moved outside governance", details={"alias": "production"},
        detected_at=timezone.now(),
    )


@contextmanager
def writes_no_ledger() -> Iterator[None]:
    """Assert the block queues no ledger entry."""
    before = PendingEntry.objects.count()
    yield
    assert PendingEntry.objects.count() == before
