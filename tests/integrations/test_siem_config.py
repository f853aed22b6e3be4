"""SIEM settings fail loudly; the syslog header cannot be split by a configured name; the beat task isolates sinks."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from audit.ledger import Actor, Subject, integrate, record
from audit.models import Entry
from integrations import tasks
from integrations.siem import services, syslog
from integrations.streams import stream_cursor
from tests.integrations.siem_receivers import HecReceiver, make_pki
from tests.settings_helpers import settings_environ, settings_module


@pytest.mark.parametrize(("environ", "message"), [
    ({"SIEM_SYSLOG_URL": "tls://siem:6514"}, "SIEM_SYSLOG_CA_FILE"),
    ({"SIEM_SYSLOG_URL": "tcp://siem:514", "SIEM_SYSLOG_CA_FILE": "ca.pem"}, "TLS only"),
    ({"SIEM_HEC_URL": "http://splunk:8088", "SIEM_HEC_TOKEN": "t"}, "https"),
    ({"SIEM_HEC_URL": "https://siem:8088"}, "SIEM_HEC_TOKEN"),
    ({"SIEM_SYSLOG_BATCH": "0"}, "SIEM_SYSLOG_BATCH"),
    ({"SIEM_INTERVAL": "soon"}, "SIEM_INTERVAL"),
])
def test_a_bad_siem_setting_stops_the_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              environ: dict[str, str], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        settings_module(monkeypatch, settings_environ(tmp_path, **environ))


@pytest.mark.parametrize("url", ["tcp://siem:514", "udp://siem:514", "tls://siem", "siem:6514", "tls://siem:6514/x"])
def test_only_a_tls_syslog_url_with_a_port_is_accepted(url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="tls://host:6514"):
        syslog.SyslogConfig.from_url(url, ca_file="ca.pem")


def _entry() -> Entry:
    return Entry(seq=3, timestamp="2026-11-29T06:41:04.123456Z", event_type="auth.login_failed", actor_type="user",
                 actor_id="1", subject_type="user", subject_id="1", payload_json='{"channel": "x"}',
                 prev_hash="0" * 64, entry_hash="f" * 64, pending_id=1, request_id='r"]\\1')


def test_a_configured_name_cannot_split_the_header_and_sd_values_are_escaped() -> None:
    config = syslog.SyslogConfig(host="h", port=1, ca_file="c", server_name="h",
                                 hostname="evil host\n<13>1 forged", app_name="a b")
    framed = syslog.frame(_entry(), config)
    length, _, message = framed.partition(b" ")
    assert int(length) == len(message)
    header = message.split(b" [", 1)[0].split(b" ")
    assert header == [b"<108>1", b"2026-11-29T06:41:04.123456Z", b"evil_host_<13>1_forged", b"a_b", b"-", b"300201"]
    assert b'request_id="r\\"\\]\\\\1"]' in message
    assert b"\n" not in message


@pytest.mark.django_db
def test_the_beat_task_isolates_a_failing_sink(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with transaction.atomic():
        record(event_type="ledger.note_added", actor=Actor.system("t"), subject=Subject("dataset", "d"),
               payload={"text": "n"})
    integrate()
    settings.SIEM_SYSLOG_URL = "tls://127.0.0.1:19151"  # nothing listens
    settings.SIEM_SYSLOG_CA_FILE = str(tmp_path / "missing-ca.pem")
    settings.SIEM_HEC_URL = ""
    services.forget_connections()
    assert tasks.siem_deliver() == {services.SYSLOG_STREAM: 0, services.HEC_STREAM: 0}
    cursor = stream_cursor(services.SYSLOG_STREAM)
    assert cursor.seq == -1 and cursor.last_error
    services.forget_connections()


def test_tls13_session_tickets_do_not_pass_for_a_closed_connection(tmp_path: Path) -> None:
    # OpenSSL servers send session tickets after the handshake: readable bytes that are not the end of the
    # connection. (HecReceiver is used only as an OpenSSL TLS server here; nothing is written to it.)
    pki = make_pki(tmp_path / "pki", server_name="siem.test")
    server = HecReceiver(pki, "t")
    try:
        conn = syslog.SyslogConnection(syslog.SyslogConfig(host="127.0.0.1", port=server.port, ca_file=str(pki.ca_file),
                                                           server_name="siem.test", timeout=3))
        conn.connect()
        sock = conn.sock
        time.sleep(0.3)
        assert conn.usable() and conn.sock is sock
        conn.close()
        assert conn.sock is None and not conn.usable()
    finally:
        server.close()
