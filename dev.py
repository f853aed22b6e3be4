#!/usr/bin/env python3
"""One entry point for a fresh machine with Python 3.11 and nothing else.

    python3.11 dev.py demo   # set up, load demo data, serve the console on http://127.0.0.1:8000
    python3.11 dev.py test   # set up, run the whole test suite (extra args go to pytest)

It creates .venv beside this file and installs the locked dependencies
(requirements-dev.lock: exact versions with their hashes) and the project itself
whenever pyproject.toml or the lock changed since the last install. The demo also runs one local
witness (``python -m audit.witness serve`` on 127.0.0.1, key and state under
var/witness/) and points the server at it, so its checkpoints show cosignatures;
set LEDGER_WITNESSES yourself to use other witnesses instead.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
STAMP = VENV / ".installed-pyproject-sha256"
LOCK = ROOT / "requirements-dev.lock"


def run(*cmd: str | Path, env: dict[str, str] | None = None) -> int:
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, env=env)


def ensure_venv() -> None:
    if sys.version_info[:2] != (3, 11):
        sys.exit(f"dev.py needs Python 3.11 (this is {sys.version.split()[0]}): run it as python3.11 dev.py ...")
    if not PY.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + LOCK.read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    print("installing dependencies into .venv (first run takes a few minutes) ...", flush=True)
    if run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip") != 0:
        sys.exit("pip upgrade failed")
    # The lock, hash-checked, then the project alone: what is tested is exactly what was locked.
    if run(PY, "-m", "pip", "install", "--quiet", "--require-hashes", "-r", LOCK) != 0:
        sys.exit(f"installing {LOCK.name} failed")
    if run(PY, "-m", "pip", "install", "--quiet", "--no-deps", "-e", ROOT) != 0:
        sys.exit("installing the project failed")
    STAMP.write_text(digest)


WITNESS_NAME = "demo-witness.localhost"


def _output(*cmd: str | Path, env: dict[str, str]) -> str:
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def start_demo_witness(env: dict[str, str]) -> subprocess.Popen[str] | None:
    """Start the demo's witness and add it to ``env["LEDGER_WITNESSES"]``; None when the user configured their own."""
    if env.get("LEDGER_WITNESSES"):
        return None
    var = Path(env.get("VAR_DIR") or ROOT / "var") / "witness"
    var.mkdir(parents=True, exist_ok=True)
    key = var / "witness-key.pem"
    command = "vkey" if key.exists() else "keygen"
    vkey = _output(PY, "-m", "audit.witness", command, "--key", key, "--name", WITNESS_NAME, env=env)
    log_vkey = _output(PY, "manage.py", "shell", "-v", "0", "-c",
                       "from audit.signing import current_verifier_key; print(current_verifier_key())", env=env)
    witness = subprocess.Popen(
        [str(PY), "-m", "audit.witness", "serve", "--listen", "127.0.0.1:0", "--name", WITNESS_NAME,
         "--key", str(key), "--state", str(var / "state.json"), "--log", log_vkey],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
    )
    assert witness.stdout is not None
    line = witness.stdout.readline().strip()  # "listening on http://127.0.0.1:PORT"
    if not line.startswith("listening on "):
        witness.terminate()
        sys.exit(f"the demo witness did not start ({line or 'no output'})")
    url = line.removeprefix("listening on ")
    print(f"demo witness {WITNESS_NAME} at {url}", flush=True)
    env["LEDGER_WITNESSES"] = f"{url} {vkey}"
    return witness


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "setup"}:
        print(__doc__)
        return 2
    ensure_venv()
    command, rest = argv[0], argv[1:]
    env = dict(os.environ)
    if command == "setup":
        return 0
    if command == "test":
        code = run(PY, "-m", "pytest", *rest, env=env)
        # pytest exits 5 when a selection collected no tests; that is not a failure of the suite.
        return 0 if code == 5 else code
    if run(PY, "manage.py", "migrate", "--noinput", env=env) != 0:
        return 1
    witness = start_demo_witness(env)
    try:
        if run(PY, "manage.py", "seed_demo", env=env) != 0:
            return 1
        return run(PY, "manage.py", "runserver", "127.0.0.1:8000", *rest, env=env)
    finally:
        if witness is not None:
            witness.terminate()
            witness.wait(10)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
