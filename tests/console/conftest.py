"""Personas and ledger data for the console page tests (also used by the browser tests).

Setup goes through the ORM and the real services (``record``, ``violation_record``,
``checkpoint_create``); what is under test goes through the pages.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from access import roles
from audit.checkpoints import checkpoint_create
from audit.ledger import Actor, Subject, integrate, record
from audit.models import Entry
from governance.models import ComplianceViolation
from governance.services.compliance import violation_record
from tests.access.personas import make_user


@dataclass
class Crew:
    infosec: User
    auditor: User
    approver: User
    owner: User
    steward: User
    outsider: User


def make_crew() -> Crew:
    return Crew(
        infosec=make_user("ines", roles.INFOSEC),
        auditor=make_user("audrey", roles.AUDITOR),
        approver=make_user("adam", roles.APPROVER),
        owner=make_user("olga", roles.MODEL_OWNER),
        steward=make_user("stella", roles.DATA_STEWARD),
        outsider=make_user("otto"),
    )


@pytest.fixture
def crew(db: None) -> Crew:
    return make_crew()


def client_for(user: User | None, *, csrf: bool = False, **kwargs: Any) -> Client:
    """A console client signed in as ``user`` (anonymous for None); ``csrf=True`` enforces the CSRF check
    (as does ``enforce_csrf_checks=True``)."""
    kwargs.setdefault("enforce_csrf_checks", csrf)
    client = Client(**kwargs)
    if user is not None:
        client.force_login(user)
    return client


def messages_of(response: Any) -> list[str]:
    """The flash messages a (followed) response rendered."""
    return [str(m) for m in response.context["messages"]]


def seed_ledger(n: int = 5, *, days: int = 3) -> list[Entry]:
    """``n`` notes spread over the last ``days`` days, one entry with personal data, integrated and checkpointed."""
    now = timezone.now()
    for i in range(n):
        record(event_type="ledger.note_added", actor=Actor.system("test"),
               subject=Subject("registered_model", f"model-{i % 2}"),
               payload={"text": f"note {i}", "reference": f"T-{i}"},
               timestamp=now - timedelta(days=days) + timedelta(minutes=i))
    record(event_type="auth.user_registered", actor=Actor.system("test"), subject=Subject("user", "9001"),
           payload={"username": "pat.person", "email": "pat@example.com"}, data_subject="user:9001",
           timestamp=now - timedelta(minutes=1))
    integrate()
    checkpoint_create()
    return list(Entry.objects.order_by("seq"))


def pii_entry() -> Entry:
    return Entry.objects.get(event_type="auth.user_registered")


def make_violation(summary: str = "alias production moved outside governance") -> ComplianceViolation:
    return violation_record(kind=ComplianceViolation.Kind.OUT_OF_BAND_ALIAS,
                            subject=Subject("registered_model", "fraud-detector"), summary=summary,
                            details={"alias": "production"}, reverted=True)
