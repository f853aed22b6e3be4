"""Fixtures of the admin's access and read-only tests: who tries the admin, and one row of every admin model.

Setup is ORM or services the tests are not about; what is under test is what the admin lets
each persona see and do. Plain helpers are in tests/admin/helpers.py.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from access.services import tokens
from access.services.access_requests import access_request_create
from access.services.reviews import review_campaign_start
from access.services.service_accounts import service_account_create
from audit.ledger import integrate
from audit.models import Entry, LegalHold, PendingEntry, VerificationRun
from audit.services.checkpoints import checkpoint_create
from governance.models import (
    BreakGlassReview,
    ComplianceViolation,
    Environment,
    FreezeWindow,
    Lineage,
    ModelVersion,
    PromotionRequest,
)
from tests.access.helpers import grant
from tests.admin.helpers import Cast, World
from tests.audit.integration.helpers import note
from tests.catalog import Resources
from tests.governance.helpers import make_deployed
from tests.personas import People


@pytest.fixture
def cast(people: People, superuser: User, superuser_auditor: User, staff: User) -> Cast:
    return Cast(people=people, superuser=superuser, superuser_auditor=superuser_auditor, staff=staff)


@pytest.fixture
def world(cast: Cast, res: Resources) -> World:
    who = cast.people
    v1, v2 = ModelVersion.objects.filter(model=res.model).order_by("version")
    make_deployed(v2, res.dev, requested_by=who.owner)
    staging = Environment.objects.get(name="staging")
    pending = PromotionRequest.objects.create(version=v2, environment=staging, requested_by=who.owner,
                                              reason="validate")
    emergency = make_deployed(v1, res.production, requested_by=who.breakglass, live=False)
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
