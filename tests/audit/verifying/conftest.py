"""Fixtures of the verification tests: a small ledger with checkpoints signed by a key of the test's own.

Every test here exports under a temporary VAR_DIR and runs Celery tasks eagerly (fixtures of
tests/exports.py and tests/promotions.py, registered for the whole suite).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from audit.services import checkpoints
from audit.signing import current_verifier_key
from tests.audit.integration.helpers import fill


@pytest.fixture(autouse=True)
def _exports_under_tmp(exports_under_tmp: None) -> None:
    """Every test here exports under a temporary VAR_DIR (tests/exports.py)."""


@pytest.fixture(autouse=True)
def _celery_eager(celery_eager: None) -> None:
    """Every test here runs tasks eagerly (tests/promotions.py)."""


@pytest.fixture
def small_ledger(db: None, isolated_key: Path) -> str:
    """About 35 entries with two checkpoints along the way; the current verifier key."""
    fill(20, subjects=3)
    checkpoints.checkpoint_create()
    fill(10, subjects=2, prefix="later")
    checkpoints.checkpoint_create()
    fill(3, prefix="last")
    return current_verifier_key()
