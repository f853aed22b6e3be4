"""Where the SIEM sinks stand: the console page (InfoSec, auditors) and the stream gauges of /metrics."""
from __future__ import annotations

from collections.abc import Sequence

import pytest
from django.db import transaction

from audit.ledger import Actor, Subject, integrate, record
from audit.models import Entry
from integrations.siem import services
from integrations.streams import stream_deliver
from tests.console.helpers import client_for
from tests.ops.test_metrics import TOKEN, scrape, value

pytestmark = pytest.mark.django_db


def _notes(n: int) -> None:
    with transaction.atomic():
        for i in range(n):
            record(event_type="ledger.note_added", actor=Actor.system("t"), subject=Subject("dataset", "d"),
                   payload={"text": f"n{i}"})
    integrate()


def _take(batch: Sequence[Entry]) -> int:
    return len(batch)


@pytest.fixture
def sinks(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.SIEM_SYSLOG_URL = "tls://127.0.0.1:19152"
    settings.SIEM_SYSLOG_CA_FILE = str(tmp_path / "ca.pem")
    settings.SIEM_HEC_URL = "https://127.0.0.1:19153"
    settings.SIEM_HEC_TOKEN = "hec-token-never-shown"
    services.forget_connections()
    _notes(5)
    stream_deliver(name=services.HEC_STREAM, deliver=_take, batch_size=3)
    with pytest.raises(FileNotFoundError):
        services.syslog_deliver()
    yield
    services.forget_connections()


@pytest.mark.usefixtures("sinks")
@pytest.mark.parametrize("persona", ["infosec", "auditor"])
def test_oversight_sees_each_sinks_cursor_lag_and_error(persona: str, people) -> None:  # type: ignore[no-untyped-def]
    page = client_for(getattr(people, persona)).get("/console/siem/").content.decode()
    assert "syslog (RFC 5424 over TLS)" in page and "Splunk HTTP Event Collector" in page
    assert "#2" in page and "FileNotFoundError" in page
    assert "hec-token-never-shown" not in page


@pytest.mark.usefixtures("sinks")
@pytest.mark.parametrize("persona", ["owner", "approver", "outsider"])
def test_other_roles_are_refused_the_siem_page(persona: str, people) -> None:  # type: ignore[no-untyped-def]
    response = client_for(getattr(people, persona)).get("/console/siem/")
    assert response.status_code == 403 and "FileNotFoundError" not in response.content.decode()


@pytest.mark.usefixtures("sinks")
def test_metrics_show_each_streams_lag_and_failure(client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_TOKEN = TOKEN
    text = scrape(client)
    assert value(text, "governance_stream_lag_entries", stream=services.HEC_STREAM) == 2
    assert value(text, "governance_stream_lag_entries", stream=services.SYSLOG_STREAM) == 5
    assert value(text, "governance_stream_failing", stream=services.SYSLOG_STREAM) == 1
    assert value(text, "governance_stream_failing", stream=services.HEC_STREAM) == 0
    assert value(text, "governance_stream_last_delivery_timestamp_seconds", stream=services.HEC_STREAM)
