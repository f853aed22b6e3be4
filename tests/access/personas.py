"""Personas, resources and helpers of the grant, request and review tests.

Setup the tests are not about (people with roles, datasets already classified,
a registered model with a classified version) is written through the ORM and
records nothing; everything under test goes through ``access.services.grants``.
Test modules import the fixtures they use from here.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from access.models import (
    AccessRequest,
    Dataset,
    DatasetField,
    DatasetGroupObjectPermission,
    DatasetUserObjectPermission,
    Grant,
    ReviewCampaign,
    ReviewItem,
    ServiceAccount,
)
from access.services.grants import grant_create
from access.services.service_accounts import service_account_create
from audit.ledger import integrate
from audit.models import Entry, PendingEntry
from governance.models import (
    Environment,
    EnvironmentGroupObjectPermission,
    EnvironmentUserObjectPermission,
    ModelVersion,
    RegisteredModel,
    RegisteredModelGroupObjectPermission,
    RegisteredModelUserObjectPermission,
)

GUARDIAN_TABLES = (
    DatasetUserObjectPermission, DatasetGroupObjectPermission, RegisteredModelUserObjectPermission,
    RegisteredModelGroupObjectPermission, EnvironmentUserObjectPermission, EnvironmentGroupObjectPermission,
)


def make_user(username: str, *roles: str) -> User:
    user = User.objects.create_user(username=username, password="pw")
    if roles:
        user.groups.add(*Group.objects.filter(name__in=roles))
    return user


def fresh(user: User) -> User:
    """A new object for the same user: no permission caches from earlier checks."""
    return User.objects.get(pk=user.pk)


@dataclass
class People:
    owner: User  # owns the datasets and the model
    steward: User  # data steward, owns nothing
    infosec: User
    infosec2: User
    requester: User  # a data scientist (model-owner role)
    outsider: User  # no role at all
    auditor: User
    team: Group  # an ordinary group the requester belongs to


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


@pytest.fixture
def people(db: None) -> People:
    team = Group.objects.create(name="fraud-team")
    requester = make_user("rita", "model-owner")
    requester.groups.add(team)
    return People(
        owner=make_user("olga", "model-owner"),
        steward=make_user("sam", "data-steward"),
        infosec=make_user("ines", "infosec"),
        infosec2=make_user("ivan", "infosec"),
        requester=requester,
        outsider=make_user("otto"),
        auditor=make_user("audrey", "auditor"),
        team=team,
    )


def _dataset(name: str, owner: User, level: str, pii: list[str] | None = None) -> Dataset:
    return Dataset.objects.create(name=name, owner=owner, level=level, effective_level=level, pii_categories=pii or [])


@pytest.fixture
def res(people: People) -> Resources:
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
    return service_account_create(actor=people.requester, name="fraud-pipeline", description="nightly training")


def soon(days: float = 30) -> datetime:
    return timezone.now() + timedelta(days=days)


def grant(granted_by: User, principal: User | Group, resource: Any, permission: str = "read_data",
          days: float = 30, **kwargs: Any) -> Grant:
    return grant_create(
        actor=granted_by, principal=principal, resource=resource, permission=permission,
        expires_at=soon(days), justification=kwargs.pop("justification", "fraud model features"), **kwargs,
    )


def snapshot() -> dict[str, int]:
    """Row counts of everything the access services write (ledger intake included)."""
    counts = {model.__name__: model.objects.count() for model in (
        Grant, AccessRequest, ReviewCampaign, ReviewItem, ServiceAccount, User, PendingEntry, Entry,
    )}
    counts["guardian"] = sum(table.objects.count() for table in GUARDIAN_TABLES)
    counts["revoked"] = Grant.objects.filter(revoked_at__isnull=False).count()
    counts["approvals"] = AccessRequest.objects.exclude(owner_approved_by=None).count() + \
        AccessRequest.objects.exclude(infosec_approved_by=None).count()
    counts["decided"] = ReviewItem.objects.exclude(decision="pending").count()
    counts["closed"] = ReviewCampaign.objects.filter(state="closed").count()
    counts["pending_requests"] = AccessRequest.objects.filter(state="pending").count()
    return counts


@contextmanager
def writes_nothing() -> Iterator[None]:
    """Assert the block changes no row the access services write."""
    before = snapshot()
    yield
    assert snapshot() == before


def ledger(event_type: str) -> list[dict[str, Any]]:
    """Payloads of the integrated entries of one type, oldest first (integrates the intake queue first)."""
    integrate()
    return [json.loads(p) for p in Entry.objects.filter(event_type=event_type).values_list("payload_json", flat=True)]


def ledger_entries(event_type: str) -> list[Entry]:
    integrate()
    return list(Entry.objects.filter(event_type=event_type))
