"""A real MLflow registry for the tests (fixtures): MLflow's SQLAlchemy store on a temporary SQLite file.

Creating MLflow's schema takes seconds (its Alembic migrations), so one empty database is made
per session and copied for each test: every test gets its own registry, artifact directory and
experiment, and nothing is shared. Registered for the whole suite by ``pytest_plugins`` in
tests/conftest.py; ``MlflowStore`` and the helpers are in tests/governance/mlflow_helpers.py.
MLflow is imported inside the fixtures (heavy, about 3 s): a run that uses no registry never loads it.
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from governance import registry

if TYPE_CHECKING:
    from tests.governance.mlflow_helpers import MlflowStore


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow database with the current schema (made once per session)."""
    from mlflow.tracking import MlflowClient  # heavy: imported only by the tests that use a registry

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_store(
    mlflow_template: Path, tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MlflowStore]:
    """A fresh real MLflow registry that governance (settings.MLFLOW_*_URI) and ``mlflow.*`` both use."""
    import mlflow  # heavy: imported only by the tests that use a registry
    from mlflow.tracking import MlflowClient

    from tests.governance.mlflow_helpers import MlflowStore

    root = tmp_path / "mlflow"
    root.mkdir()
    shutil.copy(mlflow_template, root / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    settings.MLFLOW_TRACKING_URI = uri
    settings.MLFLOW_REGISTRY_URI = uri
    settings.MLFLOW_EVIDENCE_REFRESH = True  # a registry to re-read evidence from (tests/conftest.py)
    registry._client.cache_clear()
    previous = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment_id = client.create_experiment("governance-tests", artifact_location=(root / "artifacts").as_uri())
    try:
        yield MlflowStore(uri=uri, root=root, client=client, experiment_id=experiment_id)
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
        registry._client.cache_clear()
