"""Container entrypoint: read the secret files, drop root, prepare the writable paths, exec the command.

Every command of the image goes through it: the services' commands (``ENTRYPOINT``), the
healthchecks (written as ``python /app/entrypoint.py <command>`` in the Dockerfile and
docker/compose.yml) and ``docker compose exec`` through ``/usr/local/bin/manage`` (exec bypasses
ENTRYPOINT; see docs/deploy.md "Running commands").

1. Secrets. For every variable ``X_FILE`` with ``X`` in ``ALLOWED``, ``X`` is set to the file's
   content (trailing newline removed) and ``X_FILE`` is removed; both set is refused. The
   path-valued secrets ``LEDGER_SIGNING_KEY`` and ``LEDGER_TRUSTED_KEYS_FILE`` (the application
   re-reads them) are copied, when started as root, into ``RUNTIME_SECRETS_DIR`` (a tmpfs:
   ``/dev/shm/governance-secrets``, mode 0700, files 0400, owned by the app user) and the
   variables point at the copies.
2. Privileges. Started as root (compose does, so that it can read secret files mounted
   ``root:root 0600``), it reads the files first, then drops to ``APP_UID:APP_GID`` (10001:10001,
   supplementary groups cleared) before anything else runs; with compose's
   ``no-new-privileges`` nothing can regain them. Started as any other user (Kubernetes
   ``runAsUser``), it only reads, and a file it cannot read stops it naming the file and the
   documented owner and mode. A file root cannot read (owned by the app user, mode 0400, with
   the capability ``DAC_OVERRIDE`` dropped) is read again after the drop.
3. Writable paths. ``PROMETHEUS_MULTIPROC_DIR`` is created (the tmpfs ``/tmp`` hides the
   image's copy of it), owned by the app user.

Crash semantics: any failure exits non-zero with one line on stderr that names the variable and
the file, never a secret value; nothing is exec'd. Values never appear in the image, ``docker
inspect`` or the logs.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

SUFFIX = "_FILE"
# Only these may come from files (a typo must not silently read an arbitrary file into the environment).
ALLOWED = {"SECRET_KEY", "DATABASE_URL", "LEDGER_PII_KEK", "LEDGER_PII_KEK_PREVIOUS", "MLFLOW_WEBHOOK_SECRET",
           "METRICS_TOKEN", "CACHE_URL", "CELERY_BROKER_URL"}
# Variables that hold the PATH of a secret file the application reads itself (and re-reads).
PATH_SECRETS = ("LEDGER_SIGNING_KEY", "LEDGER_TRUSTED_KEYS_FILE")
APP_UID = 10001
APP_GID = 10001
RUNTIME_SECRETS_DIR = Path(os.environ.get("RUNTIME_SECRETS_DIR", "/dev/shm/governance-secrets"))  # noqa: S108
DOCUMENTED = "owner root:root mode 0600 (compose), or owner 10001 mode 0400 when the container runs as 10001"


class EntrypointError(Exception):
    pass


def _read(path: str, variable: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except PermissionError:
        raise EntrypointError(
            f"{variable}: cannot read {path} as uid {os.geteuid()} (permission denied); "
            f"mount it with {DOCUMENTED} (docs/deploy.md)"
        ) from None
    except OSError as exc:
        raise EntrypointError(f"{variable}: cannot read {path} ({exc.strerror})") from None


def collect(env: dict[str, str]) -> tuple[dict[str, str], list[tuple[str, str]], list[str]]:
    """Read the ``X_FILE`` secrets: (values read, (variable, path) pairs to read after the drop, keys to remove)."""
    values: dict[str, str] = {}
    deferred: list[tuple[str, str]] = []
    remove: list[str] = []
    for key in sorted(k for k in env if k.endswith(SUFFIX)):
        name = key[: -len(SUFFIX)]
        if name not in ALLOWED:
            continue
        if env.get(name):
            raise EntrypointError(f"both {name} and {key} are set; use one")
        remove.append(key)
        try:
            values[name] = _read(env[key], key).rstrip("\r\n")
        except EntrypointError:
            if os.geteuid() != 0:
                raise
            deferred.append((name, env[key]))  # root without DAC_OVERRIDE: maybe the app user's own file
    return values, deferred, remove


def drop_privileges(uid: int = APP_UID, gid: int = APP_GID) -> None:
    """Become ``uid:gid`` for good: groups first (they need root), then the gid, then the uid."""
    try:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    except PermissionError:
        raise EntrypointError(
            f"cannot drop privileges to {uid}:{gid} (operation not permitted): started as root, the container "
            "needs the SETUID and SETGID capabilities (compose: cap_add), or start it as 10001"
        ) from None
    if os.getuid() != uid or os.geteuid() != uid or os.getegid() != gid:
        raise EntrypointError("could not drop privileges")


def _private_copy(name: str, content: bytes) -> str:
    """``content`` in a file only the app user can read, on a tmpfs; rewritten only when it changed
    (the application reloads the signing key when the file's identity changes)."""
    try:
        RUNTIME_SECRETS_DIR.mkdir(mode=0o700, exist_ok=True)
        os.chmod(RUNTIME_SECRETS_DIR, 0o700)
        target = RUNTIME_SECRETS_DIR / name
        if target.exists() and target.read_bytes() == content:
            return str(target)
        fd, tmp = tempfile.mkstemp(dir=RUNTIME_SECRETS_DIR, prefix=f".{name}.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        os.chmod(tmp, 0o400)
        os.replace(tmp, target)
    except OSError as exc:
        raise EntrypointError(f"cannot write the private copy of {name} in {RUNTIME_SECRETS_DIR} ({exc.strerror})") \
            from None
    return str(target)


def prepare_dirs(env: dict[str, str]) -> None:
    directory = env.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        try:
            Path(directory).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EntrypointError(f"PROMETHEUS_MULTIPROC_DIR: cannot create {directory} ({exc.strerror})") from None


def prepare(env: dict[str, str]) -> dict[str, str]:
    """The environment the command gets (``env`` is not modified). As root, drops privileges on the way."""
    env = dict(env)
    values, deferred, remove = collect(env)
    as_root = os.geteuid() == 0
    path_contents: dict[str, bytes] = {}
    if as_root:
        for name in PATH_SECRETS:
            path = env.get(name)
            if path:
                try:
                    path_contents[name] = _read(path, name).encode("utf-8")
                except EntrypointError:
                    deferred.append((name, path))
        drop_privileges()
    for name, path in deferred:
        content = _read(path, name if name in PATH_SECRETS else name + SUFFIX)
        if name in PATH_SECRETS:
            continue  # readable by the app user as it is: the application reads it there
        values[name] = content.rstrip("\r\n")
    for name, content in path_contents.items():
        env[name] = _private_copy(name.lower(), content)
    for key in remove:
        env.pop(key, None)
    env.update(values)
    prepare_dirs(env)
    return env


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("entrypoint: no command given")
    try:
        env = prepare(dict(os.environ))
    except EntrypointError as exc:
        sys.exit(f"entrypoint: {exc}")
    os.execvpe(argv[0], argv, env)  # noqa: S606


if __name__ == "__main__":
    main(sys.argv[1:])
