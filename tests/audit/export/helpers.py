"""Helpers of the export tests: bundles taken apart and re-zipped, verify.py run in and out of process.

Plain functions; the fixtures are in tests/audit/export/conftest.py and tests/exports.py.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

from audit import ledger, offline_verify
from tests.audit.integration.helpers import ALICE

Export = Callable[..., Path]


def bulk(n: int, *, subjects: int = 5, prefix: str = "bulk") -> None:
    """Record ``n`` notes about ``model_version:model/<i % subjects>`` (in one statement) and integrate them."""
    ledger.record_many([
        ledger.Event("ledger.note_added", ALICE, ledger.Subject("model_version", f"model/{i % subjects}"),
                     {"text": f"{prefix} {i}"})
        for i in range(n)
    ])
    ledger.integrate()


def members(bundle: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(bundle) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def rezip(bundle: Path, out: Path, changes: dict[str, bytes | None], *, fix_manifest: bool = True) -> Path:
    """A copy of ``bundle`` with members replaced (None removes one), the manifest re-hashed by default.

    Re-hashing is what a careful forger does; without it the manifest check alone would catch the change.
    """
    files = members(bundle)
    for name, data in changes.items():
        if data is None:
            files.pop(name, None)
        else:
            files[name] = data
    if fix_manifest:
        manifest = json.loads(files["manifest.json"])
        manifest["files"] = {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for name, data in sorted(files.items()) if name != "manifest.json"
        }
        files["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True).encode()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out


def verify(bundle: Path, *keys: str) -> offline_verify.Report:
    """verify.py's report on ``bundle``, which must be the same in one process and with the proof worker."""
    single = offline_verify.verify_bundle(str(bundle), list(keys) or None, jobs=1)
    double = offline_verify.verify_bundle(str(bundle), list(keys) or None, jobs=2)
    assert double.as_dict() == single.as_dict()
    return single


def verify_subprocess(bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python verify.py bundle.zip`` as a recipient runs it: a directory holding only the bundle and the
    verify.py extracted from it, Python in isolated mode (no project code on the path)."""
    work = bundle.parent / f"recipient-{bundle.stem}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    shutil.copy(bundle, work / "bundle.zip")
    with zipfile.ZipFile(work / "bundle.zip") as zf:
        (work / "verify.py").write_bytes(zf.read("verify.py"))
    return subprocess.run(
        [sys.executable, "-I", "verify.py", "bundle.zip", *args],
        cwd=work, capture_output=True, text=True, timeout=120, check=False,
    )
