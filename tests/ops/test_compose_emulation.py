"""The compose stack as shipped, without Docker: docker/compose.yml and docker/Dockerfile run as written.

There is no Docker engine in CI, so this test plays it. From the files, never from a copy:
the runtime stage's ``ENV`` and ``ENTRYPOINT``, its ``HEALTHCHECK``, and for ``migrate``, ``web``,
``worker`` and ``beat`` compose's ``environment`` (``DEBUG=0``), ``command`` and ``healthcheck``.
Each "container" process runs as Docker would run it:

* as root with only the capabilities compose leaves (``cap_drop: ALL`` + ``cap_add``), with
  ``no-new-privileges`` (``setpriv``), so the entrypoint has to drop to uid 10001 itself;
* in its own mount namespace (``unshare -m``): the root file system read-only (``read_only: true``),
  a ``/tmp`` of its own (``tmpfs``) and ``/dev/shm``, the secret files at ``/run/secrets`` written
  as documented (owner root:root, mode 0600), the volume at ``/var/lib/governance``;
* against the real PostgreSQL (this test's database) and Redis (``CELERY_WORKER_TEST_BROKER_URL``).

What is remapped, and only that: ``/app`` is a copy of what the Dockerfile's ``COPY`` lines put
there (it cannot be created on the host's read-only root), ``/opt/venv`` is this virtualenv; the
host names ``postgres``/``redis``/``mlflow``/``web`` are 127.0.0.1 and their ports free ones
(``GUNICORN_BIND``, ``HEALTHCHECK_URL`` and ``CELERY_METRICS_PORT`` say so to the processes: other
test runs may hold 8000). The proxy runs the checked-in Caddyfile when ``caddy`` is installed
(Debian's package; .ci/run installs it), and MLflow is a real ``mlflow server``.

Needs root, ``unshare`` and ``setpriv`` (util-linux), PostgreSQL and Redis: skipped otherwise.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from django.db import connection

from tests.ops.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
BROKER = os.environ.get("CELERY_WORKER_TEST_BROKER_URL")
APP_UID = 10001

# In CI's own stage (.ci/run) nothing may be missing: a skip there would hide a broken stack.
REQUIRED = os.environ.get("COMPOSE_EMULATION_REQUIRED") == "1"


def _needs(condition: bool, reason: str) -> pytest.MarkDecorator:
    if REQUIRED and condition:
        raise RuntimeError(f"COMPOSE_EMULATION_REQUIRED=1 but this emulation {reason}")
    return pytest.mark.skipif(condition, reason=reason)


pytestmark = [
    pytest.mark.usefixtures("on_postgres", "committing_db"),
    _needs(os.geteuid() != 0, "needs root (mount namespaces, setpriv)"),
    _needs(not (shutil.which("unshare") and shutil.which("setpriv")), "needs util-linux (unshare, setpriv)"),
    _needs(not BROKER or not BROKER.startswith("redis://"), "needs CELERY_WORKER_TEST_BROKER_URL=redis://..."),
]


# --- reading the files as Docker does --------------------------------------------------------------


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable interpolation: ``${X}``, ``${X:-default}``, ``$$`` (the shell's ``$``)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(3)
        return env.get(name) or (default if default is not None else "")

    return re.sub(r"\$\$|\$\{(\w+)(:-([^}]*))?\}", one, value)


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DOCKER / "compose.yml").read_text())
    return interpolate(data, {})


def dockerfile_runtime() -> dict[str, Any]:
    """The runtime stage's ENV (in order), ENTRYPOINT, HEALTHCHECK command and COPY lines."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    env: dict[str, str] = {}
    out: dict[str, Any] = {"env": env, "copies": []}
    for line in lines[last_from:]:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", rest):
                env[key] = value
        elif keyword == "ENTRYPOINT":
            out["entrypoint"] = json.loads(rest)
        elif keyword == "HEALTHCHECK":
            out["healthcheck"] = json.loads(rest[rest.index("CMD") + 3:].strip())
        elif keyword == "COPY" and "--from=" not in rest:
            parts = [p for p in rest.split() if not p.startswith("--")]
            out["copies"].append((parts[0], parts[1]))
        elif keyword == "WORKDIR":
            out["workdir"] = rest
    return out


