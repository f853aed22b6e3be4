"""The promotion-governance tests run Celery tasks in-process (eagerly).

Their fixtures (``envs``, ``fraud``, ``v7``, ``fake_registry``...) are in tests/promotions.py
and the people in tests/personas.py, both registered for the whole suite; plain helpers in
tests/governance/helpers.py.
"""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _celery_eager(celery_eager: None) -> None:
    """Every test here runs tasks eagerly (tests/promotions.py's ``celery_eager``)."""
