"""What governance gives the access domain, through access's own interfaces (access imports nothing of ours).

* Resource kinds: registered models and environments are objects grants apply to
  (``access.resources.ResourceKind``): their guardian tables, how their classification,
  sensitivity and owner are found, and what a viewer may see of them.
* Receivers of ``access.signals``: a dataset registered or reclassified in the catalog
  links and re-derives the model versions trained on it (``governance.services.lineage``), in the
  catalog service's transaction.

``connect()`` is called once from ``GovernanceConfig.ready``.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from django.db.models import QuerySet

from access import signals
from access.classification import CONFIDENTIAL, INTERNAL, highest, rank
from access.models import Dataset
from access.resources import ResourceKind, register
from audit.ledger import Actor
from governance.models import (
    Environment,
    EnvironmentGroupObjectPermission,
    EnvironmentUserObjectPermission,
    ModelVersion,
    RegisteredModel,
    RegisteredModelGroupObjectPermission,
    RegisteredModelUserObjectPermission,
)
from governance.selectors import models_visible_to
from governance.services import lineage

# A registered model with no classified version counts as internal.
MODEL_DEFAULT_LEVEL = INTERNAL
# The longest grant on an environment, whatever the data its models were trained on.
ENVIRONMENT_MAX_DAYS = 90


def model_levels(model_ids: Iterable[int]) -> dict[int, str]:
    """The highest data classification of each registered model's versions (``internal`` when none)."""
    ids = list(model_ids)
    levels: dict[int, list[str]] = {pk: [] for pk in ids}
    rows = ModelVersion.objects.filter(model_id__in=ids).exclude(data_classification="")
    for model_id, level in rows.values_list("model_id", "data_classification"):
        levels[model_id].append(level)
    return {pk: highest(found, default=MODEL_DEFAULT_LEVEL) for pk, found in levels.items()}


def _model_level(model: RegisteredModel) -> str:
    return model_levels([model.pk])[model.pk]


def _model_sensitivity(model: RegisteredModel) -> str | None:
    level = max((v for v in model.versions.values_list("data_classification", flat=True) if v), key=rank,
                default=None)
    return level if level is not None and rank(level) >= rank(CONFIDENTIAL) else None


def _models_visible_to(viewer: Any) -> QuerySet[RegisteredModel]:
    return models_visible_to(viewer) if viewer is not None else RegisteredModel.objects.all()


def _environment_level(environment: Environment) -> str:
    return environment.max_data_classification


def _environment_levels(ids: Collection[int]) -> dict[int, str]:
    return dict(Environment.objects.filter(pk__in=ids).values_list("pk", "max_data_classification"))


def _environment_sensitivity(environment: Environment) -> str | None:
    return str(environment.max_data_classification or "") or None


def _environments_visible_to(viewer: Any) -> QuerySet[Environment]:
    return Environment.objects.all()  # configuration every signed-in caller may read


REGISTERED_MODELS = ResourceKind(
    name="registered_model", model=RegisteredModel, permission_app="governance",
    user_permissions=RegisteredModelUserObjectPermission, group_permissions=RegisteredModelGroupObjectPermission,
    level=_model_level, levels=model_levels, sensitivity=_model_sensitivity, visible_to=_models_visible_to,
)
ENVIRONMENTS = ResourceKind(
    name="environment", model=Environment, permission_app="governance",
    user_permissions=EnvironmentUserObjectPermission, group_permissions=EnvironmentGroupObjectPermission,
    level=_environment_level, levels=_environment_levels, sensitivity=_environment_sensitivity,
    visible_to=_environments_visible_to, owner_field=None, max_days=ENVIRONMENT_MAX_DAYS, noun="an environment",
)


# --- the catalog's signals -----------------------------------------------------------------------------------


def _dataset_created(sender: Any, *, dataset: Dataset, actor: Actor, **kwargs: Any) -> None:
    """Link the mirrored versions whose MLflow run names the new dataset as an input (``lineage.linked``); an
    unclassified dataset never lowers their classification."""
    for version in ModelVersion.objects.filter(pk__in=lineage.versions_naming(dataset.name)).order_by("pk"):
        lineage.lineage_link_from_mlflow(version=version, actor=actor)


def _dataset_reclassifying(sender: Any, *, dataset: Dataset, **kwargs: Any) -> None:
    lineage.versions_linked_lock(dataset)


def _dataset_reclassified(sender: Any, *, dataset: Dataset, previous_effective_level: str, actor: Actor,
                          **kwargs: Any) -> None:
    lineage.propagate(dataset, lineage.versions_linked_lock(dataset), previous_effective_level, actor)


def connect() -> None:
    """Register governance's resource kinds and connect its receivers (idempotent)."""
    register(REGISTERED_MODELS)
    register(ENVIRONMENTS)
    signals.dataset_created.connect(_dataset_created, dispatch_uid="governance.services.lineage.dataset_created")
    signals.dataset_reclassifying.connect(_dataset_reclassifying,
                                            dispatch_uid="governance.services.lineage.lock_versions")
    signals.dataset_reclassified.connect(_dataset_reclassified, dispatch_uid="governance.services.lineage.propagate")
