"""/healthz and /readyz answer whatever the Host header (probes come from 127.0.0.1, pod IPs...); nothing else does."""
from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def strict_hosts(settings: object) -> None:
    settings.ALLOWED_HOSTS = ["ledger.example.org"]  # type: ignore[attr-defined]
    settings.SECURE_SSL_REDIRECT = True  # type: ignore[attr-defined]


def test_probes_answer_any_host(strict_hosts: None) -> None:
    client = Client()
    for host in ("127.0.0.1:8000", "web:8000", "10.1.2.3", "evil.example"):
        assert client.get("/healthz", HTTP_HOST=host).status_code == 200
        assert client.get("/readyz", HTTP_HOST=host).status_code in (200, 503)


def test_everything_else_is_still_host_validated(strict_hosts: None) -> None:
    client = Client()
    assert client.get("/healthz/", HTTP_HOST="evil.example").status_code == 400  # not the probe path itself
    assert client.get("/api/v1/", HTTP_HOST="evil.example").status_code == 400
    assert client.post("/healthz", HTTP_HOST="evil.example").status_code == 400  # only GET/HEAD are probes
    assert client.get("/metrics", HTTP_HOST="evil.example").status_code == 400
    assert client.get("/api/v1/", HTTP_HOST="ledger.example.org", secure=True).status_code != 400
