"""Logs carry request id and actor ids, never tokens, passwords or personal data."""
from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from governance.logging_setup import (
    ContextFilter,
    JsonFormatter,
    PlainFormatter,
    RedactingFilter,
    redact,
)

TOKEN = "mlg_AbCdEf0123456789_secretTokenValue-xyz"
PASSWORD = "Hunter2-correct-horse"
EMAIL = "jane.doe.4242@example.com"
CARD = "4111 1111 1111 1111"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The root logger's output through the project's handler setup, in JSON."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"token {TOKEN} used", TOKEN),
        (f"Authorization: Bearer {TOKEN}", TOKEN),
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        (f"login password={PASSWORD}&next=/", PASSWORD),
        (f'{{"password": "{PASSWORD}", "user": 3}}', PASSWORD),
        (f"{{'new_password1': '{PASSWORD}'}}", PASSWORD),
        ("MLFLOW_WEBHOOK_SECRET=whsec_abcdef123", "whsec_abcdef123"),
        (f"mail to {EMAIL} bounced", EMAIL),
        ("redis://:brokerpass@redis:6379/0", "brokerpass"),
        ("postgres://app:dbpass@db/gov", "dbpass"),
        (f"card {CARD} declined", CARD),
        ("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIO\n-----END PRIVATE KEY-----", "MC4CAQAwBQYDK2VwBCIEIO"),
    ],
)
def test_redact(text: str, secret: str) -> None:
    assert secret not in redact(text)


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "promotion 42 of fraud-detector/7 approved by user:5 at seq 1234567 (sha 9f86d081884c7d65)"
    assert redact(text) == text


def test_planted_secrets_never_reach_the_log(json_log: io.StringIO) -> None:
    log = logging.getLogger("tests.ops")
    log.info("user signed in with password=%s token %s", PASSWORD, TOKEN)
    log.warning("request body", extra={"body": {"email": EMAIL, "password": PASSWORD, "auth": f"Bearer {TOKEN}"}})
    try:
        raise ValueError(f"cannot mail {EMAIL} with {TOKEN}")
    except ValueError:
        log.exception("failed")
    output = json_log.getvalue()
    for secret in (TOKEN, PASSWORD, EMAIL):
        assert secret not in output
    records = lines(json_log)
    assert len(records) == 3
    assert records[0]["level"] == "INFO" and records[0]["logger"] == "tests.ops"
    assert "[REDACTED]" in records[0]["message"]
    assert "[EMAIL]" in json.dumps(records[1]["body"])
    assert "exc_info" in records[2]


@pytest.mark.django_db
def test_request_log_has_route_status_request_id_and_actor_id(
    json_log: io.StringIO, client: Client, django_user_model: Any
) -> None:
    # given a signed-in person whose username and email must not appear
    user: User = django_user_model.objects.create_user(username="jane.doe", email=EMAIL, password=PASSWORD)
    client.force_login(user)

    # when they load a page (sending a token and a password the app does not need)
    response = client.get(f"/console/?password={PASSWORD}", HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
                          HTTP_X_REQUEST_ID="req-abcdef-123456")
    client.post("/console/login/", {"username": "jane.doe", "password": PASSWORD})

    # then one structured line per request, with ids only
    output = json_log.getvalue()
    for secret in (TOKEN, PASSWORD, EMAIL, "jane.doe"):
        assert secret not in output
    requests = [r for r in lines(json_log) if r["logger"] == "governance.requests"]
    first = requests[0]
    assert first["request_id"] == response["X-Request-ID"] == "req-abcdef-123456"
    assert first["method"] == "GET"
    assert first["route"] == "console-dashboard"
    assert first["status"] == response.status_code
    assert first["actor"] == f"user:{user.pk}"
    assert isinstance(first["duration_ms"], float)


@pytest.mark.django_db
def test_service_account_actor_is_its_name(json_log: io.StringIO, client: Client) -> None:
    from access.grants import service_account_create
    from access.roles import INFOSEC
    from access.tokens import api_token_create
    from tests.ops.conftest import make_user

    boss = make_user("boss", INFOSEC)
    account = service_account_create(user=boss, name="ci-pipeline", description="CI")
    issued = api_token_create(user=boss, service_account=account, name="ci", scopes=["ledger:read"],
                              expires_in_days=1)
    client.get("/api/v1/ledger/entries", HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    output = json_log.getvalue()
    assert issued.plaintext not in output
    requests = [r for r in lines(json_log) if r["logger"] == "governance.requests"]
    assert requests[-1]["actor"] == "service:ci-pipeline"


def test_plain_format_keeps_context() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", (TOKEN,), None)
    ContextFilter().filter(record)
    RedactingFilter().filter(record)
    text = PlainFormatter().format(record)
    assert "hello mlg_[REDACTED]" in text
    assert TOKEN not in text


def test_settings_pick_the_format(settings: Any) -> None:
    handler = settings.LOGGING["handlers"]["console"]
    assert handler["filters"] == ["context", "redact"]
    assert handler["formatter"] in ("plain", "json")
