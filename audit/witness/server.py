"""The witness: the add-checkpoint rules of c2sp.org/tlog-witness, and its HTTP server.

``Witness.add_checkpoint`` is the whole decision, independent of HTTP; the handler only
frames it. Per request, in the order of the spec:

1. malformed body, or old size > checkpoint size          -> 400
2. checkpoint origin not configured (``--log``)           -> 404
3. no signature by a configured key of that origin        -> 403
4. old size != the size last cosigned (0 if none)         -> 409, ``text/x.tlog.size``, "<size>\\n"
5. same size as last cosigned but another root hash       -> 409 (the log forked: logged as evidence)
6. consistency proof old -> new does not verify           -> 422 (logged as evidence)
7. otherwise: persist the new state (fsync), then 200 with the cosignature line.

Steps 4 to 7 run under the origin's lock, so check and persist are atomic: of two racing
requests from the same state, one wins and the other gets 409; the stored size never
decreases, and two inconsistent checkpoints are never both cosigned, across restarts too
because nothing is answered before it is on disk.
"""
from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.cosignature import AddCheckpoint, Cosigner, ProtocolError, cosignature_line, split_note
from audit.merkle import EMPTY_ROOT, verify_consistency
from audit.note import CheckpointBody, NoteError, Verifier, open_note
from audit.witness.state import LogState, WitnessState

# A checkpoint with a few log signatures and cosignatures is well under 4 KiB; post-quantum
# signatures can be ~5 KB each and signed-note asks verifiers to accept 16 of them. Anything
# larger is refused before it is read.
MAX_BODY = 128 * 1024
# Each connection holds a thread; beyond this many, new connections are closed at once
# rather than letting idle or slow clients exhaust the process.
MAX_CONNECTIONS = 256
SIZE_CONTENT_TYPE = "text/x.tlog.size"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


def _text(status: int, message: str) -> Answer:
    return Answer(status, (message.rstrip("\n") + "\n").encode())


