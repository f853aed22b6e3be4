"""Lineage: which datasets a model version was trained or evaluated on, and the classification that follows.

Moved up from access's data catalog: a model version is trained on datasets, so the link and
what follows from it (the version's ``data_classification``, re-evaluated promotions,
compliance violations) belong to governance. The catalog (``access.services.datasets``) tells
governance about new and reclassified datasets through ``access.signals``;
``governance.access_hooks`` connects the receivers, which call the services here in the
catalog service's transaction.

* **Lineage** links a model version to the datasets it was trained or evaluated
  on, from its MLflow run's dataset inputs (``source="mlflow"``) or declared.
* A version with lineage takes its ``data_classification`` from it: the highest
  effective level of its linked datasets. While the lineage is *incomplete* (an
  MLflow input not in the catalog, a linked dataset never classified) lineage
  only ever raises the level, never lowers it.
* Reclassifying a dataset re-evaluates every version linked to it: pending
  promotions are re-evaluated (gates re-run, approvals given on the old evidence
  go stale) and a version live where its new level is not allowed is flagged as a
  compliance violation (never rolled back automatically).

Locking: whoever changes a dataset's classification first locks every version
linked to it (in primary-key order, ``versions_linked_lock``), then the dataset, then any
version linked to it in the meantime; whoever makes a new link locks the version, then the
dataset. So a reclassification and a new link serialise on the dataset row, and
whichever commits second sees the other: no version is left at a stale level.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet

from access.classification import LEVELS, allows, highest
from access.lock_objects import dataset_lock
from access.models import Dataset
from access.roles import DATA_STEWARD, role_names
from access.selectors import may_declare_lineage
from access.services.inputs import clean_text
from audit.ledger import Actor, record
from governance import selectors
from governance.errors import GovernanceError, NotPermitted
from governance.models import ComplianceViolation, Lineage, LiveDeployment, ModelVersion, PromotionRequest
from governance.services import common, compliance, promotions

logger = logging.getLogger(__name__)


#: The actor of lineage work nobody in particular asked for (reconciles, tasks).
LINEAGE_ACTOR = Actor.system("lineage")


#: MLflow ``mlflow.data.context`` values that mean the data was used for evaluation; anything else is training.
EVALUATION_CONTEXTS = frozenset({"evaluation", "eval", "validation", "test", "testing"})


Role = Lineage.Role


Source = Lineage.Source


def _role(role: Any) -> str:
    if role not in Role.values:
        raise GovernanceError(f"lineage role must be one of {', '.join(Role.values)}", code="invalid_role")
    return str(Role(role).value)


def _source(source: Any) -> str:
    if source not in Source.values:
        raise GovernanceError(f"lineage source must be one of {', '.join(Source.values)}", code="invalid_source")
    return str(Source(source).value)


def mlflow_inputs(version: ModelVersion) -> list[tuple[str, str]]:
    """(dataset name, lineage role) of each MLflow dataset input of the version's run, without repeats."""
    seen: list[tuple[str, str]] = []
    for item in version.datasets or []:
        if not isinstance(item, dict):
            continue
        name = str(item.get("name") or "").strip()
        if not name:
            continue
        context = str(item.get("context") or "").strip().lower()
        role = Role.EVALUATION.value if context in EVALUATION_CONTEXTS else Role.TRAINING.value
        if (name, role) not in seen:
            seen.append((name, role))
    return seen


