"""docs/security.md names, for every threat, the test that performs the attack: each must exist.

A renamed or deleted attack test would otherwise leave the threat model pointing at nothing.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security.md"
# `tests/x.py::test_a` or `tests/x.py::Class::test_a`, and the shorthand `::test_b` for the same file.
_REF = re.compile(r"`(tests/[\w/]+\.py)?::([\w:]+)(?:\[[^\]`]*\])?`")


def _names(path: Path) -> set[str]:
    """Test functions of a module, as ``name`` and ``Class::name``."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    found.add(f"{node.name}::{item.name}")
    return found


def referenced_tests() -> list[tuple[str, str]]:
    refs: list[tuple[str, str]] = []
    for line in DOC.read_text().splitlines():
        current: str | None = None
        for match in _REF.finditer(line):
            current = match.group(1) or current
            assert current is not None, f"a '::' reference with no file before it on the line: {line[:120]}"
            refs.append((current, match.group(2)))
    return refs


def test_every_attack_test_named_in_the_threat_model_exists() -> None:
    refs = referenced_tests()
    assert len(refs) > 50  # the table is there and was parsed
    missing = []
    cache: dict[str, set[str]] = {}
    for path, name in refs:
        module = ROOT / path
        if not module.exists():
            missing.append(f"{path} (no such file)")
            continue
        names = cache.setdefault(path, _names(module))
        if name not in names:
            missing.append(f"{path}::{name}")
    assert not missing, "docs/security.md names tests that do not exist:\n" + "\n".join(missing)