# --- the emulated engine ------------------------------------------------------------------------


class Stack:
    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.image = dockerfile_runtime()
        self.compose = compose()
        self.ports = {"web": free_port(), "mlflow": free_port(), "metrics": free_port()}
        self.app = scratch / "app"
        self.secrets = scratch / "secrets"
        self.volume = scratch / "volume"
        self.procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self.remap = {"/app": str(self.app), "/opt/venv": sys.prefix}
        self._stage_app()

    # The image's /app, from the Dockerfile's COPY lines (root-owned, read-only in the namespace).
    def _stage_app(self) -> None:
        workdir = self.image.get("workdir", "/app")
        for source, dest in self.image["copies"]:
            target = dest if dest.startswith("/") else f"{workdir}/{dest.removeprefix('./')}"
            if dest.endswith("/") or dest == "./":
                target = f"{target.rstrip('/')}/{Path(source).name}"
            if target.startswith("/usr/local/bin/"):
                target = f"/app/.bin/{Path(target).name}"  # the manage wrapper: on PATH below
            local = Path(target.replace("/app", str(self.app), 1))
            local.parent.mkdir(parents=True, exist_ok=True)
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, local, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(ROOT / source, local)
                if "/.bin/" in str(local):  # a script naming /app paths (the manage wrapper): remapped too
                    local.write_text(self._path(local.read_text()))
        self.volume.mkdir()
        os.chown(self.volume, APP_UID, APP_UID)

    def write_secrets(self, db_url: str) -> None:
        import base64

        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self.secrets.mkdir(mode=0o755)  # Docker's /run/secrets: the files carry the protection
        key = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        files = {
            "database_url": db_url, "django_secret_key": "s" * 20 + os.urandom(16).hex(),
            "ledger_signing_key": key.decode(), "ledger_trusted_keys": "",
            "ledger_pii_kek": base64.b64encode(os.urandom(32)).decode(),
            "mlflow_webhook_secret": "webhook-" + os.urandom(16).hex(),
            "metrics_token": "metrics-" + os.urandom(16).hex(),
        }
        for service_secret, spec in self.compose["secrets"].items():
            name = Path(spec["file"]).name
            if service_secret in files:
                path = self.secrets / service_secret  # mounted at /run/secrets/<secret name>
                path.write_text(files[service_secret] + "\n")
                os.chown(path, 0, 0)
                path.chmod(0o600)  # docs/deploy.md: owner root:root, mode 0600
            assert name  # every secret is a file

    def _host(self, value: str) -> str:
        """Compose's service names and ports are this machine's."""
        broker = urlsplit(BROKER or "")
        value = re.sub(r"redis://redis:6379/\d+", f"redis://127.0.0.1:{broker.port or 6379}{broker.path}", value)
        value = value.replace("mlflow:5000", f"127.0.0.1:{self.ports['mlflow']}")
        value = value.replace("http://web:8000", f"http://127.0.0.1:{self.ports['web']}")
        return value

    def _path(self, value: str) -> str:
        for prefix, local in self.remap.items():
            value = re.sub(rf"(?<![\w/]){re.escape(prefix)}(?=/|$|:)", local, value)
        return value

    def env(self, service: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        spec = self.compose["services"][service]
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
               "HOSTNAME": socket.gethostname(), "LANG": "C.UTF-8"}
        for key, value in self.image["env"].items():
            env[key] = value.replace("$PATH", env.get("PATH", ""))
        env.update({k: str(v) for k, v in (spec.get("environment") or {}).items()})
        env = {k: self._path(self._host(v)) for k, v in env.items()}
        env["PATH"] = f"{self.app}/.bin:{env['PATH']}"  # /usr/local/bin/manage
        # The ports of this machine (other runs may hold 8000, 9808).
        env["GUNICORN_BIND"] = f"127.0.0.1:{self.ports['web']}"
        env["HEALTHCHECK_URL"] = f"http://127.0.0.1:{self.ports['web']}/healthz"
        if env.get("CELERY_METRICS_PORT"):
            env["CELERY_METRICS_PORT"] = str(self.ports["metrics"])
            env["CELERY_METRICS_ADDR"] = "127.0.0.1"
        env.update(extra or {})
        return env

    def container_argv(self, service: str, argv: list[str], *, as_user: int | None = None) -> list[str]:
        """``argv`` in a fresh "container" of ``service``: namespace, mounts, capabilities, no-new-privileges."""
        spec = self.compose["services"][service]
        ctmp = self.scratch / f"{service}-tmp"
        cshm = self.scratch / f"{service}-shm"
        for d in (ctmp, cshm):
            d.mkdir(exist_ok=True)
            d.chmod(0o1777)
        assert spec.get("read_only") is True and "/tmp" in (spec.get("tmpfs") or [])
        caps = ",".join(["-all"] + [f"+{c.lower()}" for c in spec.get("cap_add") or []])
        assert spec.get("cap_drop") == ["ALL"]
        assert "no-new-privileges:true" in (spec.get("security_opt") or [])
        user = ["--reuid", str(as_user), "--regid", str(as_user), "--clear-groups"] if as_user is not None else []
        hold_venv, restore_venv = self._venv_under_tmp_mounts()
        script = (
            "set -e; mount --make-rprivate /; " + self._interpreter_mounts() + hold_venv +
            "mount -t tmpfs -o mode=755 tmpfs /run; mkdir /run/secrets; "
            f"mount --bind -o ro {self.secrets} /run/secrets; "
            f"mount -t tmpfs -o mode=755 tmpfs /var/lib; mkdir /var/lib/governance; "
            f"mount --bind {self.volume} /var/lib/governance; "
            f"mount --bind {ctmp} /tmp; mount --bind {cshm} /dev/shm; "
            + restore_venv +
            "mount -o remount,bind,ro /; "
            f'cd {self.app}; exec setpriv --no-new-privs --bounding-set {caps} --inh-caps -all {" ".join(user)} -- "$@"'
        )
        return ["unshare", "-m", "sh", "-c", script, "sh", *[self._path(a) for a in argv]]

    def _venv_under_tmp_mounts(self) -> tuple[str, str]:
        """Keep this virtualenv at its own path when it lives under /tmp (a clean clone in /tmp, as CI's
        may be), which the container's own /tmp covers: its scripts name that path in their shebangs.
        Held (before /tmp is covered), then bound back read-only into the container's /tmp."""
        venv = Path(sys.prefix)  # as the scripts' shebangs name it (a bind follows a symlink)
        if not venv.is_relative_to("/tmp"):
            return "", ""
        hold = self.scratch / "venv"
        hold.mkdir(exist_ok=True)
        return (f"mount --bind {venv} {hold}; ",
                f"mkdir -p {venv}; mount --bind {hold} {venv}; mount -o remount,bind,ro {venv}; ")

    def _interpreter_mounts(self) -> str:
        """Let uid 10001 reach this virtualenv's base interpreter when it lives under a private directory
        (a pyenv Python under /root, mode 0700): the image's Python is in /usr/local, readable by all.
        The private directory is covered by a tmpfs holding only the interpreter's tree."""
        cfg = Path(sys.prefix) / "pyvenv.cfg"
        home = next((line.split("=", 1)[1].strip() for line in cfg.read_text().splitlines()
                     if line.startswith("home")), None) if cfg.exists() else None
        if not home:
            return ""
        parts = Path(home).parts
        for i in range(2, len(parts)):
            private = Path(*parts[:i])
            if not os.stat(private).st_mode & 0o001:
                keep = Path(*parts[: i + 1])
                hold = self.scratch / "interpreter"
                hold.mkdir(exist_ok=True)
                return (f"mount --bind {keep} {hold}; mount -t tmpfs -o mode=755 tmpfs {private}; "
                        f"mkdir -p {keep}; mount --bind {hold} {keep}; mount -o remount,ro {private}; ")
        return ""

    def run(self, service: str, argv: list[str], *, extra_env: dict[str, str] | None = None,
            as_user: int | None = None, stdin: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.container_argv(service, argv, as_user=as_user), env=self.env(service, extra_env),
                              input=stdin, capture_output=True, text=True, timeout=timeout, check=False)

    def start(self, service: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        spec = self.compose["services"][service]
        argv = self.image["entrypoint"] + spec["command"]
        log = self.scratch / f"{service}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(self.container_argv(service, argv), env=self.env(service, extra_env),
                                    stdout=fh, stderr=subprocess.STDOUT)
        self.procs.append((service, proc, log))
        return proc

    def log(self, service: str) -> str:
        return (self.scratch / f"{service}.log").read_text(errors="replace")

    def healthcheck_argv(self, service: str) -> list[str]:
        test = (self.compose["services"][service].get("healthcheck") or {}).get("test")
        if test is None:
            return self.image["healthcheck"]  # the image's HEALTHCHECK
        assert test[0] == "CMD", test
        return test[1:]

    def stop(self) -> None:
        for _, proc, _ in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for _, proc, _ in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http_get(port: int, path: str, host: str,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Host": host, **(headers or {})})
    response = conn.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def process_uids(root_pid: int, include_self: bool = True) -> list[tuple[int, int, str]]:
    """(pid, real uid, CapEff) of ``root_pid``'s descendants (the processes after unshare/setpriv)."""
    out = []
    if include_self:
        status = Path(f"/proc/{root_pid}/status").read_text()
        out.append((root_pid, int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)),  # type: ignore[union-attr]
                    re.search(r"^CapEff:\s+(\w+)", status, re.M).group(1)))  # type: ignore[union-attr]
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(root_pid)], capture_output=True, text=True)
    for pid in [int(p) for p in children.stdout.split()]:
        status = Path(f"/proc/{pid}/status").read_text()
        uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
        cap = re.search(r"^CapEff:\s+(\w+)", status, re.M).group(1)  # type: ignore[union-attr]
        out.append((pid, uid, cap))
        out.extend(process_uids(pid, include_self=False))
    return out


