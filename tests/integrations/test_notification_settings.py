"""The notification settings (config/settings.py) read from the environment, failing loudly."""
from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.settings_helpers import settings_environ, settings_module


def test_without_a_host_the_demo_writes_mail_under_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = settings_module(monkeypatch, settings_environ(tmp_path))
    assert loaded["EMAIL_BACKEND"] == "django.core.mail.backends.filebased.EmailBackend"
    assert loaded["EMAIL_FILE_PATH"] == str(tmp_path / "var" / "mail")


def test_a_host_means_smtp_with_starttls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = settings_module(monkeypatch, settings_environ(tmp_path, EMAIL_HOST="smtp.example.com",
                                                           CONSOLE_BASE_URL="https://gov.example.com/"))
    assert loaded["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert loaded["EMAIL_USE_TLS"] is True and loaded["CONSOLE_BASE_URL"] == "https://gov.example.com"


@pytest.mark.parametrize(("env", "message"), [
    ({"EMAIL_USE_TLS": "1", "EMAIL_USE_SSL": "1"}, "exclude each other"),
    ({"CONSOLE_BASE_URL": "gov.example.com"}, "CONSOLE_BASE_URL must be an http"),
    ({"NOTIFY_DAILY_HOUR": "24"}, "0 to 23"),
    ({"EMAIL_PORT": "smtp"}, "EMAIL_PORT"),
    ({"NOTIFY_CHAT_ALLOW_PRIVATE": "maybe"}, "NOTIFY_CHAT_ALLOW_PRIVATE"),
])
def test_bad_notification_settings_stop_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 env: dict[str, str], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        settings_module(monkeypatch, settings_environ(tmp_path, **env))
