"""The SIEM syslog sink against a real daemon: Debian's rsyslog with a TLS (gtls) input on 127.0.0.1.

rsyslog parses each octet-counted RFC 5424 message and writes its fields to a file, so these tests check what a
real receiver understood, not what we meant to send."""
from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import transaction

from audit.ledger import Actor, Subject, integrate, record
from audit.models import Entry
from integrations.siem import services
from integrations.streams import stream_cursor
from tests.integrations.siem_receivers import GTLS, RSYSLOGD, Pki, Rsyslog, make_pki, parse_line

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(RSYSLOGD is None or not GTLS,
                       reason="needs Debian's rsyslog and rsyslog-gnutls (apt-get install rsyslog rsyslog-gnutls)"),
]

def _free_port() -> int:
    # A port of our own per test (xdist runs tests of this module side by side); kept across the daemon's
    # restarts within the test.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


RESEND = 60


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def port() -> int:
    return _free_port()


@pytest.fixture
def rsyslog(tmp_path: Path, pki: Pki, port: int) -> Iterator[Rsyslog]:
    daemon = Rsyslog(tmp_path / "rsyslog", port, pki)
    daemon.start()
    yield daemon
    daemon.stop()


@pytest.fixture(autouse=True)
def sink(settings, pki: Pki, port: int) -> Iterator[None]:  # type: ignore[no-untyped-def]
    settings.SIEM_SYSLOG_URL = f"tls://127.0.0.1:{port}"
    settings.SIEM_SYSLOG_SERVER_NAME = "siem.test"
    settings.SIEM_SYSLOG_CA_FILE = str(pki.ca_file)
    settings.SIEM_SYSLOG_RESEND = RESEND
    settings.SIEM_TIMEOUT = 3.0
    services.forget_connections()
    yield
    services.forget_connections()


def _notes(n: int, start: int = 0) -> list[int]:
    with transaction.atomic():
        for i in range(start, start + n):
            record(event_type="ledger.note_added", actor=Actor.system("test"),
                   subject=Subject("registered_model", "fraud"),
                   payload={"text": f"note {i} with \"quotes\", a ] and a\nnewline", "reference": f"T-{i}"},
                   request_id=f"req-{i}")
    integrate()
    return list(Entry.objects.order_by("seq").values_list("seq", flat=True))


def _drain(batch_size: int = 1000) -> int:
    total = 0
    while (result := services.syslog_deliver(batch_size=batch_size)) is not None and result.count:
        total += result.count
    return total


