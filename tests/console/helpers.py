"""Helpers of the console page tests, also used by the browser tests (plain functions).

Setup goes through the ORM and the real services (``record``, ``violation_record``,
``checkpoint_create``); what is under test goes through the pages. The people are the
suite's (tests/personas.py).
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.utils import timezone

from audit.ledger import Actor, Subject, integrate, record
from audit.models import Entry
from audit.services.checkpoints import checkpoint_create
from governance.models import ComplianceViolation
from governance.services.compliance import violation_record


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
    with transaction.atomic():  # record() refuses to write outside a transaction (browser tests commit for real)
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
