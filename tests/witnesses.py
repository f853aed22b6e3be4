"""Real witness processes for tests, on 127.0.0.1 (interface I2 of issue #14).

``start_witness(tmp_path, log_vkeys=[...])`` writes a fresh witness key, starts
``python -m audit.witness serve`` on a port the system picks, waits until it answers
``/healthz`` and returns a ``RunningWitness``. The ``witness_factory`` fixture does the
same and stops every witness it started at teardown.

Behaviours (``behaviour=``), the misbehaving ones run ``python -m tests.bad_witness`` (a
wrapper that exists only under tests/, never a flag of the shipped witness):

- ``"honest"``: the shipped witness.
- ``"wrong_key"``: advertises ``verifier_key`` but cosigns with another key (its lines carry
  that other key's ID, so a verifier that trusts the advertised key finds no cosignature).
- ``"lying_size"``: answers every well-formed add-checkpoint with 409 and a size it never
  cosigned (the request's old size + 1), so a log that follows it is sent back again and again.
- ``"slow"``: an honest witness that answers add-checkpoint and /latest after 3 seconds.

The witness processes get the environment of the tests minus ``DJANGO_SETTINGS_MODULE``:
a witness must not need the log's settings.
"""
from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.cosignature import Cosigner
from audit.witness.server import write_key
from tests.bad_witness import SLOW_SECONDS as SLOW_SECONDS  # re-exported for tests

ROOT = Path(__file__).resolve().parent.parent
BEHAVIOURS = ("honest", "wrong_key", "lying_size", "slow")
_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:(\d+))")
_counter = itertools.count(1)


def witness_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class RunningWitness:
    """A witness process. ``url`` has no trailing slash; ``restart`` keeps the port, key and state."""

    def __init__(
        self, directory: Path, *, name: str, log_vkeys: list[str], behaviour: str, extra_args: list[str] | None = None
    ) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown witness behaviour {behaviour!r} (one of {', '.join(BEHAVIOURS)})")
        self.directory = directory
        self.name = name
        self.log_vkeys = list(log_vkeys)
        self.behaviour = behaviour
        self.extra_args = list(extra_args or [])
        self.key_path = directory / "witness-key.pem"
        self.state_path = directory / "state.json"
        self.log_path = directory / "witness.log"
        key = Ed25519PrivateKey.generate()
        write_key(self.key_path, key)
        self.verifier_key = str(Cosigner.from_key(name, key.public_key()))
        self.port = 0
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._start()

    # -- process control ------------------------------------------------------------------------------

    def command(self) -> list[str]:
        module = ["-m", "audit.witness"] if self.behaviour == "honest" else ["-m", "tests.bad_witness", self.behaviour]
        args = [
            "serve", "--listen", f"127.0.0.1:{self.port}", "--name", self.name,
            "--key", str(self.key_path), "--state", str(self.state_path),
        ]
        for vkey in self.log_vkeys:
            args += ["--log", vkey]
        return [sys.executable, *module, *args, *self.extra_args]

    def _start(self, timeout: float = 15.0) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=ROOT, env=witness_env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            output = self.log_path.read_bytes()[offset:].decode(errors="replace")
            match = _LISTENING.search(output)
            if match:
                self.url, self.port = match.group(1), int(match.group(2))
                if get(self.url, "/healthz")[0] == 200:
                    return
            if self.process.poll() is not None:
                raise RuntimeError(f"witness exited with {self.process.returncode}:\n{output}")
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"witness did not start within {timeout} s:\n{self.log_path.read_text(errors='replace')}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s. Idempotent."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: no clean-up, as a crash or a power cut would leave it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self._start()

    def __enter__(self) -> RunningWitness:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- what it said ---------------------------------------------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        """The JSON events it logged (refused requests, state not saved)."""
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                events.append(json.loads(line))
        return events

    def add_checkpoint(self, body: bytes) -> tuple[int, str, bytes]:
        return post(self.url, "/add-checkpoint", body)

    def latest(self, origin: str) -> tuple[int, str, bytes]:
        return get(self.url, "/latest?origin=" + quote(origin, safe=""))


def _request(url: str, method: str, path: str, body: bytes | None, timeout: float) -> tuple[int, str, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "text/plain"} if body is not None else {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def post(url: str, path: str, body: bytes, timeout: float = 10.0) -> tuple[int, str, bytes]:
    """POST ``body``; returns (status, content type, body)."""
    return _request(url, "POST", path, body, timeout)


def get(url: str, path: str, timeout: float = 10.0) -> tuple[int, str, bytes]:
    try:
        return _request(url, "GET", path, None, timeout)
    except OSError:
        return 0, "", b""


def start_witness(
    tmp_path: Path, *, log_vkeys: list[str], name: str = "witness-1.test", behaviour: str = "honest",
    extra_args: list[str] | None = None,
) -> RunningWitness:
    directory = tmp_path / f"witness-{next(_counter)}"
    directory.mkdir(parents=True)
    return RunningWitness(directory, name=name, log_vkeys=log_vkeys, behaviour=behaviour, extra_args=extra_args)


WitnessFactory = Callable[..., RunningWitness]


@pytest.fixture
def witness_factory(tmp_path: Path) -> Iterator[WitnessFactory]:
    """``witness_factory(log_vkeys=[...], name=..., behaviour=...)`` -> a started ``RunningWitness``."""
    started: list[RunningWitness] = []

    def factory(
        *, log_vkeys: list[str], name: str = "witness-1.test", behaviour: str = "honest",
        extra_args: list[str] | None = None,
    ) -> RunningWitness:
        witness = start_witness(tmp_path, log_vkeys=log_vkeys, name=name, behaviour=behaviour, extra_args=extra_args)
        started.append(witness)
        return witness

    yield factory
    for witness in started:
        witness.stop()
