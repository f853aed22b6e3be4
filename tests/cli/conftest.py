"""The govern CLI against a running server: a real HTTP server on 127.0.0.1 in a thread, on the test database.

``govern_server`` (fixture) is a live Django server on ``127.0.0.1:<free port>`` with real commits
(``committing_db``: the server, the test and the CLI's requests see each other's writes; the database is
emptied afterwards), tasks run eagerly and MLflow is the fake registry. ``run_govern(*args)`` runs
``python -m govern`` as a subprocess with ``GOVERN_URL`` pointing at it and the token given, exactly as a
CI job would (nothing of the test process leaks into it but the environment we pass).

The server answers one request at a time, under ``server.lock``: an in-memory SQLite test database is one
connection shared by every thread, so the test's own database work while the CLI runs (an approver deciding
from a thread) takes the same lock instead of interleaving with a request on that connection.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.servers.basehttp import WSGIServer
from django.test import override_settings
from django.test.testcases import LiveServerThread

from access.models import ServiceAccount
from access.services.service_accounts import service_account_create
from access.services.tokens import api_token_create
from tests.live_server import serving
from tests.personas import People

ROOT = Path(__file__).resolve().parents[2]


class _SerialServer(WSGIServer):
    """Django's WSGI server answering one request at a time (no thread per request)."""

    def __init__(self, *args: Any, connections_override: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)


class _Locked:
    """The WSGI app with the shared lock held for the whole request, its body included."""

    def __init__(self, app: Any, lock: threading.Lock) -> None:
        self.app, self.lock = app, lock

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self.lock:
            result = self.app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


class _Thread(LiveServerThread):
    server_class = _SerialServer


@dataclass
class GovernServer:
    url: str
    lock: threading.Lock


@pytest.fixture
def govern_server(committing_db: None, settings: Any, fake_registry: Any, celery_eager: None,
                  tmp_path: Path) -> Iterator[GovernServer]:
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "127.0.0.1"]
    lock = threading.Lock()
    var = tmp_path / "var"
    var.mkdir()
    with override_settings(VAR_DIR=var), serving(thread_class=_Thread,
                                                handler=lambda app: _Locked(app, lock)) as server:
        yield GovernServer(url=f"http://127.0.0.1:{server.port}", lock=lock)


@pytest.fixture
def pipeline_token(people: People) -> Callable[..., str]:
    """``pipeline_token(["promotions:write"], roles=["model-owner"])``: a real token (the token service) of the
    ``pipeline`` service account, whose user gets those roles (fixture setup, not under test)."""
    counter = iter(range(1, 1000))

    def make(scopes: list[str], *, roles: tuple[str, ...] | list[str] = (), account_name: str = "pipeline") -> str:
        account = ServiceAccount.objects.filter(name=account_name).first()
        if account is None:
            account = service_account_create(actor=people.requester, name=account_name)
        for role in roles:
            account.user.groups.add(Group.objects.get(name=role))
        issued = api_token_create(actor=people.infosec, service_account=account, name=f"cli-{next(counter)}",
                                  scopes=scopes)
        return issued.plaintext

    return make


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_govern(govern_server: GovernServer) -> Callable[..., Ran]:
    """``run_govern("status", "7", token=..., stdin=..., env={...})``: ``python -m govern`` in a subprocess."""

    def run(*args: str, token: str | None, stdin: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> Ran:
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("GOVERN_", "GITHUB_", "CI_"))}
        environ.update({"GOVERN_URL": govern_server.url, "PYTHONPATH": str(ROOT), "NO_PROXY": "127.0.0.1",
                        "no_proxy": "127.0.0.1"})
        if token is not None:
            environ["GOVERN_TOKEN"] = token
        environ.update(env or {})
        done = subprocess.run([sys.executable, "-m", "govern", *args], input=stdin, capture_output=True, text=True,
                              env=environ, cwd=ROOT, timeout=timeout)
        return Ran(done.returncode, done.stdout, done.stderr)

    return run
