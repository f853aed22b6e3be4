"""The catalogue the access tests work on: datasets of every level, a model, environments (fixtures).

Setup the tests are not about is written through the ORM and records nothing. Registered for
the whole suite by ``pytest_plugins`` in tests/conftest.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User

from access.models import Dataset, DatasetField, ServiceAccount
from access.services.service_accounts import service_account_create
from governance.models import Environment, ModelVersion, RegisteredModel
from tests.personas import People


@dataclass
class Resources:
    internal: Dataset
    confidential: Dataset
    restricted: Dataset
    pci: Dataset  # confidential, with a card_pan field
    public: Dataset
    model: RegisteredModel  # a confidential version
    production: Environment  # max_data_classification confidential
    dev: Environment  # restricted ceiling


def _dataset(name: str, owner: User, level: str, pii: list[str] | None = None) -> Dataset:
    return Dataset.objects.create(name=name, owner=owner, level=level, effective_level=level, pii_categories=pii or [])


@pytest.fixture
def res(people: People) -> Resources:
    """Everything here is owned by ``people.owner`` (olga)."""
    pci = _dataset("card-transactions", people.owner, "confidential")
    DatasetField.objects.create(dataset=pci, name="pan", level="confidential", pii_categories=["card_pan"])
    model = RegisteredModel.objects.create(name="fraud-detector", owner=people.owner)
    ModelVersion.objects.create(model=model, version=1, data_classification="confidential")
    ModelVersion.objects.create(model=model, version=2, data_classification="internal")
    return Resources(
        internal=_dataset("payments-internal", people.owner, "internal"),
        confidential=_dataset("customers", people.owner, "confidential", ["email"]),
        restricted=_dataset("kyc-documents", people.owner, "restricted", ["national_id"]),
        pci=pci,
        public=_dataset("fx-rates", people.owner, "public"),
        model=model,
        production=Environment.objects.get(name="production"),
        dev=Environment.objects.get(name="dev"),
    )


@pytest.fixture
def service_account(people: People) -> ServiceAccount:
    """``fraud-pipeline``, owned by ``people.requester`` (created through the service)."""
    return service_account_create(actor=people.requester, name="fraud-pipeline", description="nightly training")
