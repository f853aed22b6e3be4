"""The layers of docs/architecture.md hold: the import contract, and the modules that must run alone.

The contract itself is pyproject.toml's ``[tool.importlinter]`` (config on top; delivery code above
the domain cores; governance above access above audit). It is run here as ``lint-imports`` is in
.ci/run, so ``python3.11 dev.py test`` fails on an upward import too. grimp, which builds the graph,
reads every import statement: function-level and ``TYPE_CHECKING`` imports count.

Three modules must run without the rest of the project, which import-linter can say only in part
(it can forbid named packages, not "anything outside the standard library"):
``audit/offline_verify.py`` is copied into every export bundle as ``verify.py`` and needs only the
standard library and ``cryptography``; ``audit/receipt_verify.py`` (deployment receipts, checked at a
serving platform's start-up) only that and ``audit.offline_verify``; the witness (``audit/witness/``) runs
as its own process, without Django, on the few pure modules it shares with the ledger.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOT_PACKAGES = ("audit", "access", "governance", "integrations", "web", "config", "govern")
# What the witness process may load of ours: pure code (Merkle proofs, signed notes, cosignatures,
# canonical JSON), none of which touches settings or the database.
# What the govern client may load of the server's code: the standalone verifier and the pure artifact digest.
GOVERN_SHARES = {"audit.offline_verify", "audit.receipt_verify", "governance.directory_digest"}
WITNESS_SHARES = {"audit.canonical", "audit.cosignature", "audit.merkle", "audit.note", "audit.offline_verify"}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*ROOT_PACKAGES, include_external_packages=True, cache_dir=None)


def _loads(graph: grimp.ImportGraph, module: str) -> tuple[set[str], set[str]]:
    """Everything `module` (a package: with its submodules) imports, directly or not: (ours, others')."""
    upstream = graph.find_upstream_modules(module, as_package=True)
    ours = {m for m in upstream if m.split(".")[0] in ROOT_PACKAGES}
    return ours, upstream - ours


def _lint_imports() -> str:
    beside = Path(sys.executable).with_name("lint-imports")
    return str(beside) if beside.exists() else (shutil.which("lint-imports") or "lint-imports")


def test_the_import_contract_is_kept() -> None:
    result = subprocess.run(
        [_lint_imports(), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_offline_verifier_needs_only_the_standard_library_and_cryptography(graph: grimp.ImportGraph) -> None:
    ours, others = _loads(graph, "audit.offline_verify")
    assert ours == set(), "verify.py ships alone in every bundle: it may not import the project"
    assert {m for m in others if m not in sys.stdlib_module_names} == {"cryptography"}


def test_the_receipt_verifier_needs_only_the_offline_verifier_and_cryptography(graph: grimp.ImportGraph) -> None:
    ours, others = _loads(graph, "audit.receipt_verify")
    assert ours == {"audit.offline_verify"}, "a serving platform runs it without the rest of the project"
    assert {m for m in others if m not in sys.stdlib_module_names} == {"cryptography"}


def test_importing_the_receipt_verifier_loads_no_django() -> None:
    code = "import sys, audit.receipt_verify; print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr


def test_the_witness_runs_without_django(graph: grimp.ImportGraph) -> None:
    ours, others = _loads(graph, "audit.witness")
    assert ours <= WITNESS_SHARES, f"the witness loads {sorted(ours - WITNESS_SHARES)}"
    assert {m for m in others if m not in sys.stdlib_module_names} <= {"cryptography", "rfc8785"}


def test_the_domain_packages_import_nothing_on_their_own(graph: grimp.ImportGraph) -> None:
    # Importing audit.witness or audit.offline_verify runs audit/__init__.py first; so do the other
    # domains' packages for any of their modules: each __init__ is a docstring, nothing more.
    for package in ("audit", "access", "governance"):
        assert graph.find_modules_directly_imported_by(package) == set(), f"{package}/__init__.py imports"


def test_the_cli_imports_only_the_standalone_modules(graph: grimp.ImportGraph) -> None:
    ours, others = _loads(graph, "govern")
    server = {m for m in ours if not m.startswith("govern")}
    assert server <= GOVERN_SHARES, f"govern loads {sorted(server - GOVERN_SHARES)}"
    assert {m for m in others if m not in sys.stdlib_module_names} <= {"cryptography"}


def test_importing_the_cli_and_its_standalone_modules_loads_no_django() -> None:
    # Run as a CI machine does: a fresh interpreter, nothing imported before.
    code = (
        "import sys, govern.cli, audit.offline_verify, audit.receipt_verify, governance.directory_digest; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'django', 'rest_framework', 'celery', 'mlflow', 'config', 'web', 'access', 'integrations'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
