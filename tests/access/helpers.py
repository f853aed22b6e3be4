"""Helpers of the grant, request and review tests (plain functions; the fixtures are in tests/personas.py
and tests/catalog.py).

Setup the tests are not about is written through the ORM and records nothing; everything under
test goes through ``access.grants``.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.contrib.auth.models import Group, User
from django.utils import timezone

from access.models import (
    AccessRequest,
    DatasetGroupObjectPermission,
    DatasetUserObjectPermission,
    Grant,
    ReviewCampaign,
    ReviewItem,
    ServiceAccount,
)
from access.services.grants import grant_create
from audit.ledger import integrate
from audit.models import Entry, PendingEntry
from governance.models import (
    EnvironmentGroupObjectPermission,
    EnvironmentUserObjectPermission,
    RegisteredModelGroupObjectPermission,
    RegisteredModelUserObjectPermission,
)

GUARDIAN_TABLES = (
    DatasetUserObjectPermission, DatasetGroupObjectPermission, RegisteredModelUserObjectPermission,
    RegisteredModelGroupObjectPermission, EnvironmentUserObjectPermission, EnvironmentGroupObjectPermission,
)


def soon(days: float = 30) -> datetime:
    return timezone.now() + timedelta(days=days)


def grant(granted_by: User, principal: User | Group, resource: Any, permission: str = "read_data",
          days: float = 30, *, until: datetime | None = None, **kwargs: Any) -> Grant:
    """A grant expiring in ``days`` days, or at ``until`` (an exact moment the test chose)."""
    return grant_create(
        actor=granted_by, principal=principal, resource=resource, permission=permission,
        expires_at=until or soon(days), justification=kwargs.pop("justification", "fraud model features"), **kwargs,
    )


def noon_in(days: int) -> datetime:
    """12:00:00 UTC on the day ``days`` days from today: a moment a test can write out exactly."""
    return datetime.combine(timezone.now().date() + timedelta(days=days), time(12, 0), tzinfo=UTC)


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
