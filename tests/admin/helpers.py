"""Helpers of the admin's access and read-only tests (plain functions and the names the tests use).

The fixtures (``cast``, ``world``) are in tests/admin/conftest.py; the people are the suite's
(tests/personas.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client

from audit.models import Entry, PendingEntry
from governance.models import ModelVersion, PromotionRequest
from tests.catalog import Resources
from tests.personas import People


@dataclass
class Cast:
    """Everyone who might try the admin, by the name the tests use: the suite's people and the three
    admin-only accounts (tests/personas.py)."""

    people: People
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


@dataclass
class World:
    res: Resources
    staging_request: PromotionRequest  # pending, version 2 to staging
    version: ModelVersion  # version 2: live in dev, never in staging


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
    (signing in sets it), and so are the ``ledger.accessed`` entries: opening the entries' pages is a read of
    the audit log, recorded as such (PCI DSS v4 10.2.1.3; tests/audit/test_ledger_access.py), not a change.
    """
    rows: dict[str, Any] = {}
    for model in [*admin.site._registry, User.groups.through, PendingEntry, Entry]:
        manager = model._default_manager
        qs = manager.exclude(event_type="ledger.accessed") if model in (PendingEntry, Entry) else manager.all()
        values = list(qs.order_by("pk").values())
        for row in values:
            row.pop("last_login", None)
        rows[model._meta.label] = values
    return rows
