"""Helpers of the operations tests: a few recorded ledger entries (plain functions)."""
from __future__ import annotations

from audit import ledger
from audit.ledger import Actor, Subject

SYSTEM = Actor.system("tests")


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
