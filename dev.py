#!/usr/bin/env python3
"""One entry point for a fresh machine with Python 3.11 and nothing else.

    python3.11 dev.py demo [--host H] [--port N]   # set up, load demo data, serve the console (default 127.0.0.1:8000)
    python3.11 dev.py demo --sso [--idp-port N]    # ... with single sign-on at a local test OpenID provider (8001)
    python3.11 dev.py test [pytest args]           # set up, run the whole test suite
    python3.11 dev.py setup                        # set up only

Set-up creates .venv beside this file and installs the locked dependencies (requirements-dev.lock:
exact versions with their hashes) and the project itself whenever pyproject.toml or the lock changed
since the last install. It installs with uv (itself taken from the lock, hash-checked, by pip), which
is several times faster than pip; if uv cannot be installed it falls back to pip with the same lock.

The demo also runs one local witness (``python -m audit.witness serve`` on 127.0.0.1, key and state
under var/witness/) and points the server at it, so its checkpoints show cosignatures; set
LEDGER_WITNESSES yourself to use other witnesses instead. Ctrl-C or SIGTERM stops the demo: the
server (with its autoreloader child) and the witness go with it, nothing is left running.

``demo --sso`` also runs the test OpenID provider of tests/idp (Node's oidc-provider, installed with
``npm ci`` from its package-lock.json) with the demo people as its accounts, points the console at it
(the OIDC_* settings in the server's environment) and prints their password and one-time code; it
stops with the demo. Set-up installs it too when Node.js is there (the single sign-on tests skip
without it).

The test command runs the suite on every core (pytest-xdist, ``-n auto --dist worksteal``) unless you pass ``-n``
yourself or select tests (``-k``, a path, ``-x``), where one process starts faster.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import venv
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
UV = VENV / "bin" / "uv"
STAMP = VENV / ".installed-pyproject-sha256"
LOCK = ROOT / "requirements-dev.lock"


def run(*cmd: str | Path, env: dict[str, str] | None = None) -> int:
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, env=env)


def locked_requirement(name: str) -> str:
    """The lock's block for one package (``name==version`` and its ``--hash`` lines), for pip to bootstrap it."""
    lines = LOCK.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"{name}=="):
            block = [line]
            for following in lines[i + 1:]:
                if not following.startswith("    --hash="):
                    break
                block.append(following)
            return "\n".join(block).rstrip(" \\") + "\n"
    raise LookupError(f"{name} is not in {LOCK.name}")


def bootstrap_uv() -> bool:
    """Install the locked uv into .venv with pip (hash-checked); False when that is impossible here."""
    if UV.exists():
        return True
    try:
        block = locked_requirement("uv")
    except LookupError:
        return False
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
        req.write(block)
    try:
        return run(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--require-hashes",
                   "--no-deps", "-r", req.name) == 0 and UV.exists()
    finally:
        os.unlink(req.name)


def install_with_uv() -> bool:
    env = dict(os.environ, VIRTUAL_ENV=str(VENV))
    # --compile-bytecode as pip does: without .pyc files every process compiles Django and MLflow anew
    # (seconds per start, worse where PYTHONDONTWRITEBYTECODE is set).
    return (run(UV, "pip", "install", "--quiet", "--compile-bytecode", "--python", PY, "--require-hashes", "-r", LOCK,
                env=env) == 0
            and run(UV, "pip", "install", "--quiet", "--python", PY, "--no-deps", "-e", ROOT, env=env) == 0)


def install_with_pip() -> bool:
    return (run(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--require-hashes",
                "-r", LOCK) == 0
            and run(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "-e", ROOT) == 0)


def ensure_venv() -> None:
    if sys.version_info[:2] != (3, 11):
        sys.exit(f"dev.py needs Python 3.11 (this is {sys.version.split()[0]}): run it as python3.11 dev.py ...")
    if not PY.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + LOCK.read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    started = time.monotonic()
    print("installing the locked dependencies into .venv ...", flush=True)
    # The lock, hash-checked, then the project alone: what is tested is exactly what was locked.
    if bootstrap_uv():
        ok = install_with_uv()
    else:
        print("uv is not available here: installing with pip (slower)", flush=True)
        ok = install_with_pip()
    if not ok:
        sys.exit(f"installing {LOCK.name} failed")
    STAMP.write_text(digest)
    print(f"installed in {time.monotonic() - started:.0f} s", flush=True)