@dataclass(frozen=True)
class LineageState:
    """What a version's lineage says about the classification of its data."""

    #: Highest effective level of the linked datasets; None when the version has no lineage.
    level: str | None
    #: Linked dataset names, sorted.
    datasets: tuple[str, ...]
    #: Dataset names of the MLflow run's inputs, sorted.
    inputs: tuple[str, ...]
    #: MLflow inputs that are not linked (not in the catalog), sorted.
    unknown: tuple[str, ...]
    #: Linked datasets that were never classified, sorted.
    unclassified: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """The run names its inputs and every one is a linked dataset, and every linked dataset is classified."""
        return bool(self.inputs) and not self.unknown and not self.unclassified

    def classification(self, current: str) -> str:
        """The classification the version should have, given the one it has (``""``: unknown).

        A run input the catalog does not know makes it unknown (whatever was declared or tagged),
        unless linked data already makes it the top level: nobody can say what the unknown data
        holds, and a lower bound is not a classification.
        """
        if self.unknown and self.level != LEVELS[-1]:
            return ""
        if self.level is None:
            return current  # no lineage: a declared classification stands
        if self.complete or self.level == LEVELS[-1]:
            return self.level
        if current in LEVELS:
            return highest([current, self.level])  # incomplete: raise, never lower
        return current  # unknown stays unknown: a lower bound is not a classification


def lineage_state(version: ModelVersion) -> LineageState:
    """The version's lineage as it stands (read-only; lock the version first for a stable answer)."""
    links = list(
        Lineage.objects.filter(version_id=version.pk).values_list(
            "dataset__name", "dataset__effective_level", "dataset__classified_at"
        )
    )
    linked = {name for name, _, _ in links}
    inputs = {name for name, _ in mlflow_inputs(version)}
    return LineageState(
        level=highest([level for _, level, _ in links]) if links else None,
        datasets=tuple(sorted(linked)),
        inputs=tuple(sorted(inputs)),
        unknown=tuple(sorted(inputs - linked)),
        unclassified=tuple(sorted({name for name, _, at in links if at is None})),
    )


def versions_naming(name: str) -> list[int]:
    """Ids of mirrored versions whose MLflow dataset inputs name ``name``."""
    if connection.features.supports_json_field_contains:
        ids = ModelVersion.objects.filter(datasets__contains=[{"name": name}]).values_list("pk", flat=True)
        return sorted(ids)
    found = []
    for pk, datasets in ModelVersion.objects.values_list("pk", "datasets").iterator():
        if any(isinstance(d, dict) and d.get("name") == name for d in datasets or []):
            found.append(pk)
    return sorted(found)


def versions_lock(ids: set[int]) -> list[ModelVersion]:
    return list(
        ModelVersion.objects.select_for_update(of=("self",)).select_related("model").filter(pk__in=ids).order_by("pk")
    )


def propagate(dataset: Dataset, versions: list[ModelVersion], previous_effective: str, actor: Actor) -> None:
    """Re-derive the classification of every version linked to ``dataset`` (each records only if it changes)."""
    if dataset.effective_level != previous_effective:
        reason = f"lineage: dataset {dataset.name} reclassified to {dataset.effective_level}"
    else:
        reason = f"lineage: dataset {dataset.name} classified ({dataset.effective_level})"
    for version in versions:
        model_version_reclassify_from_lineage(version=version, reason=reason, actor=actor)


def linked_version_ids(dataset: Dataset) -> set[int]:
    return set(Lineage.objects.filter(dataset_id=dataset.pk).values_list("version_id", flat=True))


def versions_linked_lock(dataset: Dataset) -> list[ModelVersion]:
    """Lock the versions linked to ``dataset`` (pk order). Before the dataset is locked, and again after: a
    link made while the catalog waited for the dataset row is visible then, and its version is locked too
    (rows already held are not waited for)."""
    return versions_lock(linked_version_ids(dataset))


def lineage_versions_visible_to(user: User) -> QuerySet[ModelVersion]:
    """Model versions whose lineage ``user`` may see and name: the versions of the models they may see, and all
    of them for data stewards (they keep the catalog and its lineage)."""
    if not user.is_active:
        return ModelVersion.objects.none()
    if role_names(user) & {DATA_STEWARD}:
        return ModelVersion.objects.all()
    return selectors.model_versions_visible_to(user)


def version_lock(version: ModelVersion) -> ModelVersion:
    return ModelVersion.objects.select_for_update(of=("self",)).select_related("model").get(pk=version.pk)


