"""Settings come from the environment and fail loudly; production refuses dev secrets and keys.

The validators are tested directly (``config.env``'s helpers, ``config.settings.production_guard``)
and through config/settings.py executed in this process (tests/settings_helpers.py): that is what
stops a process at start-up. One test starts a real process, because it is about start-up itself.
"""
from __future__ import annotations

import subprocess
import sys
import traceback
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from django.core.exceptions import ImproperlyConfigured

from config import env
from config.settings import DEV_MLFLOW_WEBHOOK_SECRET, DEV_SECRET_KEY, production_guard
from tests.settings_helpers import ROOT, settings_environ, settings_module

STRONG_SECRET = "x" * 50
KEK = "A" * 43 + "="  # base64 of 32 bytes
SECRETS = {"MLFLOW_WEBHOOK_SECRET": "w" * 40, "LEDGER_PII_KEK": KEK}
REAL = {"secret_key": STRONG_SECRET, "pii_kek": KEK, "webhook_secret": "w" * 40, "signing_key_is_dev": False}


def _key_file(tmp_path: Path) -> Path:
    path = tmp_path / "prod-key.pem"
    path.write_bytes(Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return path


def _refusal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **environ: str) -> str:
    """The message config/settings.py stops on under ``environ`` (fails if it does not stop)."""
    with pytest.raises(ImproperlyConfigured) as refused:
        settings_module(monkeypatch, settings_environ(tmp_path, **environ))
    return str(refused.value)


def _printed(exc: BaseException) -> str:
    """What a process stopped by ``exc`` at start-up prints: the traceback (without this test's own frames,
    which are not part of a start-up) and the message, for ``exc`` and every exception chained to it."""
    tests = str(Path(__file__).resolve().parent)
    out: list[str] = []
    current: BaseException | None = exc
    while current is not None:
        frames = [f for f in traceback.extract_tb(current.__traceback__) if not f.filename.startswith(tests)]
        out += [*traceback.format_list(frames), *traceback.format_exception_only(current)]
        current = current.__cause__ or current.__context__
    return "".join(out)


# --- the production guard, directly -----------------------------------------------------------------------


@pytest.mark.parametrize(("change", "names"), [
    ({"secret_key": DEV_SECRET_KEY}, "SECRET_KEY"),
    ({"secret_key": "x" * 31}, "SECRET_KEY"),
    ({"pii_kek": None}, "LEDGER_PII_KEK"),
    ({"webhook_secret": DEV_MLFLOW_WEBHOOK_SECRET}, "MLFLOW_WEBHOOK_SECRET"),
    ({"signing_key_is_dev": True}, "LEDGER_SIGNING_KEY"),
])
def test_the_production_guard_refuses_each_dev_secret_and_key(change: dict[str, object], names: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=f"DEBUG is off: set {names} "):
        production_guard(**{**REAL, **change})  # type: ignore[arg-type]


def test_the_production_guard_accepts_real_secrets_and_key() -> None:
    production_guard(**REAL)  # type: ignore[arg-type]


# --- the settings module applies it when DEBUG is off (in process) ----------------------------------------


def test_production_refuses_the_dev_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = _refusal(monkeypatch, tmp_path, DEBUG="0", LEDGER_SIGNING_KEY=str(_key_file(tmp_path)), **SECRETS)
    assert "SECRET_KEY" in message


def test_production_refuses_the_dev_signing_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = _refusal(monkeypatch, tmp_path, DEBUG="0", SECRET_KEY=STRONG_SECRET, **SECRETS)
    assert "LEDGER_SIGNING_KEY" in message


def test_production_refuses_the_dev_key_file_named_explicitly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dev_key = tmp_path / "var" / "dev-ledger-signing-key.pem"
    message = _refusal(monkeypatch, tmp_path, DEBUG="0", SECRET_KEY=STRONG_SECRET, LEDGER_SIGNING_KEY=str(dev_key),
                       **SECRETS)
    assert "LEDGER_SIGNING_KEY" in message


def test_production_refuses_a_missing_pii_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = _refusal(monkeypatch, tmp_path, DEBUG="0", SECRET_KEY=STRONG_SECRET,
                       LEDGER_SIGNING_KEY=str(_key_file(tmp_path)), MLFLOW_WEBHOOK_SECRET="w" * 40)
    assert "LEDGER_PII_KEK" in message


def test_production_refuses_the_dev_webhook_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = _refusal(monkeypatch, tmp_path, DEBUG="0", SECRET_KEY=STRONG_SECRET,
                       LEDGER_SIGNING_KEY=str(_key_file(tmp_path)), LEDGER_PII_KEK=KEK)
    assert "MLFLOW_WEBHOOK_SECRET" in message


def test_production_starts_with_real_secrets_and_key(tmp_path: Path) -> None:
    # A real process, because this test is about start-up itself: with DEBUG off and real secrets and key,
    # ``manage.py check`` starts Django, loads every app and passes its system checks.
    environ = settings_environ(
        tmp_path, DEBUG="0", SECRET_KEY=STRONG_SECRET, LEDGER_SIGNING_KEY=str(_key_file(tmp_path)),
        MLFLOW_WEBHOOK_SECRET="w" * 40, LEDGER_PII_KEK=KEK, LOCAL_LOGIN="1",
    )
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=environ, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# --- somebody must be able to sign in ----------------------------------------------------------------------