def _seqs(daemon: Rsyslog, until: int | None = None, timeout: float = 20.0) -> list[int]:
    """The seqs the daemon wrote, once ``until`` is among them (or after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        seqs = [parse_line(line)["msg"]["metadata"]["sequence"] for line in daemon.lines()]
        if until is None or until in seqs or time.monotonic() > deadline:
            return seqs
        time.sleep(0.05)


def test_entries_arrive_as_rfc5424_with_the_ocsf_json(rsyslog: Rsyslog) -> None:
    seqs = _notes(5)
    assert _drain() == 5
    lines = rsyslog.wait_for(5)
    assert len(lines) == 5
    records = [parse_line(line) for line in lines]
    entries = {e.seq: e for e in Entry.objects.all()}
    for rec, seq in zip(records, seqs, strict=True):
        entry = entries[seq]
        assert rec["pri"] == str(13 * 8 + 6)  # log audit, informational
        assert rec["protocol-version"] == "1"
        assert rec["hostname"] == "governance-ledger"
        assert rec["app-name"] == "governance-ledger"
        assert rec["procid"] == "-"
        assert rec["msgid"] == "300403"  # Entity Management: Update
        assert rec["timereported"].startswith(entry.timestamp[:19])
        assert rec["structured-data"] == (
            f'[ledger@32473 seq="{seq}" entry_hash="{entry.entry_hash}" event_type="ledger.note_added" '
            f'request_id="req-{seq}"]')
        msg = rec["msg"]
        assert (msg["class_uid"], msg["category_uid"], msg["activity_id"]) == (3004, 3, 3)
        assert msg["metadata"]["uid"] == entry.entry_hash
        assert msg["metadata"]["correlation_uid"] == f"req-{seq}"
        # The payload survives the framing intact, newline, quotes and bracket included.
        assert msg["unmapped"]["payload"] == json.loads(entry.payload_json)
        assert "\n" in msg["unmapped"]["payload"]["text"]
    assert stream_cursor(services.SYSLOG_STREAM).seq == seqs[-1]


def test_the_connection_is_kept_across_batches(rsyslog: Rsyslog) -> None:
    _notes(6)
    assert services.syslog_deliver(batch_size=3).count == 3  # type: ignore[union-attr]
    conn = next(iter(services._syslog_connections.values()))
    sock = conn.sock
    assert services.syslog_deliver(batch_size=3).count == 3  # type: ignore[union-attr]
    assert conn.sock is sock
    assert len(rsyslog.wait_for(6)) == 6


def test_a_daemon_signed_by_another_ca_is_refused(rsyslog: Rsyslog, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _notes(2)
    settings.SIEM_SYSLOG_CA_FILE = str(make_pki(tmp_path / "other", prefix="other-").ca_file)
    with pytest.raises(ssl.SSLCertVerificationError):
        services.syslog_deliver()
    cursor = stream_cursor(services.SYSLOG_STREAM)
    assert cursor.seq == -1 and "SSLCertVerificationError" in cursor.last_error
    assert rsyslog.lines() == []


def test_a_daemon_whose_certificate_names_another_host_is_refused(rsyslog: Rsyslog, settings) -> None:  # type: ignore[no-untyped-def]
    _notes(1)
    settings.SIEM_SYSLOG_SERVER_NAME = "not-the-siem.test"
    with pytest.raises(ssl.SSLCertVerificationError, match=r"match|mismatch"):
        services.syslog_deliver()
    assert stream_cursor(services.SYSLOG_STREAM).seq == -1


def _check_order(received: list[int], expected: list[int]) -> list[int]:
    """Every expected seq arrived; the stream only ever steps +1, or back by less than RESEND entries where a
    new connection re-sent its window. Returns the positions of those steps back."""
    assert set(received) == set(expected), f"missing: {sorted(set(expected) - set(received))}"
    position = {seq: i for i, seq in enumerate(expected)}
    steps_back = []
    for i in range(1, len(received)):
        step = position[received[i]] - position[received[i - 1]]
        if step != 1:
            assert -RESEND < step <= 0, f"seq {received[i - 1]} then {received[i]}"
            steps_back.append(i)
    assert received[0] == expected[0]
    return steps_back


def test_the_daemon_killed_mid_stream_and_restarted_loses_nothing(rsyslog: Rsyslog) -> None:
    expected = _notes(40)
    assert services.syslog_deliver(batch_size=20).count == 20  # type: ignore[union-attr]
    # The first batch is written before the kill, so the window re-sent by the new connection must show up as a
    # duplicate run below (when the daemon loses what it had not written, the re-send fills the gap instead:
    # test_killed_between_batches_the_lost_tail_is_re_sent_without_new_entries). Waiting makes this one
    # deterministic: killing right after the hand-over raced the daemon's write.
    assert len(rsyslog.wait_for(20)) == 20
    rsyslog.kill()
    expected = _notes(40, start=40)
    # While it is down deliveries fail (or are written into a dead socket) and the cursor keeps what failed.
    for _ in range(3):
        try:
            services.syslog_deliver(batch_size=20)
        except OSError:
            pass
    rsyslog.start()
    _drain(batch_size=20)
    received = _seqs(rsyslog, until=expected[-1])
    steps_back = _check_order(received, expected)
    assert steps_back, "the new connection re-sends its window: at least one documented duplicate run"
    assert stream_cursor(services.SYSLOG_STREAM).seq == expected[-1]


def test_killed_between_batches_the_lost_tail_is_re_sent_without_new_entries(rsyslog: Rsyslog) -> None:
    expected = _notes(30)
    _drain(batch_size=10)
    assert len(rsyslog.wait_for(30)) == 30
    rsyslog.kill()
    rsyslog.out.unlink()  # as if the daemon had lost all of it
    rsyslog.start()
    # No new entry: the dead connection is noticed before the next round and the window goes again.
    _drain()
    assert _seqs(rsyslog, until=expected[-1]) == expected


def test_delivery_resumes_from_the_cursor_after_our_process_restarts(rsyslog: Rsyslog) -> None:
    first = _notes(100)
    _drain(batch_size=25)
    assert len(rsyslog.wait_for(100)) == 100
    services.forget_connections()  # what a worker restart leaves: the cursor in the database, no connection
    everything = _notes(10, start=100)
    _drain()
    received = _seqs(rsyslog, until=everything[-1])
    # The new process re-sends the last RESEND delivered entries, then continues after the cursor.
    assert received == first + first[-RESEND:] + everything[100:]
