"""Helpers of the operations tests: a few recorded ledger entries, a redis-server of the test's own."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from audit import ledger
from audit.ledger import Actor, Subject

SYSTEM = Actor.system("tests")


def notes(n: int, *, prefix: str = "note") -> None:
    """Record ``n`` notes over three subjects and integrate them."""
    for i in range(n):
        ledger.record(event_type="ledger.note_added", actor=SYSTEM, subject=Subject("model", f"m{i % 3}"),
                      payload={"text": f"{prefix} {i}"})
    ledger.integrate()


def register(user_id: int, *, email: str = "someone@example.org") -> None:
    """Record an ``auth.user_registered`` entry: personal data of data subject ``user:<id>``."""
    ledger.record(event_type="auth.user_registered", actor=SYSTEM, subject=Subject("user", str(user_id)),
                  payload={"username": f"u{user_id}", "email": email})


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (just now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server of the test's own on a free port, so an outage can be made without touching the shared one.

    ``start()``; ``kill()`` (SIGKILL: an outage, not a shutdown) or ``stop()`` (a shutdown); ``start()`` again
    comes back on the same port. ``workdir`` is its ``--dir`` (the current directory when None)."""

    def __init__(self, workdir: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        if self.workdir is not None:
            argv += ["--dir", str(self.workdir)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise AssertionError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@contextmanager
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