@pytest.fixture
def stack() -> Iterator[Stack]:
    scratch = Path(tempfile.mkdtemp(prefix="compose-emulation-", dir="/var/tmp"))  # not /tmp: each "container"'s own
    scratch.chmod(0o755)
    stack = Stack(scratch)
    db = connection.settings_dict
    from celery import Celery

    # Tasks left on this broker by an earlier run would only be noise (expired ones are logged).
    Celery(broker=BROKER, set_as_current=False).connection_for_write().default_channel.queue_purge("celery")
    stack.write_secrets(f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}")
    try:
        yield stack
    finally:
        stack.stop()
        for service, _, log in stack.procs:
            sys.stdout.write(f"--- {service}\n{log.read_text(errors='replace')[-2500:]}\n")
        shutil.rmtree(scratch, ignore_errors=True)


# --- the tests ------------------------------------------------------------------------------------


def test_secrets_as_documented_and_the_privilege_drop(stack: Stack) -> None:
    entry = stack.image["entrypoint"]
    # Started as root (compose): reads the root:root 0600 files, then runs the command as 10001:10001.
    probe = ("import os; from django.conf import settings; import django; django.setup(); "
             "print(os.getuid(), os.getgid(), os.getgroups(), bool(settings.SECRET_KEY), "
             "open(settings.LEDGER_SIGNING_KEY).read()[:10], 'SECRET_KEY_FILE' in os.environ, "
             "open('/proc/self/status').read().split('CapEff:')[1].split()[0])")
    done = stack.run("web", [*entry, "python", "-c", probe])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["10001", "10001", "[]", "True", "-----BEGIN", "False", "0000000000000000"]
    # A secret file mounted with another owner: refused, naming the file and the documented owner/mode.
    (stack.secrets / "metrics_token").chmod(0o600)
    os.chown(stack.secrets / "metrics_token", 1234, 1234)
    done = stack.run("web", [*entry, "true"])
    assert done.returncode != 0
    assert "METRICS_TOKEN_FILE: cannot read /run/secrets/metrics_token" in done.stderr
    assert "root:root mode 0600" in done.stderr
    os.chown(stack.secrets / "metrics_token", 0, 0)
    # Started as 10001 (Kubernetes runAsUser), it cannot read root's files: said clearly, nothing runs.
    done = stack.run("web", [*entry, "touch", "/tmp/ran"], as_user=APP_UID)
    assert done.returncode != 0 and "permission denied" in done.stderr and "0600" in done.stderr
    assert not (stack.scratch / "web-tmp" / "ran").exists()


