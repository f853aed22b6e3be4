"""RFC 5424 syslog messages over TLS (RFC 5425), octet-counted framing (RFC 6587 3.4.1), one per ledger entry.

A message: ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [SD] MSG`` where PRI is facility ``log audit`` (13)
with the severity mapped from OCSF, TIMESTAMP the entry's own time, MSGID the OCSF ``type_uid`` (event type
names can be longer than MSGID's 32 characters), SD ``[<sd-id> seq=".." entry_hash=".." event_type=".."
request_id=".."]`` and MSG the entry's OCSF object as ASCII JSON (no BOM needed: ``json.dumps`` escapes
non-ASCII). Framing: ``<byte length> SP <message>``, so a message may hold any byte, newlines included.

Delivery (docs/siem.md, "What delivered means"): syslog over TCP has no application acknowledgement, so a
batch counts as delivered once its bytes were handed to the kernel (``sendall`` returned). A daemon that dies
may lose what it had received but not yet written. Hence every NEW connection (the first one of a process, or
one after a failure or after the daemon closed the previous one) starts by sending again the last ``resend``
entries already delivered (those up to the stream's cursor), then continues after the cursor: the receiver sees
each entry at least once, in ``seq`` order within a connection, and duplicates only in that window (plus the
stream's own, integrations/streams.py); it de-duplicates by ``seq`` or ``entry_hash`` in the structured data.
"""
from __future__ import annotations

import json
import select
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from audit.models import Entry
from integrations.siem.ocsf import to_ocsf

FACILITY_LOG_AUDIT = 13
# OCSF severity_id -> syslog severity (RFC 5424 6.2.1): Informational 6, Low -> Notice 5, Medium -> Warning 4,
# High -> Error 3, Critical 2.
_SYSLOG_SEVERITY = {0: 6, 1: 6, 2: 5, 3: 4, 4: 3, 5: 2, 6: 1, 99: 5}


@dataclass(frozen=True)
class SyslogConfig:
    host: str
    port: int
    ca_file: str
    server_name: str
    cert_file: str | None = None
    key_file: str | None = None
    hostname: str = "-"
    app_name: str = "governance-ledger"
    sd_id: str = "ledger@32473"
    timeout: float = 10.0
    resend: int = 1000

    @classmethod
    def from_url(cls, url: str, **kwargs: object) -> SyslogConfig:
        parts = urlsplit(url)
        if parts.scheme != "tls" or not parts.hostname or not parts.port or parts.path not in ("", "/"):
            raise ImproperlyConfigured(f"SIEM_SYSLOG_URL must look like tls://host:6514, not {url!r}")
        server_name = str(kwargs.pop("server_name", "") or parts.hostname)
        return cls(host=parts.hostname, port=parts.port, server_name=server_name, **kwargs)  # type: ignore[arg-type]


def _sd_value(value: str) -> str:
    # RFC 5424 6.3.3: '"', '\' and ']' are escaped inside PARAM-VALUE.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _header_token(value: str, limit: int) -> str:
    # HOSTNAME/APP-NAME are PRINTUSASCII without spaces; anything else becomes '_' (a header injection
    # through a configured name cannot split or forge a message).
    cleaned = "".join(c if 33 <= ord(c) <= 126 else "_" for c in value)[:limit]
    return cleaned or "-"


def frame(entry: Entry, config: SyslogConfig) -> bytes:
    """One octet-counted RFC 5424 message for ``entry``."""
    event = to_ocsf(entry)
    pri = FACILITY_LOG_AUDIT * 8 + _SYSLOG_SEVERITY.get(event["severity_id"], 5)
    sd = (f'[{config.sd_id} seq="{entry.seq}" entry_hash="{entry.entry_hash}" '
          f'event_type="{_sd_value(entry.event_type)}"')
    if entry.request_id:
        sd += f' request_id="{_sd_value(entry.request_id)}"'
    sd += "]"
    msg = (f"<{pri}>1 {entry.timestamp} {_header_token(config.hostname, 255)} "
           f"{_header_token(config.app_name, 48)} - {event['type_uid']} {sd} "
           f"{json.dumps(event, separators=(',', ':'))}").encode("ascii")
    return b"%d %s" % (len(msg), msg)


class SyslogConnection:
    """One persistent TLS connection to the daemon, re-opened after a failure (one per process and sink)."""

    def __init__(self, config: SyslogConfig) -> None:
        self.config = config
        self.sock: ssl.SSLSocket | None = None

    def _context(self) -> ssl.SSLContext:
        # Built at each connect, inside the delivery: an unreadable CA file is then an error kept on the
        # stream's cursor (console, metrics), and a renewed CA or client certificate is picked up.
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.config.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.config.cert_file:
            context.load_cert_chain(self.config.cert_file, self.config.key_file)
        return context

    def usable(self) -> bool:
        """Whether the open connection can carry the next batch. A syslog server sends no application data,
        so when the socket is readable it holds either TLS records of the handshake's aftermath (TLS 1.3
        session tickets: consumed here) or the end of the connection (EOF, close_notify, a reset): the daemon
        went away and may have lost what we sent last."""
        if self.sock is None:
            return False
        if not self._drain():
            self.close()
            return False
        return True

    def _drain(self) -> bool:
        """Read whatever the peer sent without blocking; False when the connection is over."""
        assert self.sock is not None
        try:
            while select.select([self.sock], [], [], 0)[0] or self.sock.pending():
                self.sock.setblocking(False)
                try:
                    if not self.sock.recv(65536):
                        return False
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    return True
                finally:
                    self.sock.settimeout(self.config.timeout)
        except (OSError, ValueError):
            return False
        return True

    def connect(self) -> None:
        context = self._context()
        raw = socket.create_connection((self.config.host, self.config.port), timeout=self.config.timeout)
        try:
            self.sock = context.wrap_socket(raw, server_hostname=self.config.server_name)
        except BaseException:
            raw.close()
            raise

    def send(self, data: bytes) -> None:
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        try:
            self.sock.sendall(data)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the connection. Unread bytes (session tickets) are read first: closing a socket with unread
        data makes the kernel send a reset, which could make the daemon drop what it has not read yet."""
        if self.sock is not None:
            try:
                if self._drain():
                    self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


def encode_batch(batch: Sequence[Entry], config: SyslogConfig) -> bytes:
    return b"".join([frame(entry, config) for entry in batch])
