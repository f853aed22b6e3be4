"""verify.py with a proof worker (``--jobs 2``): the same report as in one process, and a fallback to one
process whenever the worker finds anything."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from audit import offline_verify
from audit.signing import current_verifier_key
from tests.audit.export.helpers import Export, members, rezip

pytestmark = pytest.mark.django_db


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """For each pass over the entries, whether it had a proof worker (a one-process pass by pages that gave
    up, whose work is redone line by line, is not counted: tests/audit/verifying/test_verify_py_pages.py)."""
    seen: list[bool] = []
    original = offline_verify.BundleVerifier._entries_pass

    def spy(self: offline_verify.BundleVerifier, head: tuple[int, bytes], worker: Any, pages: bool = False) -> None:
        if worker is not None or not pages:
            seen.append(worker is not None)
            original(self, head, worker, pages)
            return
        try:
            original(self, head, worker, pages)
        except offline_verify._Fallback:
            raise
        seen.append(False)

    monkeypatch.setattr(offline_verify.BundleVerifier, "_entries_pass", spy)
    return seen


def both(bundle: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    single = offline_verify.verify_bundle(str(bundle), jobs=1).as_dict()
    double = offline_verify.verify_bundle(str(bundle), jobs=2).as_dict()
    return single, double


def test_a_genuine_bundle_is_verified_by_two_processes_with_the_same_report(
        history: None, export: Export, passes: list[bool]) -> None:
    bundle = export()

    single, double = both(bundle)

    assert passes == [False, True]  # one pass each: the worker's answer was taken
    assert double == single and double["ok"] and double["entries"] > 2500


def test_a_bad_proof_makes_the_worker_give_up_and_one_process_names_it(
        history: None, export: Export, tmp_path: Path, passes: list[bool]) -> None:
    bundle = export()
    lines = members(bundle)["proofs.jsonl"].splitlines()
    proof = json.loads(lines[2000])
    proof["inclusion"][0] = ("0" if proof["inclusion"][0][0] != "0" else "1") + proof["inclusion"][0][1:]
    lines[2000] = json.dumps(proof, separators=(",", ":")).encode()
    tampered = rezip(bundle, tmp_path / "t.zip", {"proofs.jsonl": b"\n".join(lines) + b"\n"})

    single, double = both(tampered)

    assert passes == [False, True, False]  # the worker's pass was dropped and redone in one process
    assert double == single
    assert f"proof seq {proof['seq']}: the inclusion proof does not lead to the root of checkpoint.txt" \
        in double["failures"]


@pytest.mark.parametrize("change", ["extra proof line", "missing proof line", "proofs out of order"])
def test_proof_lines_that_do_not_pair_up_fall_back_to_the_same_report(
        history: None, export: Export, tmp_path: Path, passes: list[bool], change: str) -> None:
    bundle = export()
    lines = members(bundle)["proofs.jsonl"].splitlines()
    if change == "extra proof line":
        lines.append(lines[-1])
    elif change == "missing proof line":
        del lines[-1]
    else:
        lines[10], lines[11] = lines[11], lines[10]
    tampered = rezip(bundle, tmp_path / "t.zip", {"proofs.jsonl": b"\n".join(lines) + b"\n"})

    single, double = both(tampered)

    assert passes == [False, True, False]
    assert double == single and not double["ok"]


def test_an_unreadable_entry_line_keeps_its_proof_line_paired(
        history: None, export: Export, tmp_path: Path, passes: list[bool]) -> None:
    # given an entry line that is not an entry at all: one process skips it and its proof line
    bundle = export()
    lines = members(bundle)["entries.jsonl"].splitlines()
    lines[50] = b'{"body": "nonsense"}'
    tampered = rezip(bundle, tmp_path / "t.zip", {"entries.jsonl": b"\n".join(lines) + b"\n"})

    single, double = both(tampered)

    # then the worker skips the same proof line: every other proof verifies, its answer stands
    assert passes == [False, True]
    assert double == single
    assert "entry on line 51 of entries.jsonl: not an entry line {body, entry_hash}" in double["failures"]


def test_a_small_bundle_uses_one_process_unless_asked(
        history: None, export: Export, passes: list[bool], monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = export()

    assert offline_verify.verify_bundle(str(bundle)).ok
    monkeypatch.setattr(offline_verify, "_PARALLEL_MIN_BYTES", 1)
    monkeypatch.setattr(offline_verify, "_usable_cpus", lambda: 2)
    # A thread an earlier test left behind in this process must not decide the case under test.
    monkeypatch.setattr(offline_verify.threading, "active_count", lambda: 1)
    assert offline_verify.verify_bundle(str(bundle)).ok
    monkeypatch.setattr(offline_verify.threading, "active_count", lambda: 3)  # (a server's process)
    assert offline_verify.verify_bundle(str(bundle)).ok
    monkeypatch.setattr(offline_verify.threading, "active_count", lambda: 1)
    monkeypatch.setattr(offline_verify, "_usable_cpus", lambda: 1)
    assert offline_verify.verify_bundle(str(bundle)).ok

    assert passes == [False, True, False, False]


def test_no_worker_process_means_one_process(
        history: None, export: Export, passes: list[bool], monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = export()

    def refuse(self: Any) -> None:
        raise OSError("no processes here")

    monkeypatch.setattr("multiprocessing.process.BaseProcess.start", refuse)
    report = offline_verify.verify_bundle(str(bundle), jobs=2)

    assert report.ok and passes == [False]


def test_the_command_line_takes_jobs(history: None, export: Export) -> None:
    bundle = export()
    out = {}
    for jobs in ("1", "2"):
        result = subprocess.run([sys.executable, "-I", offline_verify.__file__, str(bundle), "--json", "--jobs", jobs,
                                 "--trusted-key", current_verifier_key()],
                                capture_output=True, text=True, check=False, timeout=120)
        assert result.returncode == 0, result.stderr
        out[jobs] = json.loads(result.stdout)
    assert out["1"] == out["2"] and out["1"]["ok"]
    bad = subprocess.run([sys.executable, "-I", offline_verify.__file__, str(bundle), "--jobs", "3"],
                         capture_output=True, text=True, check=False, timeout=120)
    assert bad.returncode == 2
