"""Personas and one row of every admin model, for the admin's access and read-only tests.

Setup is ORM or services the tests are not about; what is under test is what the
admin lets each persona see and do.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from access.roles import APPROVER, AUDITOR, BREAK_GLASS, MODEL_OWNER, MODEL_RISK
from access.services import tokens
from access.services.access_requests import access_request_create
from access.services.reviews import review_campaign_start
from access.services.service_accounts import service_account_create
from audit.checkpoints import checkpoint_create
from audit.ledger import integrate
from audit.models import Entry, PendingEntry
from audit.models_ops import LegalHold, VerificationRun
from governance.models import (
    BreakGlassReview,
    ComplianceViolation,
    Environment,
    FreezeWindow,
    Lineage,
    ModelVersion,
    PromotionRequest,
)
from tests.access.personas import People, Resources, grant, make_user, people, res  # noqa: F401
from tests.governance.factories import make_deployed
from tests.integration.helpers import note


@dataclass
class Cast:
    """Everyone who might try the admin, by the name the tests use."""

    people: People
    approver: User
    breakglass: User  # model owner with the break-glass role
    model_risk: User
    superuser: User  # is_superuser and is_staff, no role: "the operator ran createsuperuser"
    superuser_auditor: User  # superuser flags and the auditor role
    staff: User  # is_staff, no role

    def __getitem__(self, name: str) -> User:
        if hasattr(self.people, name):
            return getattr(self.people, name)  # type: ignore[no-any-return]
        return getattr(self, name)  # type: ignore[no-any-return]


# Every persona that must not get past the admin's door, and the two that may.
OUTSIDERS = ("outsider", "owner", "requester", "approver", "steward", "breakglass", "model_risk", "superuser",
             "staff")
READERS = ("auditor", "infosec")


@pytest.fixture
def cast(people: People) -> Cast:  # noqa: F811
    superuser_auditor = make_user("sally", AUDITOR)
    superuser_auditor.is_superuser = superuser_auditor.is_staff = True
    superuser_auditor.save()
    return Cast(
        people=people,
        approver=make_user("april", APPROVER),
        breakglass=make_user("bruno", MODEL_OWNER, BREAK_GLASS),
        model_risk=make_user("mona", MODEL_RISK),
        superuser=User.objects.create_superuser("root", "root@example.test", "pw"),
        superuser_auditor=superuser_auditor,
        staff=User.objects.create_user("stan", password="pw", is_staff=True),
    )


@dataclass
class World:
    res: Resources
    staging_request: PromotionRequest  # pending, version 2 to staging
    version: ModelVersion  # version 2: live in dev, never in staging


@pytest.fixture
def world(cast: Cast, res: Resources) -> World:  # noqa: F811
    who = cast.people
    v1, v2 = ModelVersion.objects.filter(model=res.model).order_by("version")
    make_deployed(v2, res.dev, requested_by=who.owner)
    staging = Environment.objects.get(name="staging")
    pending = PromotionRequest.objects.create(version=v2, environment=staging, requested_by=who.owner,
                                              reason="validate")
    emergency = make_deployed(v1, res.production, requested_by=cast.breakglass, live=False)
    PromotionRequest.objects.filter(pk=emergency.pk).update(is_break_glass=True)
    BreakGlassReview.objects.create(request=emergency, due_at=timezone.now() + timedelta(days=1))
    ComplianceViolation.objects.create(kind="out_of_band_alias", subject_type="registered_model",
                                       subject_id=res.model.name, summary="alias moved outside the product")
    FreezeWindow.objects.create(environment=staging, starts_at=timezone.now() + timedelta(days=300),
                                ends_at=timezone.now() + timedelta(days=301), reason="year end",
                                created_by=who.infosec)
    Lineage.objects.create(version=v1, dataset=res.pci, role="training", source="declared")
    grant(who.owner, who.requester, res.internal)
    grant(who.infosec, who.steward, res.pci)
    access_request_create(actor=who.requester, resource=res.confidential, permission="read_data",
                              duration_days=30, justification="features")
    review_campaign_start(actor=who.infosec, name="Q3", deadline=timezone.now() + timedelta(days=14),
                              levels=("internal", "confidential", "restricted"))
    account = service_account_create(actor=who.requester, name="fraud-pipeline", description="nightly")
    tokens.api_token_create(actor=who.requester, service_account=account, name="ci", scopes=["events:write"],
                            expires_in_days=30)
    LegalHold.objects.create(data_subject=f"user:{who.requester.pk}", reason="litigation", reference="CASE-1",
                             created_by=who.infosec, created_at=timezone.now())
    VerificationRun.objects.create(mode="full", started_at=timezone.now())
    integrate()
    checkpoint_create()
    note("left in the intake queue")  # a PendingEntry to list
    assert Entry.objects.exists() and PendingEntry.objects.exists()
    return World(res=res, staging_request=pending, version=v2)


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def admin_pages() -> list[str]:
    """The changelist of every registered model: ``app_label/model_name``."""
    return sorted(f"{m._meta.app_label}/{m._meta.model_name}" for m in admin.site._registry)


def everything() -> dict[str, Any]:
    """Every row of every model the admin shows, user accounts and roles, and the ledger (intake included).

    Equal before and after a refused request: nothing was written. ``last_login`` is left out
    (signing in sets it).
    """
    rows: dict[str, Any] = {}
    for model in [*admin.site._registry, User.groups.through, PendingEntry, Entry]:
        values = list(model._default_manager.order_by("pk").values())
        for row in values:
            row.pop("last_login", None)
        rows[model._meta.label] = values
    return rows
