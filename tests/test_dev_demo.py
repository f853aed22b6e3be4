"""The README's first command, ``python3.11 dev.py demo``, end to end in a process of its own.

It serves the console on the port asked for, and stopping it (SIGTERM, or Ctrl-C's SIGINT) stops
everything it started: the server with its autoreloader child, and the demo witness. Runs on a
database, MLflow store and keys of its own (VAR_DIR in a temporary folder).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.idp import launch
from tests.ops.helpers import free_port
from tests.settings_helpers import ROOT

STAMP = ROOT / ".venv" / ".installed-pyproject-sha256"


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (read from /proc, so a process re-parented to init is not missed
    while it is still a child when we look)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _serve_then_stop(var_dir: Path, stop_with: signal.Signals, *options: str,
                     while_running: Callable[[int, str], None] | None = None) -> str:
    """Run ``dev.py demo --port N [options]`` on ``var_dir`` until the console answers, call
    ``while_running(port, output so far)``, stop it with ``stop_with``, and check that it exits 0 leaving
    nothing running and the port free. Returns its output."""
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DATABASE_URL", "CELERY_", "PYTEST", "DJANGO_SETTINGS"))}
    env.update(VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1", DJANGO_ALLOW_ASYNC_UNSAFE="")
    with (var_dir / f"demo-{stop_with.name}.log").open("w+") as log:
        demo = subprocess.Popen([sys.executable, "dev.py", "demo", "--port", str(port), *options], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 240
            page = None
            while time.monotonic() < deadline and demo.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/console/login/", timeout=5) as response:
                        page = response.read().decode()
                        break
                except OSError:
                    time.sleep(0.5)
            log.seek(0)
            output = log.read()
            assert page is not None, f"no console on port {port}:\n{output[-3000:]}"
            assert "Sign in" in page or "sign in" in page
            assert f"http://127.0.0.1:{port}/console/" in output  # the printed address is the one served
            started = _descendants(demo.pid)
            assert len(started) >= 2, output[-2000:]  # the server (and its reloader child) and the witness
            if while_running is not None:
                while_running(port, output)

            demo.send_signal(stop_with)
            assert demo.wait(30) == 0

            # then: nothing it started is left, and the port is free again
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and any(_alive(pid) for pid in started):
                time.sleep(0.2)
            assert not [pid for pid in started if _alive(pid)]
            with pytest.raises(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/console/login/", timeout=2)
            return output
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait()
            for pid in _descendants(demo.pid):
                os.kill(pid, signal.SIGKILL)


def _signs_in_at_the_demo_idp(issuer: str) -> Callable[[int, str], None]:
    """A check, while ``dev.py demo --sso`` runs, that its IdP answers discovery and knows the demo's
    console as its client: a demo person signs in with password and code and is sent back to this demo's
    callback (the token exchange is the console's, with the secret made for the run)."""

    def check(port: int, output: str) -> None:
        discovery = json.load(urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration", timeout=10))
        assert discovery["issuer"] == issuer
        verifier = "v" * 64
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        callback = f"http://127.0.0.1:{port}/console/sso/callback/"
        authorization = discovery["authorization_endpoint"] + "?" + urllib.parse.urlencode({
            "response_type": "code", "client_id": launch.CLIENT_ID, "redirect_uri": callback, "scope": "openid",
            "state": "s1", "nonce": "n1", "code_challenge": challenge, "code_challenge_method": "S256",
            "acr_values": launch.ACR_2FA})
        browser = launch.IdentityProvider.at(issuer).browser()
        back = browser.sign_in(authorization, "priya", password="governance-demo", otp="123456")
        assert back.startswith(callback + "?") and "code=" in back and "state=s1" in back

    return check


@pytest.mark.skipif(not STAMP.exists() or Path(sys.executable).parent.parent != ROOT / ".venv",
                    reason="needs the .venv that dev.py set up (python3.11 dev.py setup)")
def test_dev_demo_serves_on_the_port_asked_and_stops_everything(tmp_path: Path) -> None:
    # A fresh demo (migrated and seeded here), stopped as a service manager stops it...
    first = _serve_then_stop(tmp_path, signal.SIGTERM)
    assert "demo data loaded" in first
    # ...then started again on the same data (nothing to seed), with single sign-on where Node is here
    # (--sso: the test OpenID provider, which must stop with the demo too), and stopped with Ctrl-C.
    if not launch.node_available():
        again = _serve_then_stop(tmp_path, signal.SIGINT)
        assert "demo data already present" in again
        return
    issuer = f"http://127.0.0.1:{free_port()}"
    again = _serve_then_stop(tmp_path, signal.SIGINT, "--sso", "--idp-port", issuer.rsplit(":", 1)[1],
                             while_running=_signs_in_at_the_demo_idp(issuer))
    assert "demo data already present" in again
    assert f"test OpenID provider at {issuer}" in again
    assert "priya     governance-demo   123456" in again  # the sign-in table
    with pytest.raises(OSError):  # stopped with the demo
        urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration", timeout=2)


@pytest.mark.skipif(not STAMP.exists() or Path(sys.executable).parent.parent != ROOT / ".venv",
                    reason="needs the .venv that dev.py set up (python3.11 dev.py setup)")
@pytest.mark.parametrize("port", ["0", "65536", "eighty"])
def test_a_bad_port_is_refused_before_anything_starts(tmp_path: Path, port: str) -> None:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DATABASE_URL", "CELERY_", "PYTEST", "DJANGO_SETTINGS"))}
    env["VAR_DIR"] = str(tmp_path)
    result = subprocess.run([sys.executable, "dev.py", "demo", "--port", port], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--port" in result.stderr
    assert not (tmp_path / "governance.sqlite3").exists()  # nothing migrated, nothing seeded, nothing served


@pytest.mark.skipif(not STAMP.exists() or Path(sys.executable).parent.parent != ROOT / ".venv",
                    reason="needs the .venv that dev.py set up (python3.11 dev.py setup)")
def test_a_bad_idp_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DATABASE_URL", "CELERY_", "PYTEST", "DJANGO_SETTINGS"))}
    env["VAR_DIR"] = str(tmp_path)
    result = subprocess.run([sys.executable, "dev.py", "demo", "--sso", "--port", "8000", "--idp-port", "8000"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--idp-port" in result.stderr
    assert not (tmp_path / "governance.sqlite3").exists()
