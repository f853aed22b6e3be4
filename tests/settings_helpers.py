"""Helpers of the settings tests: config/settings.py executed afresh, in this process, under a given environment.

What a malformed or unsafe environment does at start-up is what executing the settings module does
(it raises ``ImproperlyConfigured``, which stops the process); running it here with ``runpy`` checks
exactly that code without starting a Python process and Django for each case.
"""
from __future__ import annotations

import os
import runpy
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Variables of the test run's own environment that a settings test must not inherit.
SETTINGS_PREFIXES = ("DEBUG", "SECRET_KEY", "LEDGER_", "DATABASE", "MLFLOW_", "DB_", "RETRY_", "IDEMPOTENCY_",
                     "FOLLOW_UP_", "LOCAL_LOGIN", "OIDC_", "LOGIN_", "CLIENT_IP_", "EMAIL_", "NOTIFY_",
                     "CONSOLE_BASE_URL", "DEFAULT_FROM_EMAIL")


def settings_environ(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """This process's environment without any setting the tests set, with ``VAR_DIR`` under ``tmp_path``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIXES)}
    return {**environ, "VAR_DIR": str(tmp_path / "var"), **overrides}


def settings_module(monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]) -> dict[str, Any]:
    """The settings module executed afresh under ``environ`` (in process: its globals)."""
    for key in [k for k in os.environ if k not in environ]:
        monkeypatch.delenv(key)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    return runpy.run_path(str(ROOT / "config" / "settings.py"))
