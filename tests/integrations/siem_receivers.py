"""Real receivers for the SIEM tests: a CA and server certificates, Debian's rsyslog with a TLS input, and a
Splunk HTTP Event Collector stand-in (no real Splunk, nor any HEC-compatible receiver, installs here: Vector,
Fluent Bit and the OpenTelemetry Collector are in neither Debian nor PyPI, so the HEC receiver is a small
stdlib HTTPS server implementing HEC's documented answers)."""
from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

RSYSLOGD = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None)
GTLS = any(Path(d, "lmnsd_gtls.so").exists() for d in ("/usr/lib/x86_64-linux-gnu/rsyslog",
                                                      "/usr/lib/aarch64-linux-gnu/rsyslog", "/usr/lib/rsyslog"))


@dataclass
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(directory: Path, *, prefix: str = "", server_name: str = "siem.test") -> Pki:
    """A CA and a server certificate for ``server_name`` and 127.0.0.1 (EC P-256, valid one day)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name(f"{prefix}test CA")).issuer_name(_name(f"{prefix}test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(server_name)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(server_name),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory / f"{prefix}ca.pem", directory / f"{prefix}server.pem", directory / f"{prefix}server.key")
    pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return pki


# What rsyslog writes per message: the RFC 5424 fields as its parser understood them, then the MSG (JSON).
_FIELDS = ("pri", "protocol-version", "timereported:::date-rfc3339", "hostname", "app-name", "procid", "msgid",
           "structured-data")
RSYSLOG_CONF = """
global(workDirectory="{work}" maxMessageSize="256k"
       defaultNetstreamDriverCAFile="{ca}" defaultNetstreamDriverCertFile="{cert}"
       defaultNetstreamDriverKeyFile="{key}")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon"
       maxSessions="50")
input(type="imtcp" port="{port}" address="127.0.0.1")
template(name="fields" type="list") {{
{props}
  property(name="msg" droplastlf="on")
  constant(value="\\n")
}}
action(type="omfile" file="{out}" template="fields" flushOnTXEnd="on" asyncWriting="off")
"""


@dataclass
class Rsyslog:
    """Debian's rsyslogd on 127.0.0.1:``port`` with a TLS (gtls) input, writing each message to ``out``."""

    directory: Path
    port: int
    pki: Pki
    out: Path = field(init=False)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.out = self.directory / "received.log"
        work = self.directory / "work"
        work.mkdir(parents=True, exist_ok=True)
        props = "\n".join(f'  property(name="{p.split(":")[0]}"{self._fmt(p)})\n  constant(value="\\t")'
                          for p in _FIELDS)
        self.conf = self.directory / "rsyslog.conf"
        self.conf.write_text(RSYSLOG_CONF.format(work=work, ca=self.pki.ca_file, cert=self.pki.cert_file,
                                                 key=self.pki.key_file, port=self.port, out=self.out, props=props))

    @staticmethod
    def _fmt(prop: str) -> str:
        return ' dateFormat="rfc3339"' if prop.startswith("timereported") else ""

    def start(self) -> None:
        assert RSYSLOGD is not None
        self.process = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.directory / "rsyslogd.pid")],
            stdout=subprocess.DEVNULL, stderr=open(self.directory / "rsyslogd.err", "ab"))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("rsyslogd exited: " + (self.directory / "rsyslogd.err").read_text()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("rsyslogd did not listen in 15 s")

    def kill(self) -> None:
        """SIGKILL: whatever rsyslog received but had not written is lost, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def lines(self) -> list[str]:
        """The complete lines written so far (a line rsyslog is still writing is left for the next read)."""
        text = self.out.read_text() if self.out.exists() else ""
        return text[: text.rfind("\n") + 1].splitlines()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.lines()
            if len(lines) >= count:
                return lines
            time.sleep(0.05)
        return self.lines()


def parse_line(line: str) -> dict[str, Any]:
    values = line.split("\t", len(_FIELDS))
    record = dict(zip([p.split(":")[0] for p in _FIELDS], values[:-1], strict=True))
    record["msg"] = json.loads(values[-1])
    return record


# --- Splunk HTTP Event Collector stand-in (a mock: no real HEC receiver can run here) ------------------------
class HecReceiver:
    """HTTPS on 127.0.0.1, ``POST /services/collector/event`` with ``Authorization: Splunk <token>``; answers as
    HEC documents: 200 ``{"text":"Success","code":0}``, 401 no token (code 2), 403 bad token (code 4), 400 invalid
    data (code 6 with ``invalid-event-number``), 503 server busy (code 9) while ``busy`` is set."""

    def __init__(self, pki: Pki, token: str) -> None:
        self.token = token
        self.events: list[dict[str, Any]] = []
        self.requests: list[dict[str, str]] = []
        self.busy = False
        self.connections: list[socket.socket] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                receiver.connections.append(self.connection)

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append({k.lower(): v for k, v in self.headers.items()})
                if self.path != "/services/collector/event":
                    self._answer(404, {"text": "The requested URL was not found on this server.", "code": 404})
                    return
                auth = self.headers.get("Authorization", "")
                if not auth:
                    self._answer(401, {"text": "Token is required", "code": 2})
                    return
                if auth != f"Splunk {receiver.token}":
                    self._answer(403, {"text": "Invalid token", "code": 4})
                    return
                if receiver.busy:
                    self._answer(503, {"text": "Server is busy", "code": 9})
                    return
                decoder = json.JSONDecoder()
                text, pos, batch = body.decode(), 0, []
                while pos < len(text):
                    while pos < len(text) and text[pos].isspace():
                        pos += 1
                    if pos >= len(text):
                        break
                    try:
                        event, pos = decoder.raw_decode(text, pos)
                    except ValueError:
                        event = None
                    if not isinstance(event, dict) or "event" not in event:
                        receiver.events.extend(batch)
                        self._answer(400, {"text": "Invalid data format", "code": 6,
                                           "invalid-event-number": len(batch)})
                        return
                    batch.append(event)
                receiver.events.extend(batch)
                self._answer(200, {"text": "Success", "code": 0})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pki.cert_file, pki.key_file)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def drop_idle_connections(self) -> None:
        """Close every kept-alive connection from the server's side, as a collector's idle timeout does."""
        for conn in self.connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.connections.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
