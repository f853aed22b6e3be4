"""What the ledger asks of the domains above it, answered by them at start-up (no upward import).

The ledger knows no roles and no accounts. It names the questions it has to ask, and the
access domain answers them by registering a :class:`Policy` (``access/ledger_hooks.py``,
from ``AccessConfig.ready()``), so the web process, the worker, the commands and the tests
all ask the same rule:

- :func:`may` — may this person read the ledger, export it, see every export (not only their
  own), reveal personal data, place and release legal holds?
- :func:`account_closed_at` — when was this account closed (the start of retention's clock)?
- :func:`step_up_refusal` — does this person need to prove who they are again, with a second factor,
  before a sensitive action (revealing personal data, exporting)? The answer is the refusal's message;
  the ledger raises its own ``audit.errors.StepUpRequired`` with it (code ``step_up_required``).

With no policy registered (the ledger used alone) every action is refused and every
account counts as open, so nothing is shown and nothing is erased by default.
"""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Protocol


class Action(enum.Enum):
    READ_LEDGER = "read_ledger"                    # InfoSec and auditors
    EXPORT = "export"                              # InfoSec and auditors
    SEE_EVERY_EXPORT = "see_every_export"          # InfoSec (an auditor sees only their own)
    REVEAL_PERSONAL_DATA = "reveal_personal_data"  # InfoSec
    MANAGE_LEGAL_HOLDS = "manage_legal_holds"      # InfoSec


class Policy(Protocol):
    def may(self, user: object, action: Action) -> bool:
        """Whether ``user`` (a person, never a superuser by that alone) may do ``action``."""

    def account_closed_at(self, user: object) -> datetime | None:
        """When ``user``'s account was closed; None while it counts as open."""

    def step_up_refusal(self, user: object, action: str) -> str | None:
        """Why ``user`` must re-authenticate with a second factor before ``action`` (words completing
        "… needs a recent multi-factor sign-in"), or None when the current sign-in is enough."""


class _RefuseAll:
    def may(self, user: object, action: Action) -> bool:
        return False

    def account_closed_at(self, user: object) -> datetime | None:
        return None

    def step_up_refusal(self, user: object, action: str) -> str | None:
        return None  # ``may`` already refuses everything


_policy: Policy = _RefuseAll()


def policy_register(policy: Policy) -> None:
    """Install the rule the ledger asks (the access domain's, at start-up)."""
    global _policy
    _policy = policy


def may(user: object, action: Action) -> bool:
    return _policy.may(user, action)


def account_closed_at(user: object) -> datetime | None:
    return _policy.account_closed_at(user)


def step_up_refusal(user: object, action: str) -> str | None:
    return _policy.step_up_refusal(user, action)
