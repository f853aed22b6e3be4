"""The key-encryption key: configured, dev-derived, refused in production, and checked on use."""
from __future__ import annotations

import base64
import os

import pytest
from django.core.exceptions import ImproperlyConfigured

from audit import ledger, pii
from audit.models import DataSubjectKey
from tests.audit.pii.helpers import EMAIL, register_event

pytestmark = pytest.mark.django_db

KEK_A = base64.b64encode(b"A" * 32).decode()
KEK_B = base64.b64encode(b"B" * 32).decode()


def test_a_configured_kek_wraps_the_keys(settings: pytest.FixtureRequest, infosec: object) -> None:
    settings.LEDGER_PII_KEK = KEK_A  # type: ignore[attr-defined]
    register_event("900042")
    ledger.integrate()
    assert DataSubjectKey.objects.get().kek_id == pii.kek_id(b"A" * 32)
    assert pii.reveal(actor=infosec, seq=0, reason="r")["email"] == EMAIL  # type: ignore[arg-type]


def test_another_kek_is_refused_clearly(settings: pytest.FixtureRequest, infosec: object) -> None:
    settings.LEDGER_PII_KEK = KEK_A  # type: ignore[attr-defined]
    register_event("900042")
    ledger.integrate()
    settings.LEDGER_PII_KEK = KEK_B  # type: ignore[attr-defined]
    with pytest.raises(ImproperlyConfigured, match="wrapped with KEK"):
        pii.reveal(actor=infosec, seq=0, reason="r")  # type: ignore[arg-type]
    with pytest.raises(ImproperlyConfigured, match="wrapped with KEK"):
        register_event("900042", username="again7f3a")


def test_the_kek_comes_from_the_environment_too(
    settings: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.LEDGER_PII_KEK = None  # type: ignore[attr-defined]
    monkeypatch.setenv("LEDGER_PII_KEK", KEK_B)
    assert pii._kek() == b"B" * 32


@pytest.mark.parametrize("bad", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_malformed_kek_is_refused(settings: pytest.FixtureRequest, bad: str) -> None:
    settings.LEDGER_PII_KEK = bad  # type: ignore[attr-defined]
    with pytest.raises(ImproperlyConfigured, match="base64 of 32 random bytes"):
        register_event("900042")


def test_the_dev_kek_is_refused_in_production(settings: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGER_PII_KEK", raising=False)
    settings.LEDGER_PII_KEK = None  # type: ignore[attr-defined]
    settings.DEBUG = False  # type: ignore[attr-defined]
    settings.TESTING = False  # type: ignore[attr-defined]
    with pytest.raises(ImproperlyConfigured, match="set LEDGER_PII_KEK"):
        register_event("900042")
    settings.DEBUG = True  # type: ignore[attr-defined]
    assert len(pii._kek()) == 32 and "LEDGER_PII_KEK" not in os.environ
