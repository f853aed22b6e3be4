"""The real MLflow model registry, through MlflowClient.

Only Celery tasks and the reconcile call these; services never talk to MLflow
inside a database transaction (a slow or failing registry must not hold locks
or half-apply a change). Every function is idempotent.
"""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import requests
from django.conf import settings

# MLflow is imported where it is used (in the functions below), not here: importing it takes
# about 3 s, and this module is imported whenever Django starts (governance.tasks imports it),
# so a module-level import would make every ``django.setup()`` (manage.py, tests) pay for it.
if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    # What a registry call can fail with: retried by tasks, then recorded as a failure.
    REGISTRY_ERRORS: tuple[type[BaseException], ...]
else:
    def __getattr__(name: str) -> object:
        """``REGISTRY_ERRORS``, built on first use (it names MlflowException, so it imports MLflow)."""
        if name == "REGISTRY_ERRORS":
            from mlflow.exceptions import MlflowException  # heavy: imported on first use, for start-up time

            errors = (MlflowException, requests.RequestException, OSError)
            globals()["REGISTRY_ERRORS"] = errors
            return errors
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@lru_cache(maxsize=4)
def _client(tracking_uri: str, registry_uri: str) -> MlflowClient:
    from mlflow.tracking import MlflowClient  # heavy: imported on first use, for start-up time

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)


def client() -> MlflowClient:
    return _client(settings.MLFLOW_TRACKING_URI, settings.MLFLOW_REGISTRY_URI)


def alias_version(model: str, alias: str) -> int | None:
    """The version ``alias`` points at, or None when the alias is not set."""
    from mlflow.exceptions import MlflowException  # heavy: imported on first use, for start-up time

    try:
        return int(client().get_model_version_by_alias(model, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def set_alias(model: str, alias: str, version: int) -> None:
    client().set_registered_model_alias(model, alias, str(version))


def delete_alias(model: str, alias: str) -> None:
    if alias_version(model, alias) is not None:
        client().delete_registered_model_alias(model, alias)


def aliases(model: str) -> dict[str, int]:
    """Every alias of a registered model and the version it points at."""
    registered = client().get_registered_model(model)
    return {alias: int(version) for alias, version in (registered.aliases or {}).items()}