def ensure_idp(*, required: bool) -> bool:
    """The test OpenID provider's packages (tests/idp/node_modules, ``npm ci``), when Node.js is here.

    Without Node.js or npm, or when ``npm ci`` fails: exits when ``required`` (demo --sso), else says so
    and returns False (the tests that need the provider skip or report it)."""
    from tests.idp import launch  # standard library only: no Django yet

    if not launch.node_available():
        if required:
            sys.exit("dev.py demo --sso needs Node.js and npm (the test OpenID provider runs on Node)")
        print("Node.js/npm not found: the single sign-on tests (tests/idp) will be skipped", flush=True)
        return False
    if not launch.installed():
        print("installing the test OpenID provider (npm ci in tests/idp) ...", flush=True)
    try:
        launch.npm_ci()
    except RuntimeError as error:
        if required:
            sys.exit(str(error))
        print(f"warning: {error}", flush=True)
        return False
    return True


DEMO_OTP = "123456"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def start_demo_idp(env: dict[str, str], *, console_url: str, host: str, port: int) -> subprocess.Popen[str] | None:
    """Start the test OpenID provider with the demo people (seed_demo's DEMO_USERS, their demo password and
    one-time code ``DEMO_OTP``), put its OIDC_* settings into ``env`` and print the sign-in table."""
    from tests.idp import launch

    people = json.loads(_output(
        PY, "manage.py", "shell", "-v", "0", "-c",
        "import json; from governance.management.commands.seed_demo import DEMO_PASSWORD, DEMO_USERS; "
        "print(json.dumps({'password': DEMO_PASSWORD, 'users': DEMO_USERS}))", env=env))
    accounts = {
        username: launch.make_account(username, tuple(user_roles), password=people["password"], otp=DEMO_OTP,
                                      name=title.split(" (")[0], email=f"{username}@example.com")
        for username, title, user_roles in people["users"]
    }
    workdir = Path(env.get("VAR_DIR") or ROOT / "var") / "idp"
    workdir.mkdir(parents=True, exist_ok=True)
    hosts = sorted({urllib.parse.urlsplit(console_url).hostname or "127.0.0.1", "127.0.0.1", "localhost"})
    try:
        idp = launch.start(accounts, workdir, host=host, port=port,
                           redirect_uris=launch.rp_redirect_uris(launch.CALLBACK_PATH, tuple(hosts)),
                           post_logout_redirect_uris=launch.rp_redirect_uris(launch.LOGOUT_RETURN_PATH, tuple(hosts)),
                           client_secret=secrets.token_urlsafe(24))
    except RuntimeError as error:
        sys.exit(f"the test OpenID provider did not start: {error}")
    env.update(idp.env())
    # The seeded people sign in through the provider as themselves, not as new accounts: SSO never links by
    # username on its own, so the demo links them explicitly (manage.py oidc_link, docs/identity.md).
    if run(PY, "manage.py", "oidc_link", *accounts, env=env) != 0:
        print("warning: some demo people are not linked to the provider (see above); they sign in through it "
              "as new accounts", flush=True)
    # The demo keeps its password sign-in beside single sign-on (the seeded people have local passwords).
    env.setdefault("LOCAL_LOGIN", "1")
    print(f"\nSingle sign-on: the test OpenID provider at {idp.issuer} (\"Sign in with Test IdP\" on the console)",
          flush=True)
    print(f"  {'username':<9} {'password':<17} {'one-time code':<14} IdP groups", flush=True)
    for account in accounts.values():
        print(f"  {account.username:<9} {account.password:<17} {account.otp:<14} {', '.join(account.groups)}",
              flush=True)
    print("  The one-time code is asked when the console wants a second factor (approvals) or when you tick\n"
          "  \"Use my second factor\" on the IdP's sign-in page.", flush=True)
    return idp.process


WITNESS_NAME = "demo-witness.localhost"
ANY_ADDRESS = frozenset({"0.0.0.0", "::"})  # noqa: S104 - only to recognise what the user asked for


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
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    assert witness.stdout is not None
    line = witness.stdout.readline().strip()  # "listening on http://127.0.0.1:PORT"
    if not line.startswith("listening on "):
        stop(witness)
        sys.exit(f"the demo witness did not start ({line or 'no output'})")
    url = line.removeprefix("listening on ")
    print(f"demo witness {WITNESS_NAME} at {url}", flush=True)
    env["LEDGER_WITNESSES"] = f"{url} {vkey}"
    return witness


