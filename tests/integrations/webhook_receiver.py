"""A real webhook receiver for the tests: an HTTP server (stdlib ``http.server``) on 127.0.0.1 in a thread.

It verifies every request with the Standard Webhooks reference implementation
(``standardwebhooks.Webhook(secret).verify``) and keeps, per delivery, the ``webhook-id``, whether the
signature verified, the parsed body and the raw headers. ``mode`` decides the answer: ``"ok"`` (204),
``"fail"`` (500), ``"slow"`` (204 after ``delay`` seconds),
``"redirect"`` (302 to ``redirect_to``). ``stop()`` closes the port (connection refused);
``start()`` opens the same port again. ``tls`` (a server ``SSLContext``) serves https.
"""
from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Delivery:
    webhook_id: str
    verified: bool
    body: dict[str, Any]
    headers: dict[str, str]
    raw: bytes
    path: str


@dataclass
class Receiver:
    secret: str = ""
    mode: str = "ok"
    redirect_to: str = ""
    port: int = 0
    delay: float = 0.0  # mode "slow": answer 204 after this many seconds
    tls: ssl.SSLContext | None = None  # serve https with this server context
    deliveries: list[Delivery] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    Webhook(receiver.secret).verify(raw, headers)
                    verified = True
                except WebhookVerificationError:
                    verified = False
                receiver.deliveries.append(Delivery(headers.get("webhook-id", ""), verified, json.loads(raw),
                                                    headers, raw, self.path))
                if receiver.mode == "slow":
                    time.sleep(receiver.delay)
                if receiver.mode == "fail":
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b"receiver broken " * 100)
                elif receiver.mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", receiver.redirect_to)
                    self.end_headers()
                else:
                    self.send_response(204)
                    self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def ids(self) -> list[str]:
        return [d.webhook_id for d in self.deliveries]

    def seqs(self) -> list[int]:
        return [d.body["data"]["entry"]["seq"] for d in self.deliveries]
