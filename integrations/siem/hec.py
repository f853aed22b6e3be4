"""Splunk HTTP Event Collector: batched JSON events to ``/services/collector/event`` (docs/siem.md).

One POST per batch: the events concatenated (HEC's batch format, not a JSON array), each
``{"time", "host", "source", "sourcetype"[, "index"], "event": <the OCSF object>}``, with
``Authorization: Splunk <token>``. HEC answers 200 ``{"text":"Success","code":0}`` once it has received the
batch (not indexed it: indexer acknowledgement is not used, docs/siem.md); 400 with ``invalid-event-number`` N
means the N events before the bad one were taken. Anything else (403 bad token, 503 busy, a timeout) raises:
the stream keeps its cursor and tries the same batch again at the next run.

The token is sent only to the configured HTTPS URL (redirects are not followed) and never appears in an
error message or a log line.
"""
from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from audit.models import Entry
from integrations.siem.ocsf import to_ocsf

EVENT_PATH = "/services/collector/event"


class HecError(RuntimeError):
    pass


@dataclass(frozen=True)
class HecConfig:
    url: str
    token: str = field(repr=False)
    ca_file: str | None = None
    hostname: str = "governance-ledger"
    source: str = "governance-ledger"
    sourcetype: str = "ocsf"
    index: str | None = None
    timeout: float = 10.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "https" or not parts.hostname:
            # The token is a bearer secret: never over plain HTTP.
            raise ImproperlyConfigured(f"SIEM_HEC_URL must be an https:// URL, not {self.url!r}")
        if not self.token:
            raise ImproperlyConfigured("SIEM_HEC_TOKEN (or SIEM_HEC_TOKEN_FILE) is required with SIEM_HEC_URL")
        if any(c in self.token for c in "\r\n"):
            raise ImproperlyConfigured("SIEM_HEC_TOKEN must be one line")


def encode_batch(batch: Sequence[Entry], config: HecConfig) -> bytes:
    base: dict[str, Any] = {"host": config.hostname, "source": config.source, "sourcetype": config.sourcetype}
    if config.index:
        base["index"] = config.index
    lines = []
    for entry in batch:
        event = to_ocsf(entry)
        lines.append(json.dumps({"time": event["time"] / 1000, **base, "event": event}, separators=(",", ":")))
    return "\n".join(lines).encode("ascii")


class HecClient:
    """A kept-alive HTTPS connection to the collector (one per process), re-opened after any failure."""

    def __init__(self, config: HecConfig) -> None:
        self.config = config
        parts = urlsplit(config.url)
        self.host = parts.hostname or ""
        self.port = parts.port or 443
        self.path = parts.path.rstrip("/") + EVENT_PATH if not parts.path.endswith(EVENT_PATH) else parts.path
        self.conn: http.client.HTTPSConnection | None = None

    def post(self, body: bytes, count: int) -> int:
        """Send one batch of ``count`` events; how many HEC took (a prefix), or raise ``HecError``.

        A kept-alive connection the collector closed while idle fails on its next request without an answer:
        that request is sent once more on a new connection (were it taken after all, it is one of the
        documented duplicates, docs/siem.md)."""
        reused = self.conn is not None
        try:
            return self._post(body, count)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ssl.SSLEOFError,
                ssl.SSLZeroReturnError):
            if not reused:
                raise
            return self._post(body, count)

    def _post(self, body: bytes, count: int) -> int:
        if self.conn is None:
            # The context is built here, inside the delivery: a CA file that cannot be read is an error kept
            # on the stream's cursor, not one that escapes before the stream runs.
            context = ssl.create_default_context(cafile=self.config.ca_file)
            self.conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.config.timeout,
                                                    context=context)
        try:
            self.conn.request("POST", self.path, body=body, headers={
                "Authorization": f"Splunk {self.config.token}", "Content-Type": "application/json"})
            response = self.conn.getresponse()
            raw = response.read(65536)
            status = response.status
            if response.will_close:
                self.close()
        except BaseException:
            self.close()
            raise
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if status == 200 and answer.get("code", 0) == 0:
            return count
        invalid = answer.get("invalid-event-number")
        if status == 400 and isinstance(invalid, int) and 0 < invalid < count:
            return invalid
        text = str(answer.get("text", ""))[:200]
        raise HecError(f"HEC answered {status}: {text or 'no JSON body'} (code {answer.get('code', '?')})")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
