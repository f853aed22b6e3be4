"""The data catalog: datasets and their classification (own level, PII categories, fields).

Every state change is a service here: keyword-only, ``@transaction.atomic``, and
each writes its ledger entry in the same transaction. Refusals raise
``access.errors.AccessError`` (or ``NotPermitted``) with a stable ``code``; a
refused call changes nothing and records nothing. See docs/access.md.

A dataset has its **own** classification (``level``, ``pii_categories``) and
per-field classifications; its ``effective_level`` is the highest of its own
level and its fields' levels, kept by these services.

What follows for the models trained on the data (lineage, the versions'
classification, promotions, violations) is governance's (``governance.services.lineage``):
these services send ``access.signals`` in their transaction and governance's
receivers act in it. A reclassification lets them lock the linked versions before
the dataset row (the lock order of ``access.lock_objects``).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from access import roles, signals
from access.classification import CONFIDENTIAL, LEVELS, highest, rank
from access.errors import AccessError, NotPermitted
from access.lock_objects import dataset_lock
from access.models import PCI_CATEGORIES, PII_CATEGORIES, Dataset, DatasetField
from access.roles import role_names
from access.services.checks import principal_label
from access.services.inputs import clean_name, clean_text
from audit.ledger import Actor, Subject, record

#: The lowest level data carrying any PII category (card_pan included) may be classified at.
PII_MIN_LEVEL = CONFIDENTIAL


CLASSIFIER_ROLES = frozenset({roles.DATA_STEWARD, roles.INFOSEC})


def _level(level: Any) -> str:
    if not isinstance(level, str) or level not in LEVELS:
        raise AccessError(f"classification must be one of {', '.join(LEVELS)}, not {level!r}",
                              code="invalid_level")
    return level


def _categories(categories: Any, level: str) -> list[str]:
    """Sorted, de-duplicated PII categories, checked against the level they are classified at."""
    if isinstance(categories, str | bytes) or not isinstance(categories, Iterable):
        raise AccessError("PII categories must be a list (empty for none)", code="invalid_pii_category")
    found = list(categories)
    unknown = sorted({str(c) for c in found if not isinstance(c, str) or c not in PII_CATEGORIES})
    if unknown:
        raise AccessError(
            f"unknown PII categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; "
            f"categories are {', '.join(PII_CATEGORIES)}",
            code="invalid_pii_category",
        )
    chosen = sorted(set(found))
    if chosen and rank(level) < rank(PII_MIN_LEVEL):
        raise AccessError(
            f"personal data ({', '.join(chosen)}) must be classified {PII_MIN_LEVEL} or higher, not {level}",
            code="level_too_low",
        )
    return chosen


def _require_classifier(user: User, what: str) -> None:
    if not user.is_active or not role_names(user) & CLASSIFIER_ROLES:
        raise NotPermitted(f"only a data steward or InfoSec may {what}")


def dataset_subject(dataset: Dataset) -> Subject:
    return Subject("dataset", dataset.name)


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


@transaction.atomic
def dataset_create(
    *, actor: User, name: str, owner: User, source_uri: str = "", description: str = ""
) -> Dataset:
    """Register a dataset (data steward or InfoSec). It starts unclassified (``public`` until classified).

    Versions already mirrored whose MLflow run names it as an input are linked to it
    (``lineage.linked``); an unclassified dataset never lowers their classification.
    """
    _require_classifier(actor, "register datasets")
    name = clean_name(name, "dataset name")
    source_uri = clean_text(source_uri, "source URI", max_length=1000, required=False)
    description = clean_text(description, "description", required=False)
    if not isinstance(owner, User) or owner.pk is None or not owner.is_active:
        raise AccessError("a dataset's owner must be an active user", code="invalid_owner")
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(name=name, owner=owner, source_uri=source_uri, description=description)
    except IntegrityError:
        raise AccessError(f"a dataset named {name!r} already exists", code="duplicate") from None
    record(
        event_type="dataset.created",
        actor=Actor.user(actor),
        subject=dataset_subject(dataset),
        payload={"dataset": name, "owner": principal_label(owner), "source_uri": source_uri,
                 **({"description": description} if description else {})},
    )
    signals.dataset_created.send(sender=Dataset, dataset=dataset, actor=Actor.user(actor))
    return dataset


def _lock_for_reclassification(dataset: Dataset) -> Dataset:
    """Let what depends on ``dataset`` lock itself first (``signals.dataset_reclassifying``: the versions
    trained on it), then lock the dataset."""
    signals.dataset_reclassifying.send(sender=Dataset, dataset=dataset)
    return dataset_lock(dataset)


@transaction.atomic
def dataset_classify(
    *, actor: User, dataset: Dataset, level: str, pii_categories: list[str], reason: str
) -> Dataset:
    """Set the dataset's own classification and PII categories (data steward or InfoSec).

    Records ``dataset.classified`` with the new effective level, then re-derives the
    classification of every version linked to it. Classifying it again exactly as it
    is changes nothing and records nothing (the dataset is returned as it is); the
    first classification is always recorded, even as ``public``.
    """
    _require_classifier(actor, "classify datasets")
    level = _level(level)
    categories = _categories(pii_categories, level)
    reason = clean_text(reason, "reason")
    dataset = _lock_for_reclassification(dataset)
    if dataset.classified_at is not None and (dataset.level, sorted(dataset.pii_categories)) == (level, categories):
        return dataset
    previous_level = dataset.level if dataset.classified_at is not None else None
    previous_categories = sorted(dataset.pii_categories or [])
    previous_effective = dataset.effective_level
    dataset.level = level
    dataset.pii_categories = categories
    dataset.classified_by = actor
    dataset.classified_at = timezone.now()
    dataset.classification_reason = reason
    dataset.effective_level = _effective_level(dataset)
    dataset.save(update_fields=["level", "pii_categories", "classified_by", "classified_at", "classification_reason",
                                "effective_level"])
    record(
        event_type="dataset.classified",
        actor=Actor.user(actor),
        subject=dataset_subject(dataset),
        payload={"dataset": dataset.name, "level": level, "previous_level": previous_level,
                 "pii_categories": categories, "previous_pii_categories": previous_categories, "reason": reason,
                 "effective_level": dataset.effective_level},
    )
    signals.dataset_reclassified.send(sender=Dataset, dataset=dataset, previous_effective_level=previous_effective,
                                      actor=Actor.user(actor))
    return dataset


@transaction.atomic
def dataset_field_classify(
    *, actor: User, dataset: Dataset, field_name: str, level: str, pii_categories: list[str], reason: str
) -> DatasetField:
    """Classify one field of a dataset, creating it when new (data steward or InfoSec).

    Records ``dataset.field_classified`` with the dataset's new effective level, then
    re-derives the classification of every version linked to the dataset. Classifying
    a field again exactly as it is changes nothing and records nothing.
    """
    _require_classifier(actor, "classify dataset fields")
    field_name = clean_name(field_name, "field name")
    level = _level(level)
    categories = _categories(pii_categories, level)
    reason = clean_text(reason, "reason")
    dataset = _lock_for_reclassification(dataset)
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
    column.classified_by = actor
    column.classified_at = timezone.now()
    column.classification_reason = reason
    column.save()
    previous_effective = dataset.effective_level
    dataset.effective_level = _effective_level(dataset)
    dataset.save(update_fields=["effective_level"])
    record(
        event_type="dataset.field_classified",
        actor=Actor.user(actor),
        subject=dataset_subject(dataset),
        payload={"dataset": dataset.name, "field": field_name, "level": level, "previous_level": previous_level,
                 "pii_categories": categories, "previous_pii_categories": previous_categories, "reason": reason,
                 "effective_level": dataset.effective_level},
    )
    signals.dataset_reclassified.send(sender=Dataset, dataset=dataset, previous_effective_level=previous_effective,
                                      actor=Actor.user(actor))
    return column