def test_the_stack_runs_as_shipped(stack: Stack) -> None:
    services = stack.compose["services"]
    entry = stack.image["entrypoint"]
    assert services["web"].get("ports") is None and services["proxy"]["ports"]

    # migrate, as compose runs it first.
    migrate = stack.run("migrate", [*entry, *services["migrate"]["command"]], timeout=120)
    assert migrate.returncode == 0, migrate.stderr

    web = stack.start("web")
    worker = stack.start("worker")
    beat = stack.start("beat")
    port = stack.ports["web"]

    # The image's HEALTHCHECK exactly as written (127.0.0.1: not in ALLOWED_HOSTS).
    def healthy(service: str) -> bool:
        return stack.run(service, stack.healthcheck_argv(service), timeout=30).returncode == 0

    wait_for(lambda: healthy("web"), 60, "web's HEALTHCHECK")
    status, _, body = http_get(port, "/readyz", "web:8000")
    assert status in (200, 503) and b"checks" in body  # answered whatever the Host, never a 400
    status, _, _ = http_get(port, "/api/v1/", "127.0.0.1")
    assert status == 400  # host validation is still on for everything else
    status, headers, _ = http_get(port, "/console/login/", "localhost")
    assert status == 301 and headers["location"].startswith("https://localhost/")  # plain HTTP: to HTTPS
    status, headers, _ = http_get(port, "/console/login/", "localhost", {"X-Forwarded-Proto": "https"})
    assert status == 200 and "secure" in headers.get("set-cookie", "").lower()

    # The worker's healthcheck exactly as written: through the entrypoint, this worker only.
    wait_for(lambda: healthy("worker"), 90, "the worker's healthcheck (celery inspect ping)")

    # Every process of every service runs as 10001 without capabilities.
    for proc in (web, worker, beat):
        rows = process_uids(proc.pid)
        runtime = [r for r in rows if r[1] != 0]
        assert runtime and all(uid == APP_UID and cap == "0000000000000000" for _, uid, cap in runtime), rows
        assert [r for r in rows if r[1] == 0] == [], rows  # no root process left once the entrypoint exec'd

    # docker compose exec: through the manage wrapper (entrypoint, 10001) and raw (root, settings read *_FILE).
    # (exit 3: consistent, but no witness or known checkpoint anchors this fresh ledger yet)
    done = stack.run("web", ["manage", "verify_ledger"], timeout=120)
    assert done.returncode in (0, 3) and "consistent with itself" in done.stdout, done.stdout + done.stderr
    done = stack.run("web", ["python", "manage.py", "verify_ledger"], timeout=120)
    assert done.returncode in (0, 3) and "consistent with itself" in done.stdout, done.stdout + done.stderr

    # The first administrator, through the wrapper, password on stdin; a second one is refused.
    done = stack.run("web", ["manage", "create_first_admin", "--username", "first.admin", "--password-file", "-"],
                     stdin="a long enough passphrase 1\n")
    assert done.returncode == 0, done.stderr
    done = stack.run("web", ["manage", "create_first_admin", "--username", "second", "--password-file", "-"],
                     stdin="a long enough passphrase 2\n")
    assert done.returncode == 1 and "already exists" in done.stderr

    # The sequencer ran (beat -> worker) for a while: the Prometheus directory was there, logs are JSON,
    # the per-second lines are not at INFO.
    time.sleep(6)
    assert (stack.scratch / "worker-tmp" / "prometheus").is_dir()
    assert os.stat(stack.scratch / "worker-tmp" / "prometheus").st_uid == APP_UID
    for service in ("worker", "beat", "web"):
        # (web's one traceback is the DisallowedHost this test provoked above)
        text = "\n".join(line for line in stack.log(service).splitlines() if "DisallowedHost" not in line)
        assert "Traceback" not in text and "Read-only file system" not in text, text[-3000:]
        assert "Sending due task ledger-integrate" not in text
        lines = [line for line in text.splitlines() if line.startswith("{")]
        assert lines, text[-2000:]
        for line in lines:
            record = json.loads(line)
            assert {"level", "logger", "message"} <= set(record)
    assert "integrate_pending[" not in stack.log("worker")  # "Task ...integrate_pending[id] received/succeeded"
    assert len(stack.log("beat").splitlines()) < 30  # one line a second would be more
    assert web.poll() is None and worker.poll() is None and beat.poll() is None

    # Nothing written outside the declared volume and tmpfs: the root was read-only all along (a write
    # there fails, and nothing failed); the volume holds only what the app keeps under VAR_DIR.
    written = sorted(str(p.relative_to(stack.volume)) for p in stack.volume.rglob("*"))
    assert all(not p.endswith(".pyc") for p in written), written


