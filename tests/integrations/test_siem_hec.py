"""The Splunk HTTP Event Collector sink against an HTTPS receiver on 127.0.0.1.

A mock, where no real one can run: neither Splunk nor any HEC-compatible receiver (Vector, Fluent Bit, the
OpenTelemetry Collector's splunk_hec receiver) installs from Debian or PyPI here, so ``HecReceiver``
(tests/integrations/siem_receivers.py) implements HEC's documented answers over real TLS."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from audit.ledger import Actor, Subject, integrate, record
from audit.models import Entry
from integrations.siem import hec, services
from integrations.streams import stream_cursor
from tests.integrations.siem_receivers import HecReceiver, Pki, make_pki

pytestmark = pytest.mark.django_db
TOKEN = "0b5e3c1d-7a2f-4c59-9d1e-hec-token-for-tests"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki", server_name="hec.test")


@pytest.fixture
def receiver(pki: Pki, settings) -> Iterator[HecReceiver]:  # type: ignore[no-untyped-def]
    server = HecReceiver(pki, TOKEN)
    # The certificate names hec.test and 127.0.0.1: the URL's host is checked against it.
    settings.SIEM_HEC_URL = f"https://127.0.0.1:{server.port}"
    settings.SIEM_HEC_TOKEN = TOKEN
    settings.SIEM_HEC_CA_FILE = str(pki.ca_file)
    settings.SIEM_TIMEOUT = 3.0
    services.forget_connections()
    yield server
    services.forget_connections()
    server.close()


def _notes(n: int) -> list[int]:
    with transaction.atomic():
        for i in range(n):
            record(event_type="ledger.note_added", actor=Actor.system("test"), subject=Subject("dataset", "d"),
                   payload={"text": f"note {i}", "reference": f"T-{i}"})
    integrate()
    return list(Entry.objects.order_by("seq").values_list("seq", flat=True))


def _drain() -> None:
    while (result := services.hec_deliver(batch_size=4)) is not None and result.count:
        pass


def test_entries_arrive_as_hec_events_carrying_the_ocsf_object(receiver: HecReceiver) -> None:
    seqs = _notes(10)
    _drain()
    assert [e["event"]["metadata"]["sequence"] for e in receiver.events] == seqs
    first = receiver.events[0]
    entry = Entry.objects.get(seq=seqs[0])
    assert first["sourcetype"] == "ocsf" and first["source"] == "governance-ledger"
    assert first["time"] == first["event"]["time"] / 1000
    assert first["event"]["metadata"]["uid"] == entry.entry_hash
    assert first["event"]["class_uid"] == 3004
    assert len(receiver.requests) == 3  # batches of 4: one POST each
    assert {r["authorization"] for r in receiver.requests} == {f"Splunk {TOKEN}"}
    assert stream_cursor(services.HEC_STREAM).seq == seqs[-1]


def test_a_wrong_token_is_refused_and_nothing_advances_nor_leaks(receiver: HecReceiver, settings) -> None:  # type: ignore[no-untyped-def]
    _notes(3)
    settings.SIEM_HEC_TOKEN = "not-the-token"
    with pytest.raises(hec.HecError, match="403: Invalid token"):
        services.hec_deliver()
    cursor = stream_cursor(services.HEC_STREAM)
    assert cursor.seq == -1
    assert "not-the-token" not in cursor.last_error and receiver.events == []


def test_a_busy_collector_gets_the_same_batch_again_later(receiver: HecReceiver) -> None:
    seqs = _notes(5)
    receiver.busy = True
    with pytest.raises(hec.HecError, match="503: Server is busy"):
        services.hec_deliver()
    assert stream_cursor(services.HEC_STREAM).seq == -1
    receiver.busy = False
    _drain()
    assert [e["event"]["metadata"]["sequence"] for e in receiver.events] == seqs


def test_a_kept_alive_connection_the_collector_closed_is_reopened_without_an_error(receiver: HecReceiver) -> None:
    seqs = _notes(8)
    assert services.hec_deliver(batch_size=4).count == 4  # type: ignore[union-attr]
    receiver.drop_idle_connections()
    time.sleep(0.1)
    assert services.hec_deliver(batch_size=4).count == 4  # type: ignore[union-attr]
    assert [e["event"]["metadata"]["sequence"] for e in receiver.events] == seqs
    assert stream_cursor(services.HEC_STREAM).last_error == ""


def test_a_collector_down_then_up_loses_nothing(receiver: HecReceiver, settings) -> None:  # type: ignore[no-untyped-def]
    seqs = _notes(3)
    settings.SIEM_HEC_URL = "https://127.0.0.1:19150"  # nothing listens there
    with pytest.raises(OSError):
        services.hec_deliver()
    settings.SIEM_HEC_URL = f"https://127.0.0.1:{receiver.port}"
    _drain()
    assert [e["event"]["metadata"]["sequence"] for e in receiver.events] == seqs


def test_a_collector_with_a_certificate_from_another_ca_is_refused(receiver: HecReceiver, settings,  # type: ignore[no-untyped-def]
                                                                   tmp_path: Path) -> None:
    _notes(1)
    settings.SIEM_HEC_CA_FILE = str(make_pki(tmp_path / "other", prefix="other-").ca_file)
    with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
        services.hec_deliver()
    assert receiver.requests == []  # the token never left


def test_an_invalid_event_takes_the_events_before_it(receiver: HecReceiver, pki: Pki) -> None:
    config = hec.HecConfig(url=f"https://127.0.0.1:{receiver.port}", token=TOKEN, ca_file=str(pki.ca_file))
    client = hec.HecClient(config)
    body = b'{"event": {"n": 1}}\n{"event": {"n": 2}}\n{"not": "an event"}\n{"event": {"n": 4}}'
    assert client.post(body, 4) == 2
    assert [e["event"]["n"] for e in receiver.events] == [1, 2]
    client.close()


@pytest.mark.parametrize("url", ["http://127.0.0.1:8088", "ftp://x", "https://"])
def test_the_token_is_only_ever_sent_over_https(url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="https"):
        hec.HecConfig(url=url, token=TOKEN)


def test_a_token_with_a_newline_is_refused_not_sent_as_a_header_injection() -> None:
    with pytest.raises(ImproperlyConfigured, match="one line"):
        hec.HecConfig(url="https://siem.example:8088", token="abc\r\nX-Evil: 1")


def test_the_config_repr_hides_the_token() -> None:
    assert TOKEN not in repr(hec.HecConfig(url="https://siem.example:8088", token=TOKEN))


def test_events_are_json_lines_of_ascii(receiver: HecReceiver) -> None:
    _notes(2)
    body = hec.encode_batch(list(Entry.objects.order_by("seq")), services.hec_config())  # type: ignore[arg-type]
    assert [json.loads(line)["event"]["metadata"]["sequence"] for line in body.splitlines()] == [0, 1]