def stop(process: subprocess.Popen[str] | None) -> None:
    """Stop a child started in its own session, with everything it started (runserver's autoreloader
    child): SIGTERM to the process group, SIGKILL after 10 s."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


class Stopped(Exception):
    """SIGTERM or SIGINT reached dev.py: unwind, stopping the children in ``finally``."""


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signal.Signals(signum).name)


def demo(argv: list[str], env: dict[str, str]) -> int:
    parser = argparse.ArgumentParser(prog="dev.py demo", description="Serve the demo console with demo data.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument("--sso", action="store_true",
                        help="also run the test OpenID provider (tests/idp) and sign in through it")
    parser.add_argument("--idp-port", type=int, default=8001, help="the OpenID provider's port (default 8001)")
    args, runserver_args = parser.parse_known_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port must be 1-65535, not {args.port}")
    if args.sso and not (0 < args.idp_port < 65536 and args.idp_port != args.port):
        parser.error(f"--idp-port must be 1-65535 and not --port, not {args.idp_port}")
    url = f"http://{'127.0.0.1' if args.host in ANY_ADDRESS else args.host}:{args.port}"
    if "ALLOWED_HOSTS" not in env and args.host not in {"127.0.0.1", "localhost"}:
        # Reached by another name than 127.0.0.1: Django must accept that Host header.
        env["ALLOWED_HOSTS"] = "*" if args.host in ANY_ADDRESS else f"127.0.0.1,localhost,{args.host}"
    if args.host not in {"127.0.0.1", "localhost", "::1"}:
        print(f"warning: the demo listens on {args.host}: its logins have a published password", flush=True)
    env["DEMO_CONSOLE_URL"] = f"{url}/console/"
    if args.sso:
        ensure_idp(required=True)
    if run(PY, "manage.py", "migrate", "--noinput", "-v", "0", env=env) != 0:
        return 1
    witness = server = idp = None
    # From here on, Ctrl-C (SIGINT) and SIGTERM unwind through ``finally``: nothing is orphaned.
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGINT, _stop_on_signal)
    try:
        witness = start_demo_witness(env)
        # The seed approves promotions as the demo people, with no second factor: never under MFA_REQUIRED.
        if run(PY, "manage.py", "seed_demo", env=dict(env, MFA_REQUIRED="0")) != 0:
            return 1
        if args.sso:
            # Reached where the console is (a non-loopback --host), else on the loopback only.
            idp_host = "127.0.0.1" if args.host in ANY_ADDRESS | LOOPBACK else args.host
            idp = start_demo_idp(env, console_url=url, host=idp_host, port=args.idp_port)
        bind = f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}"
        # Its own session, so that stopping it reaches the autoreloader's child too.
        server = subprocess.Popen([str(PY), "manage.py", "runserver", bind, *runserver_args], cwd=ROOT, env=env,
                                  start_new_session=True, text=True)
        print(f"console: {url}/console/ (Ctrl-C stops the demo)", flush=True)
        return server.wait()
    except Stopped as why:
        print(f"\n{why}: stopping the demo", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop(server)
        stop(idp)
        stop(witness)


def wants_one_process(rest: list[str]) -> bool:
    """A selection or an explicit ``-n``: one process starts faster than spawning workers for a few tests."""
    for arg in rest:
        if arg in {"-n", "-x", "--exitfirst", "-k", "--lf", "--pdb"} or arg.startswith(("-n", "--numprocesses")):
            return True
        if not arg.startswith("-") and (ROOT / arg.split("::")[0]).exists():
            return True
    return False


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "setup"}:
        print(__doc__)
        return 2
    ensure_venv()
    command, rest = argv[0], argv[1:]
    env = dict(os.environ)
    # The bytecode caches of the project's own sources and tests (gitignored __pycache__, and pytest's
    # rewritten test modules) are ours to keep: without them every test worker and every process the
    # tests start compiles the sources again (collection alone: 14 s instead of 6 s).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if command in {"setup", "test"}:
        ensure_idp(required=False)
    if command == "setup":
        return 0
    if command == "test":
        # worksteal: a worker that runs out takes half of the other's queue, so no core idles at the end.
        parallel = [] if wants_one_process(rest) else ["-n", "auto", "--dist", "worksteal"]
        code = run(PY, "-m", "pytest", *parallel, *rest, env=env)
        # pytest exits 5 when a selection collected no tests; that is not a failure of the suite.
        return 0 if code == 5 else code
    return demo(rest, env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
