"""Refusals of the ledger's services that the console and the API show as they show any domain's.

Each carries a stable ``code`` (the same codes as the other domains: ``not_permitted`` is a
403, ``invalid_state`` a 409 in the API). The ledger's input errors of one module live beside
it (``LedgerError``, ``PiiError``, ``ExportError``, ``RotationError``...); these are the shared ones.
"""
from __future__ import annotations


class AuditError(ValueError):
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NotPermitted(AuditError):
    """The person may not do this (a missing role)."""

    code = "not_permitted"


class StepUpRequired(NotPermitted):
    """The action needs a recent sign-in with a second factor (the access domain's rule, asked through
    ``audit.policy.step_up_refusal``); the console links to re-authentication, the API answers 403
    ``step_up_required``. Nothing was written."""

    code = "step_up_required"


class InvalidState(AuditError):
    """The object is not in a state that allows this (a hold already released, a subject already erased)."""

    code = "invalid_state"
