"""Settings come from the environment and fail loudly; production refuses dev secrets and keys."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from django.core.exceptions import ImproperlyConfigured

from config import env

ROOT = Path(__file__).resolve().parents[1]
STRONG_SECRET = "x" * 50
KEK = "A" * 43 + "="  # base64 of 32 bytes
SECRETS = {"MLFLOW_WEBHOOK_SECRET": "w" * 40, "LEDGER_PII_KEK": KEK}


def _check(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    prefixes = ("DEBUG", "SECRET_KEY", "LEDGER_", "DATABASE", "MLFLOW_")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    environ.update(VAR_DIR=str(tmp_path / "var"), **overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120
    )


def _key_file(tmp_path: Path) -> Path:
    path = tmp_path / "prod-key.pem"
    path.write_bytes(Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return path


def test_production_refuses_the_dev_secret(tmp_path: Path) -> None:
    result = _check(tmp_path, DEBUG="0", LEDGER_SIGNING_KEY=str(_key_file(tmp_path)), **SECRETS)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_refuses_the_dev_signing_key(tmp_path: Path) -> None:
    result = _check(tmp_path, DEBUG="0", SECRET_KEY=STRONG_SECRET, **SECRETS)
    assert result.returncode != 0
    assert "LEDGER_SIGNING_KEY" in result.stderr


def test_production_refuses_the_dev_key_file_named_explicitly(tmp_path: Path) -> None:
    dev_key = tmp_path / "var" / "dev-ledger-signing-key.pem"
    result = _check(
        tmp_path, DEBUG="0", SECRET_KEY=STRONG_SECRET, LEDGER_SIGNING_KEY=str(dev_key), **SECRETS
    )
    assert result.returncode != 0
    assert "LEDGER_SIGNING_KEY" in result.stderr


def test_production_refuses_a_missing_pii_key(tmp_path: Path) -> None:
    result = _check(tmp_path, DEBUG="0", SECRET_KEY=STRONG_SECRET, LEDGER_SIGNING_KEY=str(_key_file(tmp_path)),
                    MLFLOW_WEBHOOK_SECRET="w" * 40)
    assert result.returncode != 0
    assert "LEDGER_PII_KEK" in result.stderr


def test_production_refuses_the_dev_webhook_secret(tmp_path: Path) -> None:
    result = _check(tmp_path, DEBUG="0", SECRET_KEY=STRONG_SECRET, LEDGER_SIGNING_KEY=str(_key_file(tmp_path)),
                    LEDGER_PII_KEK=KEK)
    assert result.returncode != 0
    assert "MLFLOW_WEBHOOK_SECRET" in result.stderr


def test_production_starts_with_real_secrets_and_key(tmp_path: Path) -> None:
    result = _check(
        tmp_path, DEBUG="0", SECRET_KEY=STRONG_SECRET, LEDGER_SIGNING_KEY=str(_key_file(tmp_path)),
        MLFLOW_WEBHOOK_SECRET="w" * 40, LEDGER_PII_KEK=KEK,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DEBUG", "maybe", "is not a boolean"),
        ("LEDGER_CHECKPOINT_INTERVAL", "soon", "is not a number"),
        ("LEDGER_CHECKPOINT_INTERVAL", "0.01", "below the minimum"),
        ("DATABASE_URL", "mysqlx://nowhere/db", "DATABASE_URL"),
    ],
)
def test_malformed_settings_stop_the_process(tmp_path: Path, variable: str, value: str, message: str) -> None:
    result = _check(tmp_path, **{variable: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_env_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_BOOL", "Yes")
    monkeypatch.setenv("X_INT", "12")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    assert env.env_bool("X_BOOL", False) is True
    assert env.env_bool("X_MISSING", True) is True
    assert env.env_int("X_INT", 0, minimum=1) == 12
    assert env.env_list("X_LIST", []) == ["a", "b", "c"]
    monkeypatch.setenv("X_INT", "1.5")
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env.env_int("X_INT", 0)
    with pytest.raises(ImproperlyConfigured, match="is required"):
        env.env_required("X_MISSING")


def _database_options(tmp_path: Path, **overrides: str) -> str:
    prefixes = ("DEBUG", "SECRET_KEY", "LEDGER_", "DATABASE", "MLFLOW_", "DB_")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    environ.update(VAR_DIR=str(tmp_path / "var"), DATABASE_URL="postgres://governance@db.invalid:5432/governance",
                   **overrides)
    code = "from config import settings; print(sorted(settings.DATABASES['default'].get('OPTIONS', {}).items()))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_postgresql_prepares_repeated_statements_by_default(tmp_path: Path) -> None:
    assert _database_options(tmp_path) == "[('prepare_threshold', 5), ('server_side_binding', True)]"
    assert _database_options(tmp_path, DB_PREPARE_THRESHOLD="2") == (
        "[('prepare_threshold', 2), ('server_side_binding', True)]")


def test_prepared_statements_can_be_turned_off_for_a_transaction_pooler(tmp_path: Path) -> None:
    assert _database_options(tmp_path, DB_PREPARED_STATEMENTS="0") == "[]"


def test_a_malformed_pii_kek_stops_the_process_without_showing_it(tmp_path: Path) -> None:
    result = _check(tmp_path, LEDGER_PII_KEK="not-base64-of-32-bytes!")
    assert result.returncode != 0
    assert "LEDGER_PII_KEK must be the base64 of 32 random bytes" in result.stderr
    assert "not-base64-of-32-bytes!" not in result.stderr
