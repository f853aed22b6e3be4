"""A real MLflow registry for the tests: MLflow's SQLAlchemy store on a temporary SQLite file, in-process.

The fixtures (``mlflow_store``) are in tests/mlflow_registry.py; this module holds
``MlflowStore`` and the plain helpers of the tests that use it.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from django.contrib.auth.models import User
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from audit.ledger import integrate
from audit.models import Entry
from tests.factories import UserFactory

MODEL_CARD = "Gradient-boosted scorer for card-not-present payments, trained on 2025 transactions."


@dataclass
class MlflowStore:
    """One test's MLflow: tracking and registry on ``uri``, artifacts under ``root / "artifacts"``."""

    uri: str
    root: Path
    client: MlflowClient
    experiment_id: str

    def run(
        self,
        *,
        metrics: Mapping[str, float | Sequence[float]] | None = None,
        params: Mapping[str, Any] | None = None,
        files: Mapping[str, str] | None = None,
        dataset: bool = True,
        user: str = "carol",
    ) -> str:
        """A finished run: metrics (a sequence logs each value in turn), params, a dataset input, artifact files."""
        with mlflow.start_run(experiment_id=self.experiment_id, tags={"mlflow.user": user}) as run:
            for key, values in (metrics or {}).items():
                for step, value in enumerate(values if isinstance(values, Sequence) else [values]):
                    mlflow.log_metric(key, value, step=step)
            if params:
                mlflow.log_params(dict(params))
            if dataset:
                frame = pd.DataFrame({"amount": [12.5, 80.0, 3.2, 410.0], "is_fraud": [0.0, 0.0, 0.0, 1.0]})
                data = mlflow.data.from_pandas(
                    frame, source="s3://datasets/card-transactions-2025.parquet", name="card-transactions",
                    targets="is_fraud",
                )
                mlflow.log_input(data, context="training")
            for path, text in (files if files is not None else {"model/weights.txt": "w=0.42"}).items():
                mlflow.log_text(text, path)
        return str(run.info.run_id)

    def register(
        self,
        name: str,
        run_id: str | None,
        *,
        tags: Mapping[str, str] | None = None,
        description: str = MODEL_CARD,
        source: str | None = None,
        model_tags: Mapping[str, str] | None = None,
        model_description: str = "",
    ) -> int:
        """Register a version of ``name`` (creating the registered model the first time)."""
        try:
            self.client.create_registered_model(name, tags=dict(model_tags or {}), description=model_description)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        mv = self.client.create_model_version(
            name, source or f"runs:/{run_id}/model", run_id=run_id, tags=dict(tags or {}), description=description
        )
        return int(mv.version)

    def artifact_dir(self, run_id: str, path: str = "model") -> Path:
        uri = self.client.get_run(run_id).info.artifact_uri
        return Path(uri.removeprefix("file://")) / path

    def aliases(self, name: str) -> dict[str, int]:
        return {a: int(v) for a, v in self.client.get_registered_model(name).aliases.items()}


def reference_digest(path: Path) -> str:
    """The documented artifact digest, computed independently of governance.artifact_digest."""
    outer = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        outer.update(f"F {rel}\0{hashlib.sha256(file.read_bytes()).hexdigest()}\n".encode())
    return "sha256:" + outer.hexdigest()


def entries(event_type: str | None = None, **payload: Any) -> list[Entry]:
    """Integrated ledger entries (integrating first), optionally of one type and matching payload values."""
    integrate()
    qs = Entry.objects.order_by("seq")
    if event_type is not None:
        qs = qs.filter(event_type=event_type)
    return [e for e in qs if all(e.payload.get(k) == v for k, v in payload.items())]


def ledger_size() -> int:
    integrate()
    return Entry.objects.count()


def user(username: str, *roles: str) -> User:
    return UserFactory(username=username, roles=list(roles))


def catalogued(name: str = "card-transactions", level: str = "internal") -> Any:
    """Register and classify the dataset ``MlflowStore.run`` names as its input (as a data steward).

    Versions take their classification from the catalog only: an uncatalogued input makes it unknown.
    """
    from access.models import Dataset
    from access.services.datasets import dataset_classify, dataset_create

    found = Dataset.objects.filter(name=name).first()
    if found is not None:
        return found
    steward = User.objects.filter(username="dora").first() or user("dora", "data-steward")
    dataset = dataset_create(actor=steward, name=name, owner=steward, source_uri="s3://datasets/")
    return dataset_classify(actor=steward, dataset=dataset, level=level, pii_categories=[],
                                    reason="catalogued for the tests")
