"""Fixtures of the verification tests: a small ledger with checkpoints signed by a key of the test's own."""
from __future__ import annotations

from pathlib import Path

import pytest

from audit import checkpoints
from audit.signing import current_verifier_key
from tests.export.conftest import _celery_eager, _exports_under_tmp, export, isolated_key  # noqa: F401
from tests.integration.helpers import fill


@pytest.fixture
def small_ledger(db: None, isolated_key: Path) -> str:  # noqa: F811
    """About 35 entries with two checkpoints along the way; the current verifier key."""
    fill(20, subjects=3)
    checkpoints.checkpoint_create()
    fill(10, subjects=2, prefix="later")
    checkpoints.checkpoint_create()
    fill(3, prefix="last")
    return current_verifier_key()
