"""Errors raised by governance services. Each carries a stable ``code`` for the API and console."""
from __future__ import annotations


class GovernanceError(ValueError):
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NotPermitted(GovernanceError):
    """The actor may not do this (separation of duties, missing role or group)."""

    code = "not_permitted"


class InvalidState(GovernanceError):
    """The object is not in a state that allows this transition."""

    code = "invalid_state"


class Frozen(GovernanceError):
    code = "frozen"


class RegistryUnreachable(GovernanceError):
    """The MLflow registry could not be read where a decision needs it fresh (an approval, a deployment):
    the decision is refused and nothing is written. The API answers 503 with ``Retry-After``."""

    code = "registry_unreachable"