def test_production_refuses_to_start_when_nobody_could_sign_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = _refusal(monkeypatch, tmp_path, DEBUG="0", SECRET_KEY=STRONG_SECRET,
                       LEDGER_SIGNING_KEY=str(_key_file(tmp_path)), **SECRETS)
    assert "nobody could sign in" in message and "LOCAL_LOGIN=1" in message and "OIDC_RP_CLIENT_ID" in message


_SSO = {
    "OIDC_RP_CLIENT_ID": "governance-console", "OIDC_RP_CLIENT_SECRET": "a-client-secret-from-the-provider",
    "OIDC_OP_ISSUER": "https://idp.example.com", "OIDC_OP_AUTHORIZATION_ENDPOINT": "https://idp.example.com/auth",
    "OIDC_OP_TOKEN_ENDPOINT": "https://idp.example.com/token", "OIDC_OP_JWKS_ENDPOINT": "https://idp.example.com/jwks",
}


@pytest.mark.parametrize("sign_in", [{"LOCAL_LOGIN": "1"}, _SSO])
def test_production_starts_with_sso_or_the_local_login(sign_in: dict[str, str], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings_module(monkeypatch, settings_environ(tmp_path, DEBUG="0", SECRET_KEY=STRONG_SECRET,
                                                      LEDGER_SIGNING_KEY=str(_key_file(tmp_path)), **SECRETS,
                                                      **sign_in))
    assert s["LOCAL_LOGIN"] is ("LOCAL_LOGIN" in sign_in)


def test_the_local_login_is_on_by_default_only_with_debug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_module(monkeypatch, settings_environ(tmp_path, DEBUG="1"))["LOCAL_LOGIN"] is True
    assert settings_module(monkeypatch, settings_environ(tmp_path, DEBUG="1", LOCAL_LOGIN="0"))["LOCAL_LOGIN"] is False


# --- malformed values stop the settings module ------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DEBUG", "maybe", "is not a boolean"),
        ("LEDGER_CHECKPOINT_INTERVAL", "soon", "is not a number"),
        ("LEDGER_CHECKPOINT_INTERVAL", "0.01", "below the minimum"),
        ("DATABASE_URL", "mysqlx://nowhere/db", "DATABASE_URL"),
        ("LOCAL_LOGIN", "perhaps", "is not a boolean"),
        ("LOGIN_FAILURE_LIMIT", "0", "below the minimum"),
        ("LOGIN_LOCKOUT_MINUTES", "a while", "is not an integer"),
        ("CLIENT_IP_PROXY_COUNT", "-1", "below the minimum"),
    ],
)
def test_malformed_settings_stop_the_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str,
                                             value: str, message: str) -> None:
    assert message in _refusal(monkeypatch, tmp_path, **{variable: value})


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


def _database_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **overrides: str) -> str:
    environ = settings_environ(tmp_path, DATABASE_URL="postgres://governance@db.invalid:5432/governance",
                               **overrides)
    return str(sorted(settings_module(monkeypatch, environ)["DATABASES"]["default"].get("OPTIONS", {}).items()))


def test_postgresql_prepares_repeated_statements_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _database_options(tmp_path, monkeypatch) == "[('prepare_threshold', 5), ('server_side_binding', True)]"
    assert _database_options(tmp_path, monkeypatch, DB_PREPARE_THRESHOLD="2") == (
        "[('prepare_threshold', 2), ('server_side_binding', True)]")


def test_prepared_statements_can_be_turned_off_for_a_transaction_pooler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _database_options(tmp_path, monkeypatch, DB_PREPARED_STATEMENTS="0") == "[]"


def test_a_malformed_pii_kek_stops_the_process_without_showing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ImproperlyConfigured) as refused:
        settings_module(monkeypatch, settings_environ(tmp_path, LEDGER_PII_KEK="not-base64-of-32-bytes!"))
    shown = _printed(refused.value)
    assert "LEDGER_PII_KEK must be the base64 of 32 random bytes" in shown
    assert "not-base64-of-32-bytes!" not in shown


# --- retries and outages (issue #16 §1) ---------------------------------------------------------------


def test_retry_and_idempotency_settings_are_typed_and_refuse_nonsense(monkeypatch, tmp_path):
    loaded = settings_module(monkeypatch, settings_environ(tmp_path, RETRY_AFTER_SECONDS="12",
                                                           IDEMPOTENCY_KEY_TTL_HOURS="48",
                                                           DATABASE_URL="postgres://u@db:5432/x"))
    assert loaded["RETRY_AFTER_SECONDS"] == 12 and loaded["IDEMPOTENCY_KEY_TTL_HOURS"] == 48.0
    db = loaded["DATABASES"]["default"]
    assert db["CONN_HEALTH_CHECKS"] is True and db["CONN_MAX_AGE"] == 60
    assert "web-idempotency-keys-purge" in loaded["CELERY_BEAT_SCHEDULE"]
    assert loaded["MIDDLEWARE"][-1] == "web.outage.DependencyOutageMiddleware"
    assert "RETRY_AFTER_SECONDS" in _refusal(monkeypatch, tmp_path, RETRY_AFTER_SECONDS="soon")
    assert "RETRY_AFTER_SECONDS" in _refusal(monkeypatch, tmp_path, RETRY_AFTER_SECONDS="0")
    assert "IDEMPOTENCY_KEY_TTL_HOURS" in _refusal(monkeypatch, tmp_path, IDEMPOTENCY_KEY_TTL_HOURS="0.5")
    sqlite = settings_module(monkeypatch, settings_environ(tmp_path))["DATABASES"]["default"]
    assert sqlite["CONN_MAX_AGE"] == 0 and sqlite["CONN_HEALTH_CHECKS"] is True
