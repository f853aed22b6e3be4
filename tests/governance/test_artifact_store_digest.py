"""The artifact digest computed from a REAL MLflow artifact store (``mlflow server --serve-artifacts`` on 127.0.0.1).

The versions' artifacts live behind ``mlflow-artifacts:`` URIs, so the product must list them,
check their sizes, download them into a temporary directory and hash them there.
"""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import mlflow
import pytest
from django.utils import timezone
from mlflow.tracking import MlflowClient

from access import roles
from audit.models import Entry, PendingEntry
from governance import artifact_digest, registry
from governance.models import Environment, ModelVersion, PromotionRequest, RegisteredModel
from governance.services import environments, promotions, registered_models, registry_mirror
from tests.governance.mlflow_helpers import MlflowStore, catalogued, entries, user

pytestmark = pytest.mark.django_db

Capture = Callable[..., AbstractContextManager[list[Callable[[], Any]]]]
MLFLOW = Path(sys.executable).parent / "mlflow"


@dataclass
class Server:
    url: str
    root: Path
    process: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An MLflow tracking server serving its artifacts, for this module (skipped only if it cannot start)."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(root / "server.log", "wb")
    process = subprocess.Popen(
        [str(MLFLOW), "server", "--backend-store-uri", f"sqlite:///{root / 'm.db'}",
         "--artifacts-destination", str(root / "art"), "--serve-artifacts", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, cwd=root,
        # A version whose artifacts name another artifact server (one nobody listens at, in a test).
        env={**os.environ, "MLFLOW_ALLOWED_HOST_ADDRESSED_ARTIFACT_SCHEMES": "mlflow-artifacts"},
    )
    try:
        deadline = time.monotonic() + 120
        while not _healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (root / "server.log").read_text(errors="replace")[-500:]
                pytest.skip(f"the MLflow tracking server could not start on 127.0.0.1: {tail}")
            time.sleep(0.5)
        yield Server(url=url, root=root, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture
def store(server: Server, settings: Any, request: pytest.FixtureRequest) -> Iterator[MlflowStore]:
    """Governance and ``mlflow.*`` on the server; the experiment's artifacts are ``mlflow-artifacts:`` URIs."""
    settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = server.url
    settings.MLFLOW_EVIDENCE_REFRESH = True  # a registry to re-read evidence from (tests/conftest.py)
    registry._client.cache_clear()
    previous = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    mlflow.set_tracking_uri(server.url)
    mlflow.set_registry_uri(server.url)
    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    experiment_id = client.create_experiment(f"digest-{hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:12]}")
    try:
        yield MlflowStore(uri=server.url, root=server.root, client=client, experiment_id=experiment_id)
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
        registry._client.cache_clear()


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A model name of this test only (the server's registry lives for the module)."""
    return "fraud-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:12]


FILES = {"model/MLmodel": "flavors: {}\n", "model/weights.txt": "w=0.42", "model/sub/vocab.txt": "a\nb\nc\n"}


def _register(store: MlflowStore, name: str, files: dict[str, str] = FILES) -> tuple[str, int]:
    catalogued()
    run_id = store.run(metrics={"auc": 0.91}, files=files)
    return run_id, store.register(name, run_id, tags={"team": "risk"})


def _stored(server: Server, store: MlflowStore, run_id: str) -> Path:
    """Where the server keeps the run's ``model`` artifacts (what an attacker with store access rewrites)."""
    uri = store.client.get_run(run_id).info.artifact_uri
    assert uri.startswith("mlflow-artifacts:/"), uri
    return server.root / "art" / uri.removeprefix("mlflow-artifacts:/") / "model"


def _version(name: str) -> ModelVersion:
    return ModelVersion.objects.select_related("model").get(model__name=name, version=1)


def _written() -> int:
    return PendingEntry.objects.count() + Entry.objects.count()


def test_a_version_in_the_artifact_store_is_downloaded_and_digested_like_the_same_local_bytes(
    server: Server, store: MlflowStore, name: str, tmp_path: Path
) -> None:
    run_id, _ = _register(store, name)
    assert store.client.get_model_version_download_uri(name, 1) == f"runs:/{run_id}/model"  # resolved by MLflow
    temp_before = set(Path(tempfile.gettempdir()).glob("governance-digest-*"))

    registry_mirror.registered_model_sync(name)

    mirrored = _version(name)
    local = tmp_path / "model"
    for path, text in FILES.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    assert mirrored.artifact_digest == artifact_digest.directory_digest(local) != ""
    assert mirrored.artifact_digest == artifact_digest.directory_digest(_stored(server, store, run_id))
    assert (mirrored.artifact_digest_error, mirrored.artifact_listing[:7]) == ("", "sha256:")
    assert mirrored.artifact_digest_at is not None
    # The download is always removed.
    assert set(Path(tempfile.gettempdir()).glob("governance-digest-*")) == temp_before


def _request_with_one_approval(name: str, envs: dict[str, Environment], capture: Capture) -> PromotionRequest:
    owner, infosec = user("omar", roles.MODEL_OWNER), user("ines", roles.INFOSEC)
    model = RegisteredModel.objects.get(name=name)
    registered_models.model_owner_set(actor=infosec, model=model, owner=owner, reason="the fraud team owns it")
    environments.policy_set(actor=infosec, environment=envs["dev"], model=model,
                            rules={"approvals": [{"group": roles.APPROVER, "count": 2}],
                                   "gates": [{"type": "artifact_digest"}]})
    request = promotions.promotion_request(actor=owner, version=_version(name), environment=envs["dev"], reason="ship")
    promotions.promotion_approve(actor=user("adam", roles.APPROVER), promotion=request, comment="digest checked")
    assert promotions.approval_status(request)["approvals"] == {"approver": 1}
    return request


def test_rewritten_bytes_in_the_store_change_the_digest_and_make_approvals_stale(
    server: Server, store: MlflowStore, name: str, envs: dict[str, Environment],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    run_id, _ = _register(store, name)
    registry_mirror.registered_model_sync(name)
    request = _request_with_one_approval(name, envs, django_capture_on_commit_callbacks)
    before = _version(name).artifact_digest
    assert request.evidence["gates"][0]["passed"]

    # An attacker with write access to the artifact store swaps the weights (another size).
    (_stored(server, store, run_id) / "weights.txt").write_text("w=0.99999")
    registry_mirror.registered_model_sync(name)

    after = _version(name)
    assert after.artifact_digest not in ("", before)
    [changed] = entries("model.version_changed", version=1)
    assert changed.payload["changes"]["artifact_digest"] == {"from": before, "to": after.artifact_digest}
    request.refresh_from_db()
    assert request.state == PromotionRequest.State.PENDING
    assert promotions.approval_status(request)["approvals"] == {"approver": 0}
    assert len(entries("promotion.evidence_changed")) == 1


def test_an_unchanged_listing_is_not_downloaded_again_until_the_recheck(
    server: Server, store: MlflowStore, name: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, _ = _register(store, name)
    registry_mirror.registered_model_sync(name)
    digest = _version(name).artifact_digest
    downloads: list[str] = []
    real = artifact_digest._directory_digest
    monkeypatch.setattr(artifact_digest, "_directory_digest", lambda *a: downloads.append("hashed") or real(*a))

    # Same names and sizes, other bytes: within MLFLOW_DIGEST_RECHECK_HOURS the digest is kept (no download).
    (_stored(server, store, run_id) / "weights.txt").write_text("w=0.66")
    size = len(entries())
    registry_mirror.registered_model_sync(name)
    assert (_version(name).artifact_digest, downloads, len(entries())) == (digest, [], size)

    # Once the digest is older than the recheck interval the bytes are read again and the swap is caught.
    ModelVersion.objects.filter(pk=_version(name).pk).update(
        artifact_digest_at=timezone.now() - timedelta(hours=settings.MLFLOW_DIGEST_RECHECK_HOURS, minutes=1))
    registry_mirror.registered_model_sync(name)
    assert downloads == ["hashed"] and _version(name).artifact_digest not in ("", digest)
    [changed] = entries("model.version_changed", version=1)
    assert set(changed.payload["changes"]) == {"artifact_digest"}


def test_artifacts_over_the_size_limit_are_not_downloaded_and_the_gate_says_why(
    server: Server, store: MlflowStore, name: str, envs: dict[str, Environment], settings: Any,
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Capture,
) -> None:
    settings.MLFLOW_DIGEST_MAX_BYTES = 10
    _register(store, name)
    from mlflow.store.artifact.artifact_repo import ArtifactRepository

    def no_download(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("over the limit, nothing is downloaded")

    monkeypatch.setattr(ArtifactRepository, "download_artifacts", no_download)
    registry_mirror.registered_model_sync(name)

    mirrored = _version(name)
    assert mirrored.artifact_digest == ""
    assert mirrored.artifact_digest_error == "artifacts larger than the 10 bytes limit (MLFLOW_DIGEST_MAX_BYTES)"
    request = _request_with_one_approval(name, envs, django_capture_on_commit_callbacks)
    [gate] = request.evidence["gates"]
    assert not gate["passed"] and "artifacts larger than the 10 bytes limit" in gate["detail"]


def test_too_many_files_are_refused_before_any_download(
    server: Server, store: MlflowStore, name: str, settings: Any
) -> None:
    settings.MLFLOW_DIGEST_MAX_FILES = 2
    _register(store, name)
    registry_mirror.registered_model_sync(name)
    assert (_version(name).artifact_digest, _version(name).artifact_digest_error) == (
        "", "more than 2 files (MLFLOW_DIGEST_MAX_FILES)")


def test_an_unreachable_artifact_store_is_a_reason_not_a_crash(
    server: Server, store: MlflowStore, name: str, envs: dict[str, Environment],
    django_capture_on_commit_callbacks: Capture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's own backoff would take minutes
    # The registry answers, but the version's artifacts are on a store nobody listens at.
    catalogued()
    experiment = store.client.create_experiment(
        f"{name}-elsewhere", artifact_location=f"mlflow-artifacts://127.0.0.1:{_free_port()}/gone")
    run = store.client.create_run(experiment)
    store.client.set_terminated(run.info.run_id)
    store.client.create_registered_model(name)
    store.client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)

    report = registry_mirror.registered_model_sync(name)

    assert report.errors == [] and report.versions_created == 1
    mirrored = _version(name)
    assert mirrored.artifact_digest == ""
    assert mirrored.artifact_digest_error.startswith("artifact store unreachable: ")
    request = _request_with_one_approval(name, envs, django_capture_on_commit_callbacks)
    [gate] = request.evidence["gates"]
    assert not gate["passed"] and "artifact store unreachable" in gate["detail"]


def test_a_stopped_server_gives_the_digest_an_unreachable_reason(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the whole MLflow server down, the digest step returns a reason (the reconcile's own calls retry)."""
    settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = f"http://127.0.0.1:{_free_port()}"
    registry._client.cache_clear()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    try:
        mv = type("MV", (), {"name": "fraud-detector", "version": "1", "source": "", "run_id": ""})()
        result = artifact_digest.artifact_digest_of(mv, None)
    finally:
        registry._client.cache_clear()
    assert result.digest == "" and result.error.startswith("artifact store unreachable: ")


