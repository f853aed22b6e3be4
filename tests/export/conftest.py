"""Fixtures of the export tests: a ledger with checkpoints, bundles, tampering, verify.py runs, personas."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

from access import roles
from audit import checkpoints, ledger, offline_verify
from audit.signing import signing_key
from tests.factories import UserFactory
from tests.integration.helpers import ALICE, fill, note

Export = Callable[..., Path]


@pytest.fixture(autouse=True)
def _exports_under_tmp(tmp_path: Path) -> Iterator[None]:
    """Exports written by the task go under a temporary VAR_DIR (with its own trusted-keys file)."""
    var = tmp_path / "var"
    var.mkdir()
    with override_settings(VAR_DIR=var):
        yield


def bulk(n: int, *, subjects: int = 5, prefix: str = "bulk") -> None:
    """Record ``n`` notes about ``model_version:model/<i % subjects>`` (in one statement) and integrate them."""
    ledger.record_many([
        ledger.Event("ledger.note_added", ALICE, ledger.Subject("model_version", f"model/{i % subjects}"),
                     {"text": f"{prefix} {i}"})
        for i in range(n)
    ])
    ledger.integrate()


@pytest.fixture
def history(db: None) -> None:
    """A ledger of ~2,600 entries over a few subjects, with three checkpoints along the way."""
    fill(40, subjects=4)
    checkpoints.checkpoint_create()
    bulk(2500, subjects=5)
    checkpoints.checkpoint_create()
    for i in range(30):
        note(f"late {i}", subject=f"model/{i % 3}")
    ledger.integrate()


@pytest.fixture
def export(tmp_path: Path) -> Export:
    """Run ``export_audit --out <tmp>/<name> ARGS...`` and return the file."""
    counter = iter(range(1000))

    def run(*args: str, name: str | None = None) -> Path:
        out = tmp_path / (name or f"export-{next(counter)}.zip")
        call_command("export_audit", "--out", str(out), *args, stdout=StringIO(), stderr=StringIO())
        return out

    return run


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
        import hashlib

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


@pytest.fixture
def auditor(db: None) -> object:
    return UserFactory(username="alma-auditor", roles=[roles.AUDITOR])


@pytest.fixture
def infosec(db: None) -> object:
    return UserFactory(username="ines-infosec", roles=[roles.INFOSEC])


@pytest.fixture
def isolated_key(tmp_path: Path) -> Iterator[Path]:
    """A dev signing key of the test's own (rotation replaces it), so the repository's key is never touched."""
    key = tmp_path / "var" / "dev-ledger-signing-key.pem"
    signing_key.cache_clear()
    with override_settings(LEDGER_SIGNING_KEY=key, LEDGER_SIGNING_KEY_IS_DEV=True):
        yield key
    signing_key.cache_clear()


# --- a model's promotion story, through the governance services -------------------------------------------------

REASON = "Quarterly retrain with the new merchant-category features"
COMMENT = "Validation report MRV-2026-114 reviewed; metrics within tolerance"


@pytest.fixture(autouse=True)
def _celery_eager() -> Iterator[None]:
    from config.celery import app

    saved = {k: app.conf[k] for k in ("task_always_eager", "task_eager_propagates")}
    app.conf.update(task_always_eager=True, task_eager_propagates=True)
    yield
    app.conf.update(saved)


@pytest.fixture
def story(db: None, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Callable[..., object]) -> dict:
    """fraud-detector: v7 promoted to staging (approved, deployed), v8's request rejected, an out-of-band alias
    violation; plus another model's history and notes that a per-model export must leave out."""
    from audit.ledger import Subject
    from governance import registry
    from governance.services import compliance, promotions
    from tests.governance.factories import (
        FakeRegistry,
        ModelVersionFactory,
        RegisteredModelFactory,
        ensure_defaults,
        make_deployed,
        make_people,
    )

    fake = FakeRegistry()
    monkeypatch.setattr(registry, "set_alias", fake.set_alias)
    monkeypatch.setattr(registry, "delete_alias", fake.delete_alias)
    monkeypatch.setattr(registry, "alias_version", fake.alias_version)
    envs = ensure_defaults()
    people = make_people()
    fill(25, subjects=3, prefix="before")
    fraud = RegisteredModelFactory(name="fraud-detector", description="Card fraud scoring")
    v7 = ModelVersionFactory(model=fraud, version=7, creator="ds-creator")
    v8 = ModelVersionFactory(model=fraud, version=8, creator="ds-creator")
    other = RegisteredModelFactory(name="chargeback-risk")
    other_v = ModelVersionFactory(model=other, version=1, creator="ds-creator")
    for version in (v7, v8, other_v):
        make_deployed(version, envs["dev"], requested_by=people.requester, hours_ago=72, live=False)
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        approved = promotions.promotion_request(actor=people.requester, version=v7, environment=envs["staging"],
                                                reason=REASON)
        promotions.promotion_approve(actor=people.approver, promotion=approved, comment=COMMENT)
    fill(10, subjects=2, prefix="between")
    rejected = promotions.promotion_request(actor=people.requester, version=v8, environment=envs["staging"],
                                            reason=REASON)
    promotions.promotion_reject(actor=people.approver, promotion=rejected, comment="the recall drop is not explained")
    unrelated = promotions.promotion_request(actor=people.requester, version=other_v, environment=envs["staging"],
                                             reason=REASON)
    compliance.violation_record(kind="out_of_band_alias", subject=Subject("registered_model", "fraud-detector"),
                                summary="staging alias moved to 9 outside governance", details={"alias": "staging"},
                                reverted=True)
    ledger.integrate()
    checkpoints.checkpoint_create()
    fill(5, subjects=2, prefix="after")
    return {"people": people, "envs": envs, "model": fraud, "approved": approved, "rejected": rejected,
            "unrelated": unrelated, "registry": fake}
