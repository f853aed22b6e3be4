"""Fixtures of the personal-data tests (the helpers are in tests/audit/pii/helpers.py, the people in
tests/personas.py)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from audit.event_types import EventType, registry
from tests.audit.pii.helpers import CONTACTED


@pytest.fixture
def contacted_type(monkeypatch: pytest.MonkeyPatch) -> Iterator[EventType]:
    monkeypatch.setitem(registry._types, CONTACTED.name, CONTACTED)
    yield CONTACTED
