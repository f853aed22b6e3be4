"""The lock files pin what pyproject.toml asks for, so what is tested and shipped is what was locked.

``requirements.lock`` (the application: the container image installs it) and
``requirements-dev.lock`` (the application plus the dev extra: ``dev.py`` installs it) are
written by ``uv pip compile`` (the command is in each file's header and in the README). This
test needs no network: it checks that each direct dependency is pinned once per Python
marker, inside its declared range, with hashes, and that both locks agree on every package
they share. A dependency added to pyproject.toml without re-locking fails here.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^ ;\\]+)(?: ; (?P<marker>[^\\]+?))?\s*\\?$")
# The interpreter the project supports (requires-python): markers are evaluated for it on Linux.
TARGET = {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux",
          "platform_system": "Linux", "implementation_name": "cpython", "platform_python_implementation": "CPython",
          "os_name": "posix", "platform_machine": "x86_64", "extra": ""}


def pins(path: Path) -> dict[str, Version]:
    """Package → version for the target interpreter; every pin must carry at least one hash."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out: dict[str, Version] = {}
    for i, line in enumerate(lines):
        match = PIN.match(line)
        if match is None:
            continue
        following = "".join(lines[i + 1 : i + 3])
        assert "--hash=sha256:" in following, f"{path.name}: {line.split()[0]} has no hash"
        marker = match["marker"]
        if marker and not Marker(marker).evaluate(TARGET):
            continue
        name = canonicalize_name(match["name"])
        assert name not in out, f"{path.name}: {name} is pinned twice for Python 3.11 on Linux"
        out[name] = Version(match["version"])
    return out


def declared(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = list(project["dependencies"])
    for extra in extras:
        names += project["optional-dependencies"][extra]
    return [Requirement(r) for r in names]


@pytest.mark.parametrize(("lock", "extras"), [("requirements.lock", ()), ("requirements-dev.lock", ("dev",))])
def test_every_declared_dependency_is_locked_inside_its_range(lock: str, extras: tuple[str, ...]) -> None:
    locked = pins(ROOT / lock)
    for requirement in declared(*extras):
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is declared in pyproject.toml but not locked in {lock}: re-lock"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"{lock} pins {name}=={locked[name]}, outside pyproject.toml's {requirement}: re-lock")


def test_the_two_locks_agree_on_every_shared_package() -> None:
    app, dev = pins(ROOT / "requirements.lock"), pins(ROOT / "requirements-dev.lock")
    differ = {name: (app[name], dev[name]) for name in app.keys() & dev.keys() if app[name] != dev[name]}
    assert not differ, f"the app and dev locks pin different versions: {differ}"
    assert app.keys() <= dev.keys(), f"in the app lock only: {sorted(app.keys() - dev.keys())}"


def test_a_range_violation_is_detected(tmp_path: Path) -> None:
    # The check above must be able to fail: a lock pinning Django outside "django>=5.2,<5.3".
    lock = tmp_path / "requirements.lock"
    lock.write_text("django==4.2.1 \\\n    --hash=sha256:" + "0" * 64 + "\n", encoding="utf-8")
    requirement = Requirement("django>=5.2,<5.3")
    assert not requirement.specifier.contains(pins(lock)["django"])
