"""Production transport and session settings (HSTS, HTTPS redirect, proxy header, cookies, idle timeout).

* ``manage.py check --deploy --fail-level WARNING`` passes with the environment the compose file gives the
  app (through the container entrypoint, with fake but well-formed secrets): no deployment warning.
* Plain HTTP is redirected to HTTPS, except the probes a cluster calls inside it; a request the proxy marks
  as HTTPS gets HSTS; the proxy header is honoured only as configured.
* The console session ends after ``CONSOLE_IDLE_TIMEOUT_SECONDS`` without a request; a session in use is
  extended, with at most one write per refresh interval.
"""
from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import UserFactory
from tests.settings_helpers import settings_module
from web.idle_session import REFRESHED_AT, refresh_interval

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker" / "compose.yml"
SUBSTITUTION = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def compose_environment(service: str) -> dict[str, str]:
    """The environment compose gives ``service`` with no .env file (``${X:-default}`` → default)."""
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    env = data["services"][service]["environment"]
    return {k: SUBSTITUTION.sub(lambda m: m.group(2) or "", str(v)) for k, v in env.items()}


def production_environment(tmp_path: Path, service: str = "web", **overrides: str) -> dict[str, str]:
    """The compose environment of ``service`` with its secret files written to ``tmp_path``, fake values."""
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(exist_ok=True)
    key = secrets_dir / "ledger_signing_key.pem"
    key.write_bytes(Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    fake = {
        "database_url": "postgres://governance@postgres:5432/governance",
        "django_secret_key": secrets.token_urlsafe(50),
        "ledger_pii_kek": "A" * 43 + "=",
        "mlflow_webhook_secret": secrets.token_urlsafe(32),
        "metrics_token": secrets.token_urlsafe(24),
        "ledger_trusted_keys": "",
    }
    for name, value in fake.items():
        (secrets_dir / name).write_text(value + "\n", encoding="utf-8")
    env = compose_environment(service)
    for k, v in list(env.items()):
        if v.startswith("/run/secrets/"):
            name = v.removeprefix("/run/secrets/")
            env[k] = str(key if name == "ledger_signing_key" else secrets_dir / name)
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    (tmp_path / "prometheus").mkdir(exist_ok=True)
    return {**keep, **env, "VAR_DIR": str(tmp_path / "var"), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
            "DJANGO_SETTINGS_MODULE": "config.settings", **overrides}


def run(environ: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    # A real process, because these tests are about start-up itself: the settings read the *_FILE variables
    # (config.env.env_secret) as a `docker compose exec` does. The entrypoint itself (it drops to uid 10001,
    # which cannot read this test's files) is run as in the container by tests/ops/test_compose_emulation.py.
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=180)


def test_the_compose_settings_pass_the_deployment_checklist(tmp_path: Path) -> None:
    result = run(production_environment(tmp_path), "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout


def test_the_checklist_fails_when_production_turns_transport_security_off(tmp_path: Path) -> None:
    # The test above can fail: the same environment without HSTS and the redirect is refused.
    environ = production_environment(tmp_path, SECURE_HSTS_SECONDS="0", SECURE_SSL_REDIRECT="0")
    result = run(environ, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "security.W004" in result.stderr + result.stdout and "security.W008" in result.stderr + result.stdout


def test_production_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    environ = production_environment(tmp_path)
    for key in [k for k in environ if k.endswith("_FILE")]:  # what the entrypoint does
        environ[key.removesuffix("_FILE")] = Path(environ.pop(key)).read_text().rstrip("\n")
    s = settings_module(monkeypatch, environ)
    assert s["DEBUG"] is False
    assert s["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")
    assert s["SECURE_SSL_REDIRECT"] is True and s["SECURE_REDIRECT_EXEMPT"] == [
        r"^healthz$", r"^readyz$", r"^metrics$", r"^webhooks/mlflow$"]
    assert (s["SECURE_HSTS_SECONDS"], s["SECURE_HSTS_INCLUDE_SUBDOMAINS"], s["SECURE_HSTS_PRELOAD"]) == (
        31_536_000, True, False)
    assert s["SESSION_COOKIE_SECURE"] is s["CSRF_COOKIE_SECURE"] is True
    # 15 minutes idle, 12 hours at most; the row outlives the idle timeout by an hour so its end is recorded.
    assert (s["CONSOLE_IDLE_TIMEOUT_SECONDS"], s["CONSOLE_SESSION_MAX_AGE_SECONDS"]) == (900, 43200)
    assert (s["SESSION_COOKIE_AGE"], s["SESSION_EXPIRE_AT_BROWSER_CLOSE"]) == (900 + 3600, True)
    assert "web.idle_session.IdleSessionMiddleware" in s["MIDDLEWARE"]
    # compose turns the (throttled) password sign-in on for trying it out, and reads the client's address
    # from Caddy's X-Forwarded-For
    assert s["LOCAL_LOGIN"] is True and s["CLIENT_IP_PROXY_COUNT"] == 1
    assert s["AUTHENTICATION_BACKENDS"][0] == "access.backends.LoginThrottleBackend"
    policy = s["CONTENT_SECURITY_POLICY"]["DIRECTIVES"]
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto", "two comma-separated values"),
    ("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto,https", "must name a request header as Django sees it"),
    ("SECURE_PROXY_SSL_HEADER", "HTTP_X_FORWARDED_PROTO,https,http", "two comma-separated values"),
    ("SECURE_HSTS_SECONDS", "a year", "is not an integer"),
    ("SECURE_HSTS_SECONDS", "-1", "below the minimum"),
    ("SECURE_SSL_REDIRECT", "sometimes", "is not a boolean"),
    ("CONSOLE_IDLE_TIMEOUT_SECONDS", "10", "below the minimum 60"),
    ("CONSOLE_SESSION_MAX_AGE_SECONDS", "60", "below the minimum 300"),
    ("CONSOLE_SESSION_MAX_AGE_SECONDS", "twelve hours", "is not an integer"),
    ("CONSOLE_SESSION_MAX_AGE_SECONDS", "600", "shorter than CONSOLE_IDLE_TIMEOUT_SECONDS=900"),
])
def test_malformed_security_settings_stop_the_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      variable: str, value: str, message: str) -> None:
    environ = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME")}
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        settings_module(monkeypatch, {**environ, "VAR_DIR": str(tmp_path / "var"), variable: value})


