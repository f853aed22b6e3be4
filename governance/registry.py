"""The real MLflow model registry, through MlflowClient: the adapter the rest of governance uses.

Aliases are read and moved here (``alias_version``, ``set_alias``, ``delete_alias``, ``aliases``), and
registered models and versions are listed and read (``fetch_model``, ``iter_models``, ``iter_versions``)
for the mirror (``governance.services.registry_mirror``) to write.

Only Celery tasks and the reconcile call these; services never talk to MLflow
inside a database transaction (a slow or failing registry must not hold locks
or half-apply a change). Every function is idempotent.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

import requests
from django.conf import settings

# MLflow is imported where it is used (in the functions below), not here: importing it takes
# about 3 s, and this module is imported whenever Django starts (governance.tasks imports it),
# so a module-level import would make every ``django.setup()`` (manage.py, tests) pay for it.
if TYPE_CHECKING:
    from mlflow.exceptions import MlflowException
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


#: Page size of MLflow searches (models and versions).
PAGE_SIZE = 200


@dataclass(frozen=True)
class ModelData:
    """A registered model as MLflow describes it."""

    name: str
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None


def from_millis(value: Any) -> datetime | None:
    if value in (None, 0):
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def is_not_found(exc: MlflowException) -> bool:
    return exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


def _is_prompt(tags: Mapping[str, str]) -> bool:
    return str(tags.get("mlflow.prompt.is_prompt", "")).lower() == "true"


def model_data(rm: Any) -> ModelData:
    return ModelData(
        name=rm.name,
        description=rm.description or "",
        tags={str(k): str(v) for k, v in (rm.tags or {}).items()},
        created_at=from_millis(rm.creation_timestamp),
    )


def fetch_model(name: str) -> ModelData | None:
    """The registered model ``name`` in MLflow, or None when it does not exist (or is a prompt)."""
    from mlflow.exceptions import MlflowException  # heavy: imported on first use, for start-up time

    try:
        rm = client().get_registered_model(name)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise
    data = model_data(rm)
    return None if _is_prompt(data.tags) else data


def iter_models() -> Iterator[ModelData]:
    """Every registered model in MLflow (prompts excluded), page by page."""
    mlflow = client()
    token: Any = None
    while True:
        page = mlflow.search_registered_models(max_results=PAGE_SIZE, page_token=token)
        for rm in page:
            data = model_data(rm)
            if not _is_prompt(data.tags):
                yield data
        token = page.token
        if not token:
            return


def _name_filter(name: str) -> str | None:
    if "'" not in name:
        return f"name='{name}'"
    if '"' not in name:
        return f'name="{name}"'
    return None  # both quote characters: list every version and filter here


def iter_versions(name: str) -> Iterator[Any]:
    """Every (not deleted) version of model ``name`` in MLflow, page by page."""
    mlflow = client()
    filter_string = _name_filter(name)
    token: Any = None
    while True:
        page = mlflow.search_model_versions(filter_string, max_results=PAGE_SIZE, page_token=token)
        for mv in page:
            if mv.name == name:
                yield mv
        token = page.token
        if not token:
            return


#: The MLflow webhook events the endpoint handles (``governance.services.webhooks.MODEL_ENTITIES``): each
#: names a registered model that is then re-synced. Prompts and budget policies are not ours.
WEBHOOK_EVENTS = (
    "registered_model.created",
    "model_version.created",
    "model_version_tag.set",
    "model_version_tag.deleted",
    "model_version_alias.created",
    "model_version_alias.deleted",
)
WEBHOOK_NAME = "governance-ledger"


def webhook_register(*, url: str, secret: str, name: str = WEBHOOK_NAME,
                     events: tuple[str, ...] = WEBHOOK_EVENTS) -> tuple[str, str, list[str]]:
    """Make MLflow hold exactly one active webhook of ours: ``(created|updated, its id, ids of duplicates deleted)``.

    Ours are the webhooks named ``name`` or pointing at ``url``. None: one is created. Else the oldest
    is updated (url, events, secret, ACTIVE: the secret cannot be read back, so it is always written,
    which also rotates it) and the others are deleted. Idempotent: running it again changes nothing
    but the stored secret's ciphertext. A crash between the update and a deletion leaves a duplicate
    that the next run deletes; MLflow signs with the same secret meanwhile, so both deliver valid
    signatures and the endpoint stores each delivery once (by its delivery id).
    """
    from mlflow.entities.webhook import WebhookEvent, WebhookStatus  # heavy: imported on first use

    mlflow = client()
    # MLflow types events as a Literal union; ours are checked against it by from_str (ValueError if unknown).
    wanted: list[Any] = [WebhookEvent.from_str(cast(Any, event)) for event in events]
    ours = []
    page_token = None
    while True:
        page = mlflow.list_webhooks(max_results=100, page_token=page_token)
        ours += [w for w in page if w.name == name or w.url == url]
        page_token = page.token
        if not page_token:
            break
    if not ours:
        created = mlflow.create_webhook(name=name, url=url, events=wanted, secret=secret,
                                        description="ML governance ledger: registry changes (docs/deploy.md)",
                                        status=WebhookStatus.ACTIVE)
        return "created", created.webhook_id, []
    ours.sort(key=lambda w: (w.creation_timestamp or 0, w.webhook_id))
    keep, extra = ours[0], ours[1:]
    mlflow.update_webhook(keep.webhook_id, name=name, url=url, events=wanted, secret=secret,
                          status=WebhookStatus.ACTIVE)
    for duplicate in extra:
        mlflow.delete_webhook(duplicate.webhook_id)
    return "updated", keep.webhook_id, [w.webhook_id for w in extra]
