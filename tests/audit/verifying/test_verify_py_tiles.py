"""verify.py --tiles URL against a real server on 127.0.0.1 (pytest-django's live_server): the log's checkpoint,
verified with the reader's keys, must extend the bundle's and every entry is proven again from the log's hash
tiles. A tampered tile, a checkpoint by an untrusted key, an older checkpoint and a redirect (which would carry
the token elsewhere) are each refused, through a small local HTTP server in front of the real one."""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.test import override_settings

from audit import offline_verify, selectors
from audit.models import Checkpoint
from audit.note import CheckpointBody, sign_note
from audit.offline_verify import TileClient, VerifyError, tile_path
from audit.services import checkpoints
from audit.signing import current_verifier_key
from tests.audit.export.helpers import Export
from tests.audit.integration.helpers import fill
from tests.audit.tiles.helpers import grow_to
from tests.audit.verifying.helpers import run_verify
from tests.live_server import serving


@pytest.fixture
def live_url(committing_db: None, settings: Any) -> Iterator[str]:
    """A real server on 127.0.0.1 (a free port) over the test's committed data."""
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "127.0.0.1"]
    with serving() as server:
        yield f"http://127.0.0.1:{server.port}"

Rewrite = Callable[[str, int, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]


class Front:
    """A tiny HTTP server on 127.0.0.1 that forwards GETs to ``upstream`` and lets a test rewrite the answers;
    it keeps the Authorization headers it saw."""

    def __init__(self, upstream: str, rewrite: Rewrite | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.rewrite = rewrite
        self.seen: list[tuple[str, str | None]] = []
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                front.seen.append((self.path, self.headers.get("Authorization")))
                request = urllib.request.Request(front.upstream + self.path)
                if self.headers.get("Authorization"):
                    request.add_header("Authorization", self.headers["Authorization"])
                try:
                    with urllib.request.urlopen(request, timeout=10) as answer:
                        status, headers, body = answer.status, dict(answer.headers), answer.read()
                except urllib.error.HTTPError as exc:
                    status, headers, body = exc.code, dict(exc.headers), exc.read()
                if front.rewrite is not None:
                    status, headers, body = front.rewrite(self.path, status, headers, body)
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Front:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def served(live_url: str, isolated_key: Path, export: Export, token_for: Any, tmp_path: Path) -> dict[str, Any]:
    """A bundle exported from a ledger of ~40 entries, then the ledger grown past a tile boundary (300) and
    checkpointed again: the live tree is larger than the bundle's, with a full level-0 tile and partial ones."""
    fill(30, subjects=3)
    checkpoints.checkpoint_create()
    bundle = export()
    grow_to(300)
    live = checkpoints.checkpoint_create()
    assert live is not None and live.tree_size == 300
    token = token_for(["ledger:read"])._credentials["HTTP_AUTHORIZATION"].split()[1]
    token_file = tmp_path / "token.txt"
    token_file.write_text(token + "\n")
    return {"bundle": bundle, "url": live_url + "/tlog/", "base": live_url, "token_file": token_file,
            "key": current_verifier_key(), "token": token}


def verify(served: dict[str, Any], url: str | None = None, *extra: str, token: bool = True) -> tuple[int, Any]:
    args = ["--trusted-key", served["key"], "--tiles", url or served["url"], "--json", *extra]
    if token:
        args += ["--tiles-token-file", str(served["token_file"])]
    result = run_verify(served["bundle"], *args)
    report = json.loads(result.stdout)
    return result.returncode, report if result.returncode != 2 else " ".join(report["failures"])


def test_a_bundle_is_proven_again_from_the_live_logs_tiles(served: dict[str, Any]) -> None:
    code, report = verify(served)
    assert code == 0, report
    tiles = report["tiles"]
    assert tiles["tree_size"] == 300 and tiles["extends_bundle"] is True
    assert tiles["root_hash"] == selectors.tree_root(300).hex()
    assert tiles["entries_proven"] == report["entries"] + 1  # and the export's own entry
    assert report["verdict"] == "VERIFIED"
    # the summary says it too
    text = run_verify(served["bundle"], "--trusted-key", served["key"], "--tiles", served["url"],
                      "--tiles-token-file", str(served["token_file"]))
    assert text.returncode == 0 and "proven from its tiles; extends checkpoint.txt" in text.stdout


def test_without_a_token_the_private_tiles_cannot_be_read(served: dict[str, Any]) -> None:
    code, output = verify(served, token=False)
    assert code == 2
    assert "HTTP 401" in output and "--tiles-token-file" in output


def test_published_tiles_need_no_token(served: dict[str, Any]) -> None:
    with override_settings(LEDGER_TILES_PUBLIC=True):
        code, report = verify(served, token=False)
    assert code == 0, report
    assert report["tiles"]["extends_bundle"] is True


def test_a_tampered_tile_fails_verification(served: dict[str, Any]) -> None:
    def flip(path: str, status: int, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if path == "/tlog/" + tile_path(0, 0, 256) or path.startswith("/tlog/tile/0/000.p/"):
            body = bytes([body[0] ^ 1]) + body[1:]  # leaf 0's hash, one bit
        return status, headers, body

    with Front(served["base"], flip) as front:
        code, report = verify(served, front.url + "/tlog/")
    assert code == 1, report
    assert any("does not verify from the log's tiles" in f for f in report["failures"]), report["failures"]


def test_a_checkpoint_signed_by_an_untrusted_key_fails(served: dict[str, Any]) -> None:
    real = selectors.latest_checkpoint()
    assert real is not None
    forged = sign_note(CheckpointBody(origin=settings.LEDGER_ORIGIN, tree_size=real.tree_size,
                                      root_hash=bytes.fromhex(real.root_hash)).text(),
                       [(settings.LEDGER_ORIGIN, Ed25519PrivateKey.generate())])

    def swap(path: str, status: int, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        return (status, headers, forged.encode()) if path == "/tlog/checkpoint" else (status, headers, body)

    with Front(served["base"], swap) as front:
        code, report = verify(served, front.url + "/tlog/")
    assert code == 1 and "bad_signature" in report["reasons"], report


def test_an_older_checkpoint_than_the_bundles_is_truncation(served: dict[str, Any]) -> None:
    oldest = Checkpoint.objects.order_by("tree_size").first()
    assert oldest is not None

    def older(path: str, status: int, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        return (status, headers, oldest.note.encode()) if path == "/tlog/checkpoint" else (status, headers, body)

    with Front(served["base"], older) as front:
        code, report = verify(served, front.url + "/tlog/")
    assert code == 1 and "truncated" in report["reasons"], report


def test_a_redirect_is_not_followed_and_the_token_goes_nowhere_else(served: dict[str, Any]) -> None:
    with Front(served["base"]) as elsewhere:
        def away(path: str, status: int, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
            return 302, {"Location": elsewhere.url + path}, b""

        with Front(served["base"], away) as front:
            code, output = verify(served, front.url + "/tlog/")
    assert code == 2 and "HTTP 302" in output
    assert elsewhere.seen == []  # never asked, so never given the token
    assert front.seen[0][1] == f"Bearer {served['token']}"


def test_the_token_is_sent_only_over_https_or_to_this_machine() -> None:
    with pytest.raises(VerifyError, match="only sent over https"):
        TileClient("http://ledger.example/tlog/", "mlg_secret")
    TileClient("https://ledger.example/tlog/", "mlg_secret")
    TileClient("http://ledger.example/tlog/")  # published tiles: no token, any scheme
    for bad in ("file:///etc/tlog/", "ftp://ledger.example/tlog/", "https://ledger.example/tlog/?x=1", "tlog/"):
        with pytest.raises(VerifyError):
            TileClient(bad)


def test_a_token_file_without_tiles_is_a_usage_error(tmp_path: Path) -> None:
    token = tmp_path / "t"
    token.write_text("abc\n")
    assert offline_verify.main([str(tmp_path / "b.zip"), "--tiles-token-file", str(token)]) == 2
