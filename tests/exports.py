"""Fixtures of the tests that export the ledger (tests/audit/export, tests/audit/verifying): where exports go, the
``export_audit`` command, a signing key of the test's own.

Registered for the whole suite by ``pytest_plugins`` in tests/conftest.py; the directories whose
every test exports make ``exports_under_tmp`` autouse in their conftest.py.
"""
from __future__ import annotations

from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

from audit.signing import signing_key
from tests.audit.export.helpers import Export


@pytest.fixture
def exports_under_tmp(tmp_path: Path) -> Iterator[None]:
    """Exports written by the task go under a temporary VAR_DIR (with its own trusted-keys file)."""
    var = tmp_path / "var"
    var.mkdir()
    with override_settings(VAR_DIR=var):
        yield


@pytest.fixture
def export(tmp_path: Path) -> Export:
    """Run ``export_audit --out <tmp>/<name> ARGS...`` and return the file."""
    counter = iter(range(1000))

    def run(*args: str, name: str | None = None) -> Path:
        out = tmp_path / (name or f"export-{next(counter)}.zip")
        call_command("export_audit", "--out", str(out), *args, stdout=StringIO(), stderr=StringIO())
        return out

    return run


@pytest.fixture
def isolated_key(tmp_path: Path) -> Iterator[Path]:
    """A dev signing key of the test's own (rotation replaces it), so the repository's key is never touched."""
    key = tmp_path / "var" / "dev-ledger-signing-key.pem"
    signing_key.cache_clear()
    with override_settings(LEDGER_SIGNING_KEY=key, LEDGER_SIGNING_KEY_IS_DEV=True):
        yield key
    signing_key.cache_clear()