def _link(*, actor: Actor, version: ModelVersion, dataset: Dataset, role: str, source: str) -> tuple[Lineage, bool]:
    """Link a (locked) version to a dataset. A new link locks the dataset row first, so a reclassification
    of the dataset either sees the link (and re-derives the version) or commits before we read its level."""
    existing = Lineage.objects.filter(version=version, dataset_id=dataset.pk, role=role).first()
    if existing is not None:
        return existing, False
    dataset = dataset_lock(dataset)
    try:
        with transaction.atomic():
            link = Lineage.objects.create(version=version, dataset=dataset, role=role, source=source)
    except IntegrityError:  # linked concurrently (the version's row lock prevents it; a fallback)
        return Lineage.objects.get(version=version, dataset=dataset, role=role), False
    record(
        event_type="lineage.linked",
        actor=actor,
        subject=common.version_subject(version),
        payload={"model": version.model.name, "version": version.version, "dataset": dataset.name, "role": role,
                 "source": source},
    )
    return link, True


@transaction.atomic
def lineage_link(
    *, actor: Actor, version: ModelVersion, dataset: Dataset, role: str = Role.TRAINING,
    source: str = Source.DECLARED, user: User | None = None,
) -> tuple[Lineage, bool]:
    """Link ``version`` to a dataset it was trained (or evaluated) on. Returns the link and whether it is new.

    A new link records ``lineage.linked`` and re-derives the version's classification;
    an existing one records nothing. A person declaring lineage (``user``) must be a
    data steward, InfoSec, or the owner of the version's model; the MLflow sync passes
    no user (it reports what MLflow recorded).
    """
    if user is not None:
        if not may_declare_lineage(user, version.model.owner_id):
            raise NotPermitted("only a data steward, InfoSec or the model's owner may declare lineage")
    role = _role(role)
    source = _source(source)
    version = version_lock(version)
    link, created = _link(actor=actor, version=version, dataset=dataset, role=role, source=source)
    if created:
        model_version_reclassify_from_lineage(
            version=version, actor=actor, reason=f"lineage: linked to dataset {dataset.name} ({role})"
        )
    return link, created


@dataclass
class LineageReport:
    """What ``lineage_link_from_mlflow`` found for one version."""

    version: str
    linked: list[str] = field(default_factory=list)  # "name (role)" of the links made now
    existing: list[str] = field(default_factory=list)  # "name (role)" of links that were already there
    unknown: list[str] = field(default_factory=list)  # MLflow inputs not in the catalog (skipped)
    reclassified: bool = False


@transaction.atomic
def lineage_link_from_mlflow(*, version: ModelVersion, actor: Actor = LINEAGE_ACTOR) -> LineageReport:
    """Link ``version`` to the catalogued datasets its MLflow run's dataset inputs name (``source="mlflow"``).

    The role comes from the input's ``mlflow.data.context`` tag (evaluation contexts:
    ``evaluation``, ``eval``, ``validation``, ``test``, ``testing``; anything else is
    training). Names not in the catalog are skipped and reported. Then the version's
    classification is re-derived from its lineage. Idempotent.
    """
    version = version_lock(version)
    report = LineageReport(version=version.ref)
    inputs = mlflow_inputs(version)
    known = {d.name: d for d in Dataset.objects.filter(name__in={name for name, _ in inputs})}
    for name, role in inputs:
        dataset = known.get(name)
        if dataset is None:
            if name not in report.unknown:
                report.unknown.append(name)
            continue
        _, created = _link(actor=actor, version=version, dataset=dataset, role=role, source=Source.MLFLOW.value)
        (report.linked if created else report.existing).append(f"{name} ({role})")
    if report.unknown:
        logger.info("%s: MLflow dataset inputs not in the catalog: %s", version.ref, ", ".join(report.unknown))
        _flag_uncatalogued(version, sorted(report.unknown), actor)
    names = sorted({name for name, _ in inputs if name in known})
    reason = (
        f"lineage: MLflow dataset inputs {', '.join(names)}" if names else "lineage: declared datasets"
    )
    report.reclassified = model_version_reclassify_from_lineage(version=version, actor=actor, reason=reason)
    return report


