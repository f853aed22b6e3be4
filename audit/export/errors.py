"""The export service's refusals (each with a stable ``code`` for the API and the console)."""
from __future__ import annotations


class ExportError(ValueError):
    """An export cannot be made as asked; the message says why. ``code`` is stable for the API."""

    def __init__(self, message: str, *, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


class ExportNotPermitted(ExportError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="not_permitted")
