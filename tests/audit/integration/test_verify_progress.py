"""verify_ledger(progress=...) reports (done, total) every PROGRESS_EVERY entries and at the end."""
from __future__ import annotations

import pytest

from audit import verification
from audit.verification import verify_ledger
from tests.audit.integration.helpers import fill

pytestmark = pytest.mark.django_db


def test_progress_is_reported_in_steps_and_at_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    monkeypatch.setattr(verification, "PROGRESS_EVERY", 10)
    fill(35, subjects=4)
    calls: list[tuple[int, int | None]] = []

    # when
    result = verify_ledger(progress=lambda done, total: calls.append((done, total)), chunk=7)

    # then
    assert result.ok
    assert calls == [(10, 35), (20, 35), (30, 35), (35, 35)]


def test_progress_on_an_empty_ledger() -> None:
    calls: list[tuple[int, int | None]] = []
    assert verify_ledger(progress=lambda done, total: calls.append((done, total))).ok
    assert calls == [(0, 0)]
