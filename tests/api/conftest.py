"""The API tests: every test starts with an empty cache (throttle counts).

The people, the catalogue and the clients (``as_user``, ``token_for``) are fixtures of the whole
suite (tests/personas.py, tests/catalog.py, tests/clients.py); the promotion fixtures (``gov``,
``pending``...) are in tests/promotions.py; plain helpers in tests/api/helpers.py.
"""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_throttle_cache(empty_cache: None) -> None:
    """Throttle counts never leak from one test into the next."""
