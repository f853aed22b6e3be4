"""Errors raised by access services. Each carries a stable ``code`` for the API and console.

Mirrors ``governance.errors``: a refusal is a ``ValueError`` whose message says
why, raised before anything is written.
"""
from __future__ import annotations


class AccessError(ValueError):
    """A request that cannot be carried out as asked (bad input, or a rule of the access domain)."""

    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NotPermitted(AccessError):
    """The actor may not do this (missing role, not the owner, separation of duties)."""

    code = "not_permitted"


class InvalidState(AccessError):
    """The object is not in a state that allows this transition (already decided, revoked, expired...)."""

    code = "invalid_state"


class ServiceError(ValueError):
    """A role change or registration that cannot be carried out as asked; the message says why."""


class StepUpRequired(NotPermitted):
    """The action needs a recent sign-in with a second factor (``access.authn.require_recent_mfa``).

    The console answers with a link to ``console-step-up`` (re-authentication at the identity provider),
    the API with a 403 problem of this code; nothing was written.
    """

    code = "step_up_required"
