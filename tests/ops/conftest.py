"""Fixtures of the operations tests: personas and a few recorded ledger entries."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from access.roles import AUDITOR, INFOSEC
from audit import ledger
from audit.ledger import Actor, Subject

SYSTEM = Actor.system("tests")


def make_user(username: str, *roles: str) -> User:
    user = User.objects.create_user(username=username, password="pw-not-used-7x")
    if roles:
        user.groups.add(*Group.objects.filter(name__in=roles))
    return user


@pytest.fixture
def infosec(db: None) -> User:
    return make_user("ivy", INFOSEC)


@pytest.fixture
def auditor(db: None) -> User:
    return make_user("arthur", AUDITOR)


@pytest.fixture
def outsider(db: None) -> User:
    return make_user("oscar")


def notes(n: int, *, prefix: str = "note") -> None:
    """Record ``n`` notes over three subjects and integrate them."""
    for i in range(n):
        ledger.record(event_type="ledger.note_added", actor=SYSTEM, subject=Subject("model", f"m{i % 3}"),
                      payload={"text": f"{prefix} {i}"})
    ledger.integrate()


def register(user_id: int, *, email: str = "someone@example.org") -> None:
    """Record an ``auth.user_registered`` entry: personal data of data subject ``user:<id>``."""
    ledger.record(event_type="auth.user_registered", actor=SYSTEM, subject=Subject("user", str(user_id)),
                  payload={"username": f"u{user_id}", "email": email})
