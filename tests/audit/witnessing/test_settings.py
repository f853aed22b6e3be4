"""LEDGER_WITNESSES / LEDGER_WITNESS_QUORUM are validated at start-up: a bad URL, key or quorum stops the process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.cosignature import cosigner_verifier_key
from audit.note import public_bytes

ROOT = Path(__file__).resolve().parents[3]


def vkey(name: str) -> str:
    return cosigner_verifier_key(name, public_bytes(Ed25519PrivateKey.generate().public_key()))


def run(tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    environ.update(VAR_DIR=str(tmp_path / "var"), **env)
    return subprocess.run([sys.executable, "manage.py", "shell", "-v", "0", "-c", code], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=120)


SHOW = "from django.conf import settings as s; print(s.LEDGER_WITNESS_QUORUM, [w['name'] for w in s.LEDGER_WITNESSES])"


def test_witnesses_from_the_environment_and_the_default_quorum(tmp_path: Path) -> None:
    a, b, c = vkey("a.example/w"), vkey("b.example/w"), vkey("c.example/w")
    result = run(tmp_path, SHOW, LEDGER_WITNESSES=f"http://127.0.0.1:1/ {a}\n https://b.example/w {b} ;"
                                                  f"https://c.example {c}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2 ['a.example/w', 'b.example/w', 'c.example/w']"  # a majority of three
    result = run(tmp_path, SHOW, LEDGER_WITNESSES=f"http://127.0.0.1:1 {a}; http://127.0.0.1:2 {b}")
    assert result.stdout.strip() == "2 ['a.example/w', 'b.example/w']"  # both of two
    assert run(tmp_path, SHOW).stdout.strip() == "0 []"  # none: nothing changes


@pytest.mark.parametrize(
    ("value", "quorum", "message"),
    [
        ("ftp://w.example {vkey}", "", "is not an http(s) URL"),
        ("http://w.example/?x=1 {vkey}", "", "is not an http(s) URL"),
        ("http://w.example", "", "must be 'URL VKEY'"),
        ("http://w.example w.example/w+00000000+AAAA", "", "bad witness verifier key"),
        ("http://w.example {log_vkey}", "", "bad witness verifier key"),  # a log key (type 0x01), not a cosigner's
        ("http://a.example {vkey}; http://b.example {vkey}", "", "listed twice"),
        ("http://w.example {vkey}", "2", "LEDGER_WITNESS_QUORUM=2 must be between 1 and the number of witnesses (1)"),
        ("http://w.example {vkey}", "0", "must be between 1"),
        ("", "1", "must be between 1 and the number of witnesses (0)"),
    ],
)
def test_bad_witness_settings_stop_the_process(tmp_path: Path, value: str, quorum: str, message: str) -> None:
    from audit.note import verifier_key

    log_vkey = verifier_key("w.example/w", public_bytes(Ed25519PrivateKey.generate().public_key()))
    env = {"LEDGER_WITNESSES": value.format(vkey=vkey("w.example/w"), log_vkey=log_vkey)}
    if quorum:
        env["LEDGER_WITNESS_QUORUM"] = quorum
    result = run(tmp_path, SHOW, **env)
    assert result.returncode != 0
    assert message in result.stderr
