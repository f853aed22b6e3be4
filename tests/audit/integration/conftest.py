from __future__ import annotations

from collections.abc import Iterator

import pytest

from audit.event_types import EventType, Field, registry

MEASURED = EventType(
    "test.measured",
    "A test-only event with numeric and free-form fields.",
    {"value": Field("number"), "count": Field("int", required=False), "extra": Field("any", required=False)},
)


@pytest.fixture
def measured_type(monkeypatch: pytest.MonkeyPatch) -> Iterator[EventType]:
    """A test-only event type (the real registry has only string fields), removed afterwards."""
    monkeypatch.setitem(registry._types, MEASURED.name, MEASURED)
    yield MEASURED