def test_mlflow_webhook_registration_and_a_signed_delivery(stack: Stack) -> None:
    """compose's MLflow (its environment), the registration command through the web "container",
    and MLflow's own test delivery to our endpoint: the secret MLflow signs with is the one we verify."""
    services = stack.compose["services"]
    spec = services["mlflow"]
    mlflow_env = {k: stack._host(str(v)) for k, v in (spec.get("environment") or {}).items()}
    from cryptography.fernet import Fernet

    assert "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY=" in spec["command"][0]
    assert re.search(r"ghcr\.io/mlflow/mlflow:v3\.17\.\d+$", spec["image"])
    env = {**os.environ, **mlflow_env, "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": Fernet.generate_key().decode()}
    server = subprocess.Popen(
        [str(Path(sys.prefix) / "bin" / "mlflow"), "server", "--host", "127.0.0.1",
         "--port", str(stack.ports["mlflow"]), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{stack.scratch / 'mlflow.db'}",
         "--artifacts-destination", str(stack.scratch / "mlflow-artifacts")],
        env=env, stdout=subprocess.DEVNULL, stderr=(stack.scratch / "mlflow.log").open("wb"))
    try:
        from mlflow.tracking import MlflowClient

        uri = f"http://127.0.0.1:{stack.ports['mlflow']}"

        def up() -> bool:
            try:
                return http_get(stack.ports["mlflow"], "/health", f"127.0.0.1:{stack.ports['mlflow']}")[0] == 200
            except OSError:
                return False

        wait_for(up, 90, "mlflow server")
        # MLflow reaches web by the name "web" (in ALLOWED_HOSTS); here web is 127.0.0.1.
        allowed = stack.env("web")["ALLOWED_HOSTS"].split(",")
        assert "web" in allowed
        stack.start("web", {"ALLOWED_HOSTS": ",".join("127.0.0.1" if h == "web" else h for h in allowed)})
        wait_for(lambda: stack.run("web", stack.healthcheck_argv("web")).returncode == 0, 60, "web")
        url = f"http://127.0.0.1:{stack.ports['web']}/webhooks/mlflow"
        for _ in range(2):
            done = stack.run("web", ["manage", "mlflow_webhook_register", "--url", url], timeout=120)
            assert done.returncode == 0, done.stdout + done.stderr
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        hooks = list(client.list_webhooks())
        assert len(hooks) == 1
        result = client.test_webhook(hooks[0].webhook_id)
        # Signed with our secret and accepted; a wrong secret would be a 401 here.
        assert result.success and result.response_status == 202, result
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