def _flag_uncatalogued(version: ModelVersion, names: list[str], actor: Actor) -> None:
    """InfoSec sees a version trained on data the catalog does not know (once per version and set of names)."""
    seen = ComplianceViolation.objects.filter(
        kind=ComplianceViolation.Kind.UNCATALOGUED_LINEAGE, subject_type="model_version", subject_id=version.ref
    ).values_list("details", flat=True)
    if any(isinstance(d, dict) and d.get("datasets") == names for d in seen):
        return
    compliance.violation_record(
        kind=ComplianceViolation.Kind.UNCATALOGUED_LINEAGE,
        subject=common.version_subject(version),
        summary=f"{version.ref} was trained on datasets the catalog does not know ({', '.join(names)}); its "
        "classification is unknown and no environment below the top level admits it until a data steward "
        "registers and classifies them.",
        details={"model": version.model.name, "version": version.version, "datasets": names},
        actor=actor,
    )


def _already_flagged(version: ModelVersion, environment: str, level: str) -> bool:
    return any(
        v.details.get("environment") == environment and v.details.get("level") == level
        for v in ComplianceViolation.objects.filter(
            kind=ComplianceViolation.Kind.CLASSIFICATION, subject_type="model_version", subject_id=version.ref
        )
    )


def _flag_live(version: ModelVersion, reason: str) -> int:
    """A compliance violation for each environment where the version is live but its data is not allowed."""
    flagged = 0
    level = version.data_classification
    for live in LiveDeployment.objects.filter(version=version).select_related("environment").order_by("pk"):
        ceiling = live.environment.max_data_classification
        if level not in LEVELS or allows(ceiling, level) or _already_flagged(version, live.environment.name, level):
            continue
        compliance.violation_record(
            kind=ComplianceViolation.Kind.CLASSIFICATION,
            subject=common.version_subject(version),
            summary=f"{version.ref} is live in {live.environment.name} but was trained on {level} data; "
            f"{live.environment.name} allows up to {ceiling}. It was not rolled back: roll it back or review "
            "the classification.",
            details={"model": version.model.name, "version": version.version, "environment": live.environment.name,
                     "level": level, "max_data_classification": ceiling, "promotion_id": live.promotion_id,
                     "reason": reason},
        )
        flagged += 1
    return flagged


@transaction.atomic
def model_version_reclassify_from_lineage(*, version: ModelVersion, reason: str, actor: Actor) -> bool:
    """Set the version's ``data_classification`` from its lineage. Returns whether it changed.

    On a change: records ``model.version_classified`` (with ``reason``) and re-evaluates the
    version's pending promotion requests (their data_classification gate re-runs and
    approvals on the old evidence go stale). Changed or not, a ``classification``
    compliance violation is recorded for each environment where the version is live but
    its level is not allowed (once per version, environment and level). Nothing is rolled back.
    """
    reason = clean_text(reason, "reason")
    version = version_lock(version)
    target = lineage_state(version).classification(version.data_classification)
    if target == version.data_classification:
        _flag_live(version, reason)  # e.g. deployed after it was reclassified; recorded once anyway
        return False
    previous = version.data_classification
    version.data_classification = target
    version.save(update_fields=["data_classification"])
    record(
        event_type="model.version_classified",
        actor=actor,
        subject=common.version_subject(version),
        payload={"model": version.model.name, "version": version.version, "level": target,
                 "previous_level": previous or None, "reason": reason},
    )
    for request in PromotionRequest.objects.filter(version=version, state=PromotionRequest.State.PENDING).order_by(
        "pk"
    ):
        promotions.promotion_reevaluate(promotion=request, actor=actor)
    _flag_live(version, reason)
    return True
