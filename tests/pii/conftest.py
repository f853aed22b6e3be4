"""Fixtures of the personal-data tests (the helpers are in tests/pii/helpers.py, the people in
tests/personas.py)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from audit.event_types import EventType, registry
from tests.pii.helpers import CONTACTED


@pytest.fixture
def contacted_type(monkeypatch: pytest.MonkeyPatch) -> Iterator[EventType]:
    monkeypatch.setitem(registry._types, CONTACTED.name, CONTACTED)
    yield CONTACTED