# --- behaviour (in process, with the production values switched on) -----------------------------------------

PRODUCTION = {
    "SECURE_SSL_REDIRECT": True, "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
    "SECURE_HSTS_SECONDS": 31_536_000, "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True,
}


@pytest.mark.django_db
@override_settings(**PRODUCTION)
def test_plain_http_is_redirected_to_https_except_the_probes() -> None:
    client = Client()
    for url in ("/console/login/", "/api/v1/models", "/admin/"):
        response = client.get(url)
        assert response.status_code == 301, url
        assert response["Location"] == f"https://testserver{url}"
    for url in ("/healthz", "/readyz", "/metrics"):
        assert client.get(url).status_code != 301, url


@pytest.mark.django_db
@override_settings(**PRODUCTION)
def test_the_proxys_https_marker_is_honoured_and_gets_hsts() -> None:
    response = Client().get("/console/login/", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert response["X-Frame-Options"] == "DENY" and response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


@pytest.mark.django_db
@override_settings(**PRODUCTION)
def test_a_client_cannot_claim_https_with_another_header() -> None:
    # Only the header the proxy overwrites counts; a client's own X-Forwarded-Ssl or Forwarded does not.
    client = Client()
    assert client.get("/console/login/", HTTP_X_FORWARDED_SSL="on").status_code == 301
    assert client.get("/console/login/", HTTP_FORWARDED="proto=https").status_code == 301


@pytest.mark.django_db
@override_settings(**PRODUCTION)
def test_the_session_cookie_is_secure_httponly_lax_and_ends_with_the_browser() -> None:
    user = UserFactory(username="ines-cookie")
    user.set_password("a long enough password 1")
    user.save()
    client = Client(HTTP_X_FORWARDED_PROTO="https")
    response = client.post("/console/login/", {"username": "ines-cookie", "password": "a long enough password 1"})
    assert response.status_code == 302
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Lax"
    assert not cookie["max-age"] and not cookie["expires"]  # a browser-session cookie
    csrf = response.cookies.get(settings.CSRF_COOKIE_NAME) or client.get("/console/login/").cookies.get(
        settings.CSRF_COOKIE_NAME)
    if csrf is not None:
        assert csrf["secure"] and csrf["samesite"] == "Lax"


def _age_session(client: Client, *, refreshed_ago: int, expires_in: int) -> Session:
    """Pretend the client's session was last refreshed ``refreshed_ago`` seconds ago and ends in ``expires_in``."""
    store = client.session
    store[REFRESHED_AT] = int(time.time()) - refreshed_ago
    store.save()
    Session.objects.filter(pk=store.session_key).update(expire_date=timezone.now() + timedelta(seconds=expires_in))
    return Session.objects.get(pk=store.session_key)


@pytest.mark.django_db
def test_a_session_in_use_is_extended_a_full_timeout() -> None:
    client = Client()
    client.force_login(UserFactory(username="busy-ines"))
    timeout = settings.CONSOLE_IDLE_TIMEOUT_SECONDS
    assert timeout == 900
    row_age = settings.SESSION_COOKIE_AGE
    assert row_age == timeout + settings.SESSION_TOMBSTONE_SECONDS
    # Nearly at the end of the row's life, last refreshed a minute ago: a request pushes the expiry a full age.
    session = _age_session(client, refreshed_ago=refresh_interval(), expires_in=5)
    assert client.get("/console/").status_code == 200
    remaining = Session.objects.get(pk=session.pk).expire_date - timezone.now()
    assert timedelta(seconds=row_age - 60) < remaining <= timedelta(seconds=row_age)


@pytest.mark.django_db
def test_requests_within_the_refresh_interval_write_no_session() -> None:
    client = Client()
    client.force_login(UserFactory(username="quick-ines"))
    session = _age_session(client, refreshed_ago=0, expires_in=600)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/console/").status_code == 200
    assert not [q for q in queries if "django_session" in q["sql"] and not q["sql"].startswith("SELECT")]
    assert Session.objects.get(pk=session.pk).expire_date == session.expire_date


@pytest.mark.django_db
def test_an_idle_session_is_signed_out() -> None:
    client = Client()
    client.force_login(UserFactory(username="idle-ines"))
    _age_session(client, refreshed_ago=settings.CONSOLE_IDLE_TIMEOUT_SECONDS, expires_in=-1)
    response = client.get("/console/")
    assert response.status_code == 302 and response["Location"].startswith("/console/login/")
    assert client.get("/api/v1/whoami").status_code in (401, 403)


@pytest.mark.django_db
def test_signing_in_counts_as_a_refresh_so_the_next_pages_write_no_session() -> None:
    client = Client()
    client.force_login(UserFactory(username="new-ines"))
    assert abs(client.session[REFRESHED_AT] - time.time()) < 5
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/console/").status_code == 200
    assert not [q for q in queries if "django_session" in q["sql"] and not q["sql"].startswith("SELECT")]
