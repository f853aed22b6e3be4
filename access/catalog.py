"""The data catalog: datasets and their classification, lineage to model versions, and propagation.

Every state change is a service here: keyword-only, ``@transaction.atomic``, and
each writes its ledger entry in the same transaction. Refusals raise
``governance.errors.GovernanceError`` (or ``NotPermitted``) with a stable
``code``; a refused call changes nothing and records nothing. See
docs/access.md.

* A dataset has its **own** classification (``level``, ``pii_categories``) and
  per-field classifications; its ``effective_level`` is the highest of its own
  level and its fields' levels, kept by these services.
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
linked to it (in primary-key order), then the dataset, then any version linked
to it in the meantime; whoever makes a new link locks the version, then the
dataset. So a reclassification and a new link serialise on the dataset row, and
whichever commits second sees the other: no version is left at a stale level.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from access import roles
from access.checks import principal_label
from access.classification import CONFIDENTIAL, LEVELS, allows, highest, rank
from access.models import PCI_CATEGORIES, PII_CATEGORIES, Dataset, DatasetField, Lineage
from access.roles import role_names
from audit.ledger import Actor, Subject, record
from governance.errors import GovernanceError, NotPermitted
from governance.models import ComplianceViolation, LiveDeployment, ModelVersion, PromotionRequest
from governance.services import common, compliance, promotions

logger = logging.getLogger(__name__)

#: The actor of lineage work nobody in particular asked for (reconciles, tasks).
LINEAGE_ACTOR = Actor.system("lineage")
#: MLflow ``mlflow.data.context`` values that mean the data was used for evaluation; anything else is training.
EVALUATION_CONTEXTS = frozenset({"evaluation", "eval", "validation", "test", "testing"})
#: The lowest level data carrying any PII category (card_pan included) may be classified at.
PII_MIN_LEVEL = CONFIDENTIAL
CLASSIFIER_ROLES = frozenset({roles.DATA_STEWARD, roles.INFOSEC})

Role = Lineage.Role
Source = Lineage.Source


# --- validation --------------------------------------------------------------------------------


def _text(value: Any, what: str, *, max_length: int = 5000, required: bool = True) -> str:
    if value is not None and not isinstance(value, str):
        raise GovernanceError(f"the {what} must be text", code="invalid")
    text = (value or "").strip()
    if required and not text:
        raise GovernanceError(f"a {what} is required", code="required")
    if len(text) > max_length:
        raise GovernanceError(f"the {what} is longer than {max_length} characters", code="too_long")
    return text


def _name(value: Any, what: str) -> str:
    name = _text(value, what, max_length=200)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise GovernanceError(f"the {what} must not contain control characters", code="invalid_name")
    return name


def _level(level: Any) -> str:
    if not isinstance(level, str) or level not in LEVELS:
        raise GovernanceError(f"classification must be one of {', '.join(LEVELS)}, not {level!r}",
                              code="invalid_level")
    return level


def _categories(categories: Any, level: str) -> list[str]:
    """Sorted, de-duplicated PII categories, checked against the level they are classified at."""
    if isinstance(categories, str | bytes) or not isinstance(categories, Iterable):
        raise GovernanceError("PII categories must be a list (empty for none)", code="invalid_pii_category")
    found = list(categories)
    unknown = sorted({str(c) for c in found if not isinstance(c, str) or c not in PII_CATEGORIES})
    if unknown:
        raise GovernanceError(
            f"unknown PII categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; "
            f"categories are {', '.join(PII_CATEGORIES)}",
            code="invalid_pii_category",
        )
    chosen = sorted(set(found))
    if chosen and rank(level) < rank(PII_MIN_LEVEL):
        raise GovernanceError(
            f"personal data ({', '.join(chosen)}) must be classified {PII_MIN_LEVEL} or higher, not {level}",
            code="level_too_low",
        )
    return chosen


def _require_classifier(user: User, what: str) -> None:
    if not user.is_active or not role_names(user) & CLASSIFIER_ROLES:
        raise NotPermitted(f"only a data steward or InfoSec may {what}")


def _role(role: Any) -> str:
    if role not in Role.values:
        raise GovernanceError(f"lineage role must be one of {', '.join(Role.values)}", code="invalid_role")
    return str(Role(role).value)


def _source(source: Any) -> str:
    if source not in Source.values:
        raise GovernanceError(f"lineage source must be one of {', '.join(Source.values)}", code="invalid_source")
    return str(Source(source).value)


def dataset_subject(dataset: Dataset) -> Subject:
    return Subject("dataset", dataset.name)


# --- reads ---------------------------------------------------------------------------------------


def effective_pii_categories(dataset: Dataset) -> list[str]:
    """The dataset's own PII categories and its fields', sorted."""
    found = set(dataset.pii_categories or [])
    for categories in dataset.fields.values_list("pii_categories", flat=True):
        found.update(categories or [])
    return sorted(found)


def is_pci(dataset: Dataset) -> bool:
    """Whether the dataset (or one of its fields) carries PCI cardholder data."""
    return any(c in PCI_CATEGORIES for c in effective_pii_categories(dataset))


def _effective_level(dataset: Dataset) -> str:
    return highest([dataset.level, *dataset.fields.values_list("level", flat=True)])


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


# --- datasets ------------------------------------------------------------------------------------


def _versions_naming(name: str) -> list[int]:
    """Ids of mirrored versions whose MLflow dataset inputs name ``name``."""
    if connection.features.supports_json_field_contains:
        ids = ModelVersion.objects.filter(datasets__contains=[{"name": name}]).values_list("pk", flat=True)
        return sorted(ids)
    found = []
    for pk, datasets in ModelVersion.objects.values_list("pk", "datasets").iterator():
        if any(isinstance(d, dict) and d.get("name") == name for d in datasets or []):
            found.append(pk)
    return sorted(found)


@transaction.atomic
def dataset_create(
    *, user: User, name: str, owner: User, source_uri: str = "", description: str = ""
) -> Dataset:
    """Register a dataset (data steward or InfoSec). It starts unclassified (``public`` until classified).

    Versions already mirrored whose MLflow run names it as an input are linked to it
    (``lineage.linked``); an unclassified dataset never lowers their classification.
    """
    _require_classifier(user, "register datasets")
    name = _name(name, "dataset name")
    source_uri = _text(source_uri, "source URI", max_length=1000, required=False)
    description = _text(description, "description", required=False)
    if not isinstance(owner, User) or owner.pk is None or not owner.is_active:
        raise GovernanceError("a dataset's owner must be an active user", code="invalid_owner")
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(name=name, owner=owner, source_uri=source_uri, description=description)
    except IntegrityError:
        raise GovernanceError(f"a dataset named {name!r} already exists", code="duplicate") from None
    record(
        event_type="dataset.created",
        actor=Actor.user(user),
        subject=dataset_subject(dataset),
        payload={"dataset": name, "owner": principal_label(owner), "source_uri": source_uri,
                 **({"description": description} if description else {})},
    )
    for version in ModelVersion.objects.filter(pk__in=_versions_naming(name)).order_by("pk"):
        lineage_link_from_mlflow(version=version, actor=Actor.user(user))
    return dataset


def _lock_versions(ids: set[int]) -> list[ModelVersion]:
    return list(
        ModelVersion.objects.select_for_update(of=("self",)).select_related("model").filter(pk__in=ids).order_by("pk")
    )


def _lock_for_reclassification(dataset: Dataset) -> tuple[Dataset, list[ModelVersion]]:
    """Lock the versions linked to ``dataset`` (pk order), then the dataset itself.

    A link made while we waited is visible once we hold the dataset (the linking
    transaction held it until it committed): its version is locked too, so it is
    re-derived with the rest.
    """
    def linked() -> set[int]:
        return set(Lineage.objects.filter(dataset_id=dataset.pk).values_list("version_id", flat=True))

    ids = linked()
    versions = _lock_versions(ids)
    locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
    late = linked() - ids
    if late:
        versions = sorted([*versions, *_lock_versions(late)], key=lambda v: v.pk)
    return locked, versions


def _propagate(dataset: Dataset, versions: list[ModelVersion], previous_effective: str, actor: Actor) -> None:
    """Re-derive the classification of every version linked to ``dataset`` (each records only if it changes)."""
    if dataset.effective_level != previous_effective:
        reason = f"lineage: dataset {dataset.name} reclassified to {dataset.effective_level}"
    else:
        reason = f"lineage: dataset {dataset.name} classified ({dataset.effective_level})"
    for version in versions:
        model_version_reclassify_from_lineage(version=version, reason=reason, actor=actor)


@transaction.atomic
def dataset_classify(
    *, user: User, dataset: Dataset, level: str, pii_categories: list[str], reason: str
) -> Dataset:
    """Set the dataset's own classification and PII categories (data steward or InfoSec).

    Records ``dataset.classified`` with the new effective level, then re-derives the
    classification of every version linked to it. Classifying it again exactly as it
    is changes nothing and records nothing (the dataset is returned as it is); the
    first classification is always recorded, even as ``public``.
    """
    _require_classifier(user, "classify datasets")
    level = _level(level)
    categories = _categories(pii_categories, level)
    reason = _text(reason, "reason")
    dataset, versions = _lock_for_reclassification(dataset)
    if dataset.classified_at is not None and (dataset.level, sorted(dataset.pii_categories)) == (level, categories):
        return dataset
    previous_level = dataset.level if dataset.classified_at is not None else None
    previous_categories = sorted(dataset.pii_categories or [])
    previous_effective = dataset.effective_level
    dataset.level = level
    dataset.pii_categories = categories
    dataset.classified_by = user
    dataset.classified_at = timezone.now()
    dataset.classification_reason = reason
    dataset.effective_level = _effective_level(dataset)
    dataset.save(update_fields=["level", "pii_categories", "classified_by", "classified_at", "classification_reason",
                                "effective_level"])
    record(
        event_type="dataset.classified",
        actor=Actor.user(user),
        subject=dataset_subject(dataset),
        payload={"dataset": dataset.name, "level": level, "previous_level": previous_level,
                 "pii_categories": categories, "previous_pii_categories": previous_categories, "reason": reason,
                 "effective_level": dataset.effective_level},
    )
    _propagate(dataset, versions, previous_effective, Actor.user(user))
    return dataset


@transaction.atomic
def dataset_field_classify(
    *, user: User, dataset: Dataset, field_name: str, level: str, pii_categories: list[str], reason: str
) -> DatasetField:
    """Classify one field of a dataset, creating it when new (data steward or InfoSec).

    Records ``dataset.field_classified`` with the dataset's new effective level, then
    re-derives the classification of every version linked to the dataset. Classifying
    a field again exactly as it is changes nothing and records nothing.
    """
    _require_classifier(user, "classify dataset fields")
    field_name = _name(field_name, "field name")
    level = _level(level)
    categories = _categories(pii_categories, level)
    reason = _text(reason, "reason")
    dataset, versions = _lock_for_reclassification(dataset)
    column = DatasetField.objects.filter(dataset=dataset, name=field_name).first()
    if column is not None and column.classified_at is not None and (
        (column.level, sorted(column.pii_categories)) == (level, categories)
    ):
        return column
    if column is None:
        column = DatasetField(dataset=dataset, name=field_name)
        previous_level = None
        previous_categories: list[str] = []
    else:
        previous_level = column.level if column.classified_at is not None else None
        previous_categories = sorted(column.pii_categories or [])
    column.level = level
    column.pii_categories = categories
    column.classified_by = user
    column.classified_at = timezone.now()
    column.classification_reason = reason
    column.save()
    previous_effective = dataset.effective_level
    dataset.effective_level = _effective_level(dataset)
    dataset.save(update_fields=["effective_level"])
    record(
        event_type="dataset.field_classified",
        actor=Actor.user(user),
        subject=dataset_subject(dataset),
        payload={"dataset": dataset.name, "field": field_name, "level": level, "previous_level": previous_level,
                 "pii_categories": categories, "previous_pii_categories": previous_categories, "reason": reason,
                 "effective_level": dataset.effective_level},
    )
    _propagate(dataset, versions, previous_effective, Actor.user(user))
    return column


# --- lineage -------------------------------------------------------------------------------------


def _lock_version(version: ModelVersion) -> ModelVersion:
    return ModelVersion.objects.select_for_update(of=("self",)).select_related("model").get(pk=version.pk)


def _link(*, actor: Actor, version: ModelVersion, dataset: Dataset, role: str, source: str) -> tuple[Lineage, bool]:
    """Link a (locked) version to a dataset. A new link locks the dataset row first, so a reclassification
    of the dataset either sees the link (and re-derives the version) or commits before we read its level."""
    existing = Lineage.objects.filter(version=version, dataset_id=dataset.pk, role=role).first()
    if existing is not None:
        return existing, False
    dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
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
        from access.selectors import may_declare_lineage

        if not may_declare_lineage(user, version.model.owner_id):
            raise NotPermitted("only a data steward, InfoSec or the model's owner may declare lineage")
    role = _role(role)
    source = _source(source)
    version = _lock_version(version)
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
    version = _lock_version(version)
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


# --- the version's classification and what follows from it -----------------------------------------


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
    reason = _text(reason, "reason")
    version = _lock_version(version)
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