class Witness:
    """One witness identity (name + Ed25519 key) witnessing the logs of ``log_vkeys``.

    ``state`` is a ``WitnessState`` over the origins of those keys. ``events`` receives one
    dict per refused request (the server writes them to stderr as JSON lines).
    """

    def __init__(
        self,
        *,
        name: str,
        key: Ed25519PrivateKey,
        log_vkeys: list[str],
        state_path: Path,
        events: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.key = key
        self.cosigner = Cosigner.from_key(name, key.public_key())
        self.verifiers: dict[str, list[Verifier]] = {}
        for vkey in log_vkeys:
            verifier = Verifier.parse(vkey)
            self.verifiers.setdefault(verifier.name, []).append(verifier)
        self.state = WitnessState(state_path, list(self.verifiers))
        self._events = events or (lambda event: None)
        self._clock = clock

    @property
    def verifier_key(self) -> str:
        return str(self.cosigner)

    def close(self) -> None:
        self.state.close()

    # -- the protocol ------------------------------------------------------------------------------------

    def add_checkpoint(self, body: bytes) -> Answer:
        try:
            request = AddCheckpoint.parse(body)
        except ProtocolError as exc:
            return _text(exc.status, exc.message)
        checkpoint = request.checkpoint()
        verifiers = self.verifiers.get(checkpoint.origin)
        if verifiers is None:
            return _text(404, f"unknown log origin {checkpoint.origin!r}")
        try:
            open_note(request.note, verifiers)
        except NoteError as exc:
            self._refused(403, checkpoint, request, f"no trusted log signature: {exc}")
            return _text(403, f"the checkpoint is not signed by a trusted key of {checkpoint.origin!r}")
        if request.old_size > checkpoint.tree_size:
            self._refused(400, checkpoint, request, "old size larger than the checkpoint size")
            return _text(400, f"old size {request.old_size} is larger than the checkpoint size {checkpoint.tree_size}")
        if checkpoint.tree_size == 0 and checkpoint.root_hash != EMPTY_ROOT:
            self._refused(422, checkpoint, request, "empty tree with a root that is not the empty hash", evidence=True)
            return _text(422, "the root hash of an empty tree is the hash of the empty string")
        return self._check_and_cosign(request, checkpoint)

    def _check_and_cosign(self, request: AddCheckpoint, checkpoint: CheckpointBody) -> Answer:
        origin = checkpoint.origin
        with self.state.lock(origin):
            current = self.state.get(origin)
            stored_size = current.size if current else 0
            if request.old_size != stored_size:
                self._refused(409, checkpoint, request, f"old size is not the cosigned size {stored_size}")
                return self._conflict(stored_size)
            if current is not None:
                if checkpoint.tree_size == current.size:
                    if checkpoint.root_hash != current.root:
                        self._refused(409, checkpoint, request, "same size, different root: a fork", evidence=True)
                        return self._conflict(stored_size)
                    if request.proof:
                        self._refused(422, checkpoint, request, "non-empty proof between equal trees", evidence=True)
                        return _text(422, "the consistency proof between two equal trees is empty")
                elif not verify_consistency(
                    current.size, checkpoint.tree_size, current.root, checkpoint.root_hash, request.proof
                ):
                    self._refused(422, checkpoint, request, "consistency proof does not verify", evidence=True)
                    return _text(422, f"the consistency proof from size {current.size} does not verify")
            # The exact text the log signed (not re-encoded from the parsed fields): the cosignature
            # must verify on the note the log publishes.
            line = self.cosign(split_note(request.note)[0], not_before=self._last_timestamp(current))
            entry = LogState(size=checkpoint.tree_size, root=checkpoint.root_hash, note=request.note + line)
            try:
                self.state.commit(origin, entry)
            except OSError as exc:
                self._events({"event": "state_not_saved", "origin": origin, "error": str(exc)})
                return _text(500, "the witness could not save its state; nothing was cosigned")
        return Answer(200, line.encode())

    def cosign(self, checkpoint_text: str, *, not_before: int = 0) -> str:
        """The cosignature line for a checkpoint this witness has just accepted (tests override it).

        Its timestamp never goes below ``not_before`` (the previous cosignature of the log): after
        a clock step backwards, "as of T the largest tree is N" must not contradict an earlier line.
        """
        timestamp = max(int(self._clock()), not_before)
        return cosignature_line(checkpoint_text, name=self.name, key=self.key, timestamp=timestamp)

    def _last_timestamp(self, current: LogState | None) -> int:
        """The timestamp of this witness's own cosignature on the stored note (the line it appended last)."""
        if current is None:
            return 0
        last = current.note.rstrip("\n").rsplit("\n", 1)[-1]
        prefix = f"\u2014 {self.name} "
        if not last.startswith(prefix):
            return 0
        try:
            blob = base64.b64decode(last[len(prefix) :], validate=True)
        except ValueError:
            return 0
        if len(blob) != 76 or blob[:4] != self.cosigner.key_id:
            return 0  # a state written under another key: nothing to continue from
        return int.from_bytes(blob[4:12], "big")

    def _conflict(self, size: int) -> Answer:
        return Answer(409, f"{size}\n".encode(), SIZE_CONTENT_TYPE)

    def _refused(
        self, status: int, checkpoint: CheckpointBody, request: AddCheckpoint, reason: str, *, evidence: bool = False
    ) -> None:
        event: dict[str, Any] = {
            "event": "add_checkpoint_refused",
            "status": status,
            "origin": checkpoint.origin,
            "old": request.old_size,
            "size": checkpoint.tree_size,
            "reason": reason,
        }
        if evidence:
            # A signed checkpoint the log cannot disown: keep it (it may prove a fork or a rewrite).
            event["note"] = request.note
        self._events(event)

    def latest(self, origin: str) -> Answer:
        if origin not in self.verifiers:
            return _text(404, f"unknown log origin {origin!r}")
        current = self.state.get(origin)
        if current is None:
            return _text(404, f"no checkpoint of {origin!r} cosigned yet")
        return Answer(200, current.note.encode())


# -- HTTP -------------------------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ledger-witness"
    # Keep-alive connections that stay idle (or send this slowly) are closed: each holds a thread.
    timeout = 30
    # Headers and body go out as two writes; without this, Nagle + delayed ACK add ~40 ms.
    disable_nagle_algorithm = True
    server: WitnessHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # refusals are logged as events; an access log per request would cost more than the request

    def version_string(self) -> str:
        return self.server_version

    def _send(self, answer: Answer, *, close: bool = False) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.send_header("Cache-Control", "no-store")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(answer.body)

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/add-checkpoint":
            self._send(_text(404, "not found"))
            return
        if self.headers.get("Transfer-Encoding"):
            self._send(_text(411, "send the body with a Content-Length"), close=True)
            return
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isascii() or not length_header.isdigit():
            self._send(_text(411, "a Content-Length is required"), close=True)
            return
        length = int(length_header)
        if length > self.server.max_body:
            self._send(_text(413, f"the body is larger than {self.server.max_body} bytes"), close=True)
            return
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            return
        self.server.before_answer("add-checkpoint")
        self._send(self.server.witness.add_checkpoint(body))

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/healthz":
            self._send(_text(200, "ok"))
        elif url.path == "/latest":
            origins = parse_qs(url.query, keep_blank_values=True).get("origin", [])
            if len(origins) != 1:
                self._send(_text(400, "give exactly one origin: /latest?origin=<percent-encoded origin>"))
                return
            self.server.before_answer("latest")
            self._send(self.server.witness.latest(origins[0]))
        else:
            self._send(_text(404, "not found"))

    def _not_allowed(self) -> None:
        self._send(_text(405, "method not allowed"), close=True)

    do_PUT = do_DELETE = do_PATCH = _not_allowed


class WitnessHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], witness: Witness, *, max_body: int = MAX_BODY,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.witness = witness
        self.max_body = max_body
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # full: close at once, the client may retry
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def before_answer(self, endpoint: str) -> None:
        """Hook for test-only wrappers (a deliberately slow witness); the shipped witness does nothing."""


class EventLog:
    """Refused requests as JSON lines on a stream (stderr): possible evidence of log misbehaviour."""

    def __init__(self, stream: Any = None) -> None:
        self._stream = stream or sys.stderr
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        line = json.dumps({"time": int(time.time()), **event}, ensure_ascii=False)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


# -- keys -------------------------------------------------------------------------------------------------


def write_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM, mode 0600; refuses to overwrite an existing file."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key
