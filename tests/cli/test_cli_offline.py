"""``govern`` in-process: argument and configuration errors, the token's secrecy, redirects, the digest.

No Django server here: where a server is needed it is a bare ``http.server`` on 127.0.0.1 (the attacks on
the client: a redirect that would carry the token elsewhere).
"""
from __future__ import annotations

import http.server
import io
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from govern import exits
from govern.cli import main, promotion_outcome
from governance import artifact_digest
from tests.governance.mlflow_helpers import reference_digest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "mlg_secret_value_0123456789"


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[int, str, str]:
    for name in ("GOVERN_URL", "GOVERN_TOKEN", "GOVERN_TOKEN_FILE", "GOVERN_CA_FILE", "GITHUB_RUN_ID",
                 "CI_PIPELINE_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv", [
    ["promote", "fraud-detector", "2", "staging"],  # no --reason
    ["promote", "fraud-detector", "0", "staging", "--reason", "x"],
    ["promote", "fraud-detector", "two", "staging", "--reason", "x"],
    ["promote", "m", "1", "staging", "--reason", "x", "--strategy", "big-bang"],
    ["promote", "m", "1", "staging", "--reason", "x", "--strategy", "canary", "--canary-steps", "10,500"],
    ["promote", "m", "1", "staging", "--reason", "x", "--wait", "--timeout", "-1"],
    ["rollout", "progress", "7", "--status", "half-done"],
    ["rollout", "progress", "7", "--status", "step", "--percent", "101"],
    ["status"],
    ["frobnicate"],
])
def test_bad_arguments_exit_2_before_anything_is_sent(argv: list[str], monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # GOVERN_URL points nowhere reachable: exit 2 shows nothing was attempted (that would be exit 5).
    code, _, _ = run(argv, monkeypatch, GOVERN_URL="http://127.0.0.1:9", GOVERN_TOKEN=TOKEN)
    assert code == exits.USAGE
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["status", "7", "--token", TOKEN],
    ["status", "7", f"--token={TOKEN}"],
    ["--token", TOKEN, "status", "7"],
    ["status", "7", "--token-fil", TOKEN],  # no abbreviations: a prefix never becomes --token-file
])
def test_a_token_on_the_command_line_is_refused_without_being_echoed(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(argv, monkeypatch, GOVERN_URL="http://127.0.0.1:9")
    captured = capsys.readouterr()
    assert code == exits.USAGE
    if "--token-fil" not in argv:
        assert "there is no --token option" in err
    assert TOKEN not in out + err + captured.out + captured.err


def test_canary_steps_need_the_canary_strategy(monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run(["promote", "m", "1", "staging", "--reason", "x", "--canary-steps", "10,100"], monkeypatch,
                       GOVERN_URL="http://127.0.0.1:9", GOVERN_TOKEN=TOKEN)
    assert code == exits.USAGE and "--canary-steps only goes with --strategy canary" in err


@pytest.mark.parametrize(("url", "message"), [
    ("http://governance.internal", "plain http://"),
    ("http://10.0.0.8:8000", "plain http://"),
    ("ftp://governance.internal", "must be an https:// URL"),
    ("https://user:pw@governance.internal", "must not carry credentials"),
    ("https://governance.internal/?next=x", "query or fragment"),
    ("", "no server"),
])
def test_urls_the_token_must_not_go_to_are_refused(url: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run(["status", "7"], monkeypatch, GOVERN_URL=url, GOVERN_TOKEN=TOKEN)
    assert code == exits.USAGE and message in err
    assert TOKEN not in err


def test_the_token_is_never_printed_even_when_malformed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "token"
    bad.write_text(f"Bearer {TOKEN}\n")
    code, out, err = run(["status", "7", "--token-file", str(bad)], monkeypatch, GOVERN_URL="https://g.internal")
    assert code == exits.USAGE and "does not hold one API token" in err and "it is not shown" in err
    assert TOKEN not in out + err
    code, out, err = run(["status", "7"], monkeypatch, GOVERN_URL="https://g.internal")
    assert code == exits.USAGE and "no API token" in err
    code, _, err = run(["status", "7"], monkeypatch, GOVERN_URL="https://g.internal",
                       GOVERN_TOKEN_FILE=str(tmp_path / "missing"))
    assert code == exits.USAGE and "cannot read the token file" in err


def test_an_unreachable_server_is_exit_5_after_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("govern.client.time.sleep", lambda s: None)
    monkeypatch.setattr("govern.client.MAX_RETRY_AFTER", 0.0)
    code, _, err = run(["status", "7"], monkeypatch, GOVERN_URL="http://127.0.0.1:9", GOVERN_TOKEN=TOKEN)
    assert code == exits.UNAVAILABLE and "cannot reach http://127.0.0.1:9" in err
    assert err.count("retrying GET /promotions/7") == 3


# --- a redirect must not carry the token elsewhere --------------------------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []
    redirect_to = ""

    def do_GET(self) -> None:
        type(self).seen.append(dict(self.headers))
        if self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.end_headers()
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> tuple[http.server.HTTPServer, str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def redirecting() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A server that redirects every request to a second one, which records what reaches it."""
    elsewhere_seen: list[dict[str, str]] = []
    elsewhere_handler = type("Elsewhere", (_Recorder,), {"seen": elsewhere_seen, "redirect_to": ""})
    elsewhere, elsewhere_url = _serve(elsewhere_handler)
    front_handler = type("Front", (_Recorder,), {"seen": [], "redirect_to": elsewhere_url + "/steal"})
    front, front_url = _serve(front_handler)
    try:
        yield front_url, elsewhere_seen
    finally:
        for server in (front, elsewhere):
            server.shutdown()
            server.server_close()


def test_a_redirect_is_not_followed_so_the_token_goes_nowhere_else(
    redirecting: tuple[str, list[dict[str, str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    front_url, elsewhere_seen = redirecting
    code, _, err = run(["status", "7"], monkeypatch, GOVERN_URL=front_url, GOVERN_TOKEN=TOKEN)
    assert code == exits.UNAVAILABLE
    assert "redirecting to" in err and "not followed" in err
    assert elsewhere_seen == []  # nothing at all reached the other server
    assert TOKEN not in err


# --- outcomes, digest ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("state", "strategy", "until", "expected"), [
    ("pending", "full", "deployed", None),
    ("approved", "full", "deployed", None),
    ("approved", "full", "approved", 0),
    ("deploying", "full", "deployed", None),
    ("deploying", "canary", "deployed", 0),
    ("deploying", "shadow", "deployed", 0),
    ("deployed", "full", "deployed", 0),
    ("rejected", "full", "deployed", 10),
    ("changes_requested", "full", "deployed", 11),
    ("withdrawn", "full", "approved", 11),
    ("expired", "full", "deployed", 11),
    ("failed", "canary", "deployed", 12),
    ("rolled_back", "full", "deployed", 12),
])
def test_each_promotion_state_settles_the_exit_status_it_documents(state: str, strategy: str, until: str,
                                                                   expected: int | None) -> None:
    assert promotion_outcome({"state": state, "strategy": strategy}, until) == expected


@pytest.fixture(scope="module")
def mlflow_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real MLflow model directory (``mlflow.pyfunc.save_model``: MLmodel, the pickled model, environments)."""
    import mlflow.pyfunc

    class Doubler(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return model_input * 2

    path = tmp_path_factory.mktemp("mlflow-model") / "model"
    mlflow.pyfunc.save_model(str(path), python_model=Doubler(), pip_requirements=["mlflow"])
    return path


def test_govern_digest_is_the_servers_digest_of_a_real_mlflow_model(mlflow_model_dir: Path) -> None:
    assert (mlflow_model_dir / "MLmodel").is_file()
    ran = subprocess.run([sys.executable, "-m", "govern", "digest", str(mlflow_model_dir)], capture_output=True,
                         text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert ran.returncode == 0, ran.stderr
    server = artifact_digest.directory_digest(mlflow_model_dir)
    assert ran.stdout.strip() == server == reference_digest(mlflow_model_dir) != ""


def test_govern_digest_of_nothing_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run(["digest", str(tmp_path / "missing")], monkeypatch)
    assert code == exits.USAGE and "not at their location" in err
