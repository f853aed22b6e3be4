"""Fixtures of the key tests: a VAR_DIR (trusted-keys file) and a signing key of the test's own.

Plain helpers (``write_key``) are in tests/audit/keys/helpers.py.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings

from audit.signing import signing_key


@pytest.fixture(autouse=True)
def var_dir(tmp_path: Path) -> Iterator[Path]:
    """Each test has its own VAR_DIR (so its own trusted-keys file) and dev signing key; neither is the repo's."""
    var = tmp_path / "var"
    var.mkdir()
    signing_key.cache_clear()
    with override_settings(VAR_DIR=var, LEDGER_SIGNING_KEY=var / "dev-ledger-signing-key.pem",
                           LEDGER_SIGNING_KEY_IS_DEV=True, LEDGER_TRUSTED_KEYS=[]):
        yield var
    signing_key.cache_clear()