@_needs(shutil.which("caddy") is None, "needs caddy (Debian's package) for the TLS proxy")
def test_tls_proxy_sets_the_scheme_and_secure_cookies_work(stack: Stack) -> None:
    """docker/proxy/Caddyfile as checked in, in front of the emulated web: HTTPS with Caddy's internal CA,
    X-Forwarded-Proto overwritten, the console's login over it with Secure cookies."""
    spec = stack.compose["services"]["proxy"]
    assert re.search(r"^caddy:\d+\.\d+\.\d+", spec["image"])
    https_port, http_port = free_port(), free_port()
    data = stack.scratch / "caddy"
    env = {**os.environ, **{k: str(v) for k, v in spec["environment"].items()},
           "WEB_UPSTREAM": f"127.0.0.1:{stack.ports['web']}", "PROXY_HTTPS_PORT": str(https_port),
           "PROXY_HTTP_PORT": str(http_port), "XDG_DATA_HOME": str(data), "XDG_CONFIG_HOME": str(data),
           "HOME": str(data)}
    assert env["TLS_MODE"] == "internal" and env["PUBLIC_HOST"] == "localhost"
    stack.start("web")
    wait_for(lambda: stack.run("web", stack.healthcheck_argv("web")).returncode == 0, 60, "web")
    done = stack.run("web", ["manage", "create_first_admin", "--username", "ops", "--password-file", "-"],
                     stdin="a long enough passphrase 1\n")
    assert done.returncode == 0, done.stderr
    caddyfile = str(DOCKER / "proxy" / "Caddyfile")
    proxy = subprocess.Popen(["caddy", "run", "--config", caddyfile, "--adapter", "caddyfile"],
                             env=env, stdout=subprocess.DEVNULL, stderr=(stack.scratch / "caddy.log").open("wb"))
    try:
        root_ca = data / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        wait_for(root_ca.exists, 30, "Caddy's local CA")
        context = ssl.create_default_context(cafile=str(root_ca))

        def https(method: str, path: str, body: str | None = None, headers: dict[str, str] | None = None) -> Any:
            conn = http.client.HTTPSConnection("localhost", https_port, context=context, timeout=10)
            conn.request(method, path, body=body, headers={"Host": "localhost", **(headers or {})})
            response = conn.getresponse()
            response.read()
            return response

        wait_for(lambda: _try(lambda: https("GET", "/healthz").status == 200), 30, "the proxy")
        # A client's own X-Forwarded-Proto is overwritten (here it claims http: it still gets the page).
        page = https("GET", "/console/login/", headers={"X-Forwarded-Proto": "http"})
        assert page.status == 200
        cookies = page.headers.get_all("Set-Cookie")
        csrf = next(c for c in cookies if c.startswith("csrftoken="))
        assert "Secure" in csrf
        token = csrf.split(";")[0].split("=", 1)[1]
        form = f"username=ops&password=a+long+enough+passphrase+1&csrfmiddlewaretoken={token}"
        login = https("POST", "/console/login/", body=form,
                      headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={token}",
                               "Referer": "https://localhost/console/login/", "Origin": "https://localhost"})
        assert login.status == 302, login.status
        session = next(c for c in login.headers.get_all("Set-Cookie") if c.startswith("sessionid="))
        assert "Secure" in session and "HttpOnly" in session
        home = https("GET", "/console/", headers={"Cookie": session.split(";")[0]})
        assert home.status == 200
        assert https("GET", "/metrics").status == 404  # scraped inside the network only
    finally:
        proxy.terminate()
        proxy.wait(timeout=20)


def _try(predicate: Any) -> bool:
    try:
        return bool(predicate())
    except OSError:
        return False
