"""The data catalog (access.services.datasets): datasets, their classification, and lineage to model versions.

Personas (tests/personas.py): ``steward`` (data-steward),
``infosec``, ``requester`` (a model owner), ``outsider`` (no role). Setup that a
test is not about (model versions as the MLflow mirror stores them) is written
through the ORM; everything under test goes through the services. Every refusal
is checked with ``refused()``: the right error and code, no row changed and no
ledger entry written. Ledger entries are asserted after ``integrate()``.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from access.errors import AccessError, NotPermitted
from access.models import Dataset, DatasetField
from access.services.datasets import (
    dataset_classify,
    dataset_create,
    dataset_field_classify,
    effective_pii_categories,
    is_pci,
)
from access.tasks import lineage_reconcile
from audit.ledger import Actor, integrate
from audit.models import Entry, PendingEntry
from governance import registry
from governance.errors import GovernanceError
from governance.models import ComplianceViolation, Environment, Lineage, ModelVersion, PromotionRequest, RegisteredModel
from governance.services import model_versions
from governance.services.lineage import lineage_link, lineage_link_from_mlflow, lineage_state
from governance.services.registry_mirror import VersionData, model_version_upsert, registered_model_sync
from tests.factories import ModelVersionFactory, UserFactory
from tests.governance import mlflow_helpers
from tests.personas import People

pytestmark = pytest.mark.django_db


REASON = "Catalog review DG-2026-07: columns profiled"
SYNC = {"type": "system", "id": "mlflow-sync"}


# --- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture
def no_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> None:
        raise AssertionError("this test must not contact MLflow")

    monkeypatch.setattr(registry, "client", refuse)


def mlflow_input(name: str, context: str = "training") -> dict[str, str]:
    """A run's dataset input as governance.services.registry_mirror stores it in ModelVersion.datasets."""
    return {"name": name, "digest": f"{abs(hash(name)) % 10**8:08d}", "source_type": "s3",
            "source": f'{{"uri": "s3://lake/{name}"}}', "context": context}


def mirrored(model: RegisteredModel, number: int, *inputs: dict[str, str], level: str = "") -> ModelVersion:
    """A version as the MLflow mirror has it: its run's dataset inputs, a classification (maybe none)."""
    return ModelVersionFactory(model=model, version=number, datasets=list(inputs), data_classification=level)


def register(people: People, name: str = "card-transactions", **kwargs: Any) -> Dataset:
    return dataset_create(actor=people.steward, name=name, owner=people.steward, **kwargs)


def classify(people: People, dataset: Dataset, level: str, pii: list[str] | None = None, **kwargs: Any) -> Dataset:
    return dataset_classify(actor=kwargs.pop("actor", people.steward), dataset=dataset, level=level,
                                    pii_categories=pii or [], reason=kwargs.pop("reason", REASON), **kwargs)


def classify_field(people: People, dataset: Dataset, name: str, level: str, pii: list[str] | None = None,
                   **kwargs: Any) -> DatasetField:
    return dataset_field_classify(
        actor=kwargs.pop("actor", people.steward), dataset=dataset, field_name=name, level=level,
        pii_categories=pii or [], reason=kwargs.pop("reason", REASON),
    )


def state() -> dict[str, Any]:
    """Every catalog and mirror row and the ledger's size: equal before and after a refused action."""
    return {
        "datasets": list(Dataset.objects.order_by("pk").values()),
        "fields": list(DatasetField.objects.order_by("pk").values()),
        "lineage": list(Lineage.objects.order_by("pk").values()),
        "versions": list(ModelVersion.objects.order_by("pk").values()),
        "requests": list(PromotionRequest.objects.order_by("pk").values()),
        "pending_entries": PendingEntry.objects.count(),
        "entries": Entry.objects.count(),
    }


@contextmanager
def refused(exc_type: type[AccessError | GovernanceError],
            code: str) -> Iterator[pytest.ExceptionInfo[AccessError | GovernanceError]]:
    before = state()
    with pytest.raises((AccessError, GovernanceError)) as info:
        yield info
    assert type(info.value) is exc_type, f"{type(info.value).__name__}: {info.value}"
    assert info.value.code == code, f"code {info.value.code!r}: {info.value}"
    assert state() == before


def ledger(event_type: str) -> list[Entry]:
    integrate()
    return list(Entry.objects.filter(event_type=event_type).order_by("seq"))


def user_actor(user: User) -> dict[str, str]:
    return {"type": "user", "id": str(user.pk)}


def level_of(version: ModelVersion) -> str:
    return ModelVersion.objects.get(pk=version.pk).data_classification


def links(version: ModelVersion) -> set[tuple[str, str, str]]:
    return set(Lineage.objects.filter(version=version).values_list("dataset__name", "role", "source"))


# --- registering datasets --------------------------------------------------------------------------


def test_a_data_steward_registers_a_dataset(people: People) -> None:
    # when
    dataset = dataset_create(
        actor=people.steward, name="card-transactions-2026q3", owner=people.requester,
        source_uri="s3://payments-lake/curated/card_transactions/2026q3", description="Curated card transactions",
    )

    # then: unclassified (public until classified), recorded with the owner as a principal label
    assert (dataset.owner, dataset.level, dataset.effective_level, dataset.classified_at) == (
        people.requester, "public", "public", None)
    [entry] = ledger("dataset.created")
    assert entry.actor == user_actor(people.steward)
    assert entry.subject == {"type": "dataset", "id": "card-transactions-2026q3"}
    assert entry.payload == {"dataset": "card-transactions-2026q3", "owner": f"user:{people.requester.pk}",
                             "source_uri": "s3://payments-lake/curated/card_transactions/2026q3",
                             "description": "Curated card transactions"}


def test_infosec_may_register_a_dataset_too(people: People) -> None:
    dataset_create(actor=people.infosec, name="kyc-documents", owner=people.steward)

    [entry] = ledger("dataset.created")
    assert entry.actor == user_actor(people.infosec)
    assert "description" not in entry.payload  # optional, left out when empty


@pytest.mark.parametrize("who", ["requester", "outsider", "approver", "breakglass"])
def test_only_data_stewards_and_infosec_register_datasets(people: People, who: str) -> None:
    with refused(NotPermitted, "not_permitted") as info:
        dataset_create(actor=getattr(people, who), name="card-transactions", owner=people.steward)
    assert "data steward or InfoSec" in str(info.value)


def test_a_deactivated_steward_cannot_register_datasets(people: People) -> None:
    people.steward.is_active = False
    people.steward.save()
    with refused(NotPermitted, "not_permitted"):
        register(people)


@pytest.mark.parametrize(
    ("name", "code"),
    [("", "required"), ("   ", "required"), ("x" * 201, "too_long"), ("card\ntransactions", "invalid_name")],
)
def test_a_dataset_name_is_1_to_200_printable_characters(people: People, name: str, code: str) -> None:
    with refused(AccessError, code):
        register(people, name)


def test_dataset_names_are_unique_and_owners_active(people: People) -> None:
    register(people, "card-transactions")
    with refused(AccessError, "duplicate"):
        register(people, "card-transactions")
    gone = UserFactory(username="left-the-company", is_active=False)
    with refused(AccessError, "invalid_owner"):
        dataset_create(actor=people.steward, name="chargebacks", owner=gone)


# --- classifying datasets ---------------------------------------------------------------------------


def test_classifying_a_dataset_records_its_level_categories_and_reason(people: People) -> None:
    dataset = register(people)

    # when: first classification, then a reclassification by InfoSec
    classify(people, dataset, "confidential", ["ip_address", "email", "email"])
    classify(people, dataset, "restricted", ["email"], actor=people.infosec, reason="Raw IPs are in scope of DPIA-7")

    # then
    dataset.refresh_from_db()
    assert (dataset.level, dataset.pii_categories, dataset.effective_level) == ("restricted", ["email"], "restricted")
    assert (dataset.classified_by, dataset.classification_reason) == (people.infosec, "Raw IPs are in scope of DPIA-7")
    assert dataset.classified_at is not None
    first, second = ledger("dataset.classified")
    assert first.actor == user_actor(people.steward)
    assert first.subject == {"type": "dataset", "id": "card-transactions"}
    assert first.payload == {"dataset": "card-transactions", "level": "confidential", "previous_level": None,
                             "pii_categories": ["email", "ip_address"], "previous_pii_categories": [],
                             "reason": REASON, "effective_level": "confidential"}
    assert second.actor == user_actor(people.infosec)
    assert second.payload == {"dataset": "card-transactions", "level": "restricted", "previous_level": "confidential",
                              "pii_categories": ["email"], "previous_pii_categories": ["email", "ip_address"],
                              "reason": "Raw IPs are in scope of DPIA-7", "effective_level": "restricted"}


def test_classifying_a_dataset_exactly_as_it_is_changes_nothing_and_records_nothing(people: People) -> None:
    dataset = register(people)
    # the first classification is a decision even at the default level: it is recorded
    classify(people, dataset, "public")
    assert len(ledger("dataset.classified")) == 1

    before = state()
    returned = classify(people, dataset, "public", reason="checked again")
    assert state() == before
    assert returned.classification_reason == REASON


@pytest.mark.parametrize(
    ("kwargs", "exc_type", "code"),
    [
        ({"actor": "requester"}, NotPermitted, "not_permitted"),
        ({"actor": "outsider"}, NotPermitted, "not_permitted"),
        ({"level": "secret"}, AccessError, "invalid_level"),
        ({"level": None}, AccessError, "invalid_level"),
        ({"pii_categories": ["email", "shoe_size"]}, AccessError, "invalid_pii_category"),
        ({"pii_categories": "email"}, AccessError, "invalid_pii_category"),
        ({"pii_categories": [["email"]]}, AccessError, "invalid_pii_category"),
        ({"reason": "  "}, AccessError, "required"),
        ({"reason": "x" * 5001}, AccessError, "too_long"),
        ({"level": "internal", "pii_categories": ["email"]}, AccessError, "level_too_low"),
        ({"level": "public", "pii_categories": ["card_pan"]}, AccessError, "level_too_low"),
    ],
)
def test_dataset_classification_refusals(
    people: People, kwargs: dict[str, Any], exc_type: type[AccessError], code: str
) -> None:
    dataset = register(people)
    call = {"actor": people.steward, "dataset": dataset, "level": "confidential", "pii_categories": [],
            "reason": REASON, **kwargs}
    if isinstance(call["actor"], str):
        call["actor"] = getattr(people, call["actor"])
    with refused(exc_type, code):
        dataset_classify(**call)


# --- fields and the effective level ----------------------------------------------------------------------


def test_classifying_a_field_creates_it_and_raises_the_datasets_effective_level(people: People) -> None:
    dataset = classify(people, register(people), "internal")

    # when
    column = classify_field(people, dataset, "customer_email", "confidential", ["email"])

    # then
    assert (column.dataset, column.name, column.level, column.pii_categories, column.classified_by) == (
        dataset, "customer_email", "confidential", ["email"], people.steward)
    dataset.refresh_from_db()
    assert (dataset.level, dataset.effective_level) == ("internal", "confidential")
    [entry] = ledger("dataset.field_classified")
    assert entry.actor == user_actor(people.steward)
    assert entry.subject == {"type": "dataset", "id": "card-transactions"}
    assert entry.payload == {"dataset": "card-transactions", "field": "customer_email", "level": "confidential",
                             "previous_level": None, "pii_categories": ["email"], "previous_pii_categories": [],
                             "reason": REASON, "effective_level": "confidential"}


def test_the_effective_level_is_the_highest_of_the_dataset_and_its_fields(people: People) -> None:
    dataset = classify(people, register(people), "internal")

    def effective() -> str:
        return Dataset.objects.get(pk=dataset.pk).effective_level

    classify_field(people, dataset, "amount", "public")
    assert effective() == "internal"  # its own level is higher than the field's
    classify_field(people, dataset, "customer_email", "confidential", ["email"])
    classify_field(people, dataset, "pan", "restricted", ["card_pan"])
    assert effective() == "restricted"
    # lowering the highest field lowers the effective level to the next highest
    classify_field(people, dataset, "pan", "confidential", ["card_pan"], reason="PANs now tokenised at ingestion")
    assert effective() == "confidential"
    classify(people, dataset, "restricted")
    assert effective() == "restricted"  # its own level counts too
    classify(people, dataset, "internal", reason="back to internal")
    assert effective() == "confidential"

    last = ledger("dataset.classified")[-1]
    assert (last.payload["level"], last.payload["effective_level"]) == ("internal", "confidential")
    pan = [e for e in ledger("dataset.field_classified") if e.payload["field"] == "pan"][-1]
    assert (pan.payload["previous_level"], pan.payload["level"], pan.payload["effective_level"]) == (
        "restricted", "confidential", "confidential")


def test_classifying_a_field_exactly_as_it_is_records_nothing(people: People) -> None:
    dataset = register(people)
    classify_field(people, dataset, "ip_address", "confidential", ["ip_address"])

    before = state()
    classify_field(people, dataset, "ip_address", "confidential", ["ip_address"], reason="again")
    assert state() == before


@pytest.mark.parametrize(
    ("kwargs", "exc_type", "code"),
    [
        ({"actor": "requester"}, NotPermitted, "not_permitted"),
        ({"actor": "outsider"}, NotPermitted, "not_permitted"),
        ({"field_name": ""}, AccessError, "required"),
        ({"field_name": "a\tb"}, AccessError, "invalid_name"),
        ({"level": "top-secret"}, AccessError, "invalid_level"),
        ({"pii_categories": ["ssn"]}, AccessError, "invalid_pii_category"),
        ({"level": "internal", "pii_categories": ["ip_address"]}, AccessError, "level_too_low"),
        ({"reason": ""}, AccessError, "required"),
    ],
)
def test_field_classification_refusals(
    people: People, kwargs: dict[str, Any], exc_type: type[AccessError], code: str
) -> None:
    dataset = register(people)
    call = {"actor": people.steward, "dataset": dataset, "field_name": "ip_address", "level": "confidential",
            "pii_categories": ["ip_address"], "reason": REASON, **kwargs}
    if isinstance(call["actor"], str):
        call["actor"] = getattr(people, call["actor"])
    with refused(exc_type, code):
        dataset_field_classify(**call)


def test_pii_categories_of_a_dataset_include_its_fields(people: People) -> None:
    vault = classify(people, register(people, "card-pan-vault"), "restricted", ["name"])
    classify_field(people, vault, "pan", "restricted", ["card_pan"])
    tokens = classify(people, register(people, "card-transactions"), "confidential", ["email"])
    classify_field(people, tokens, "pan_token", "internal")

    assert effective_pii_categories(vault) == ["card_pan", "name"]
    assert (is_pci(vault), is_pci(tokens)) == (True, False)


# --- lineage -----------------------------------------------------------------------------------------


def test_linking_a_version_to_a_dataset_is_recorded_once(people: People, fraud: RegisteredModel) -> None:
    dataset = classify(people, register(people), "confidential")
    version = mirrored(fraud, 7, level="internal")
    actor = Actor.user(people.steward)

    # when
    link, created = lineage_link(actor=actor, version=version, dataset=dataset, role="training",
                                         source="declared")
    again, created_again = lineage_link(actor=actor, version=version, dataset=dataset, role="training",
                                                source="declared")

    # then: one link, one entry; the version's classification follows its data upwards
    assert (created, created_again, again) == (True, False, link)
    assert links(version) == {("card-transactions", "training", "declared")}
    [entry] = ledger("lineage.linked")
    assert entry.actor == user_actor(people.steward)
    assert entry.subject == {"type": "model_version", "id": "fraud-detector/7"}
    assert entry.payload == {"model": "fraud-detector", "version": 7, "dataset": "card-transactions",
                             "role": "training", "source": "declared"}
    assert level_of(version) == "confidential"
    [classified] = ledger("model.version_classified")
    assert classified.payload == {"model": "fraud-detector", "version": 7, "level": "confidential",
                                  "previous_level": "internal",
                                  "reason": "lineage: linked to dataset card-transactions (training)"}


def test_lineage_roles_and_sources_are_checked(people: People, fraud: RegisteredModel) -> None:
    dataset = register(people)
    version = mirrored(fraud, 7)
    with refused(GovernanceError, "invalid_role"):
        lineage_link(actor=Actor.user(people.steward), version=version, dataset=dataset, role="tuning",
                             source="declared")
    with refused(GovernanceError, "invalid_source"):
        lineage_link(actor=Actor.user(people.steward), version=version, dataset=dataset, role="training",
                             source="hearsay")


def test_lineage_from_mlflow_dataset_inputs(people: People, fraud: RegisteredModel) -> None:
    # given: the catalog knows three of the run's four inputs
    for name, level in [("card-transactions-2026q3", "confidential"), ("chargebacks-2026q3", "internal"),
                        ("holdout-2026q3", "internal")]:
        classify(people, register(people, name), level)
    version = mirrored(
        fraud, 7,
        mlflow_input("card-transactions-2026q3"),
        mlflow_input("chargebacks-2026q3", context=""),  # no context tag: training
        mlflow_input("holdout-2026q3", context="validation"),
        mlflow_input("holdout-2026q3", context="evaluation"),  # same dataset, same role: one link
        mlflow_input("merchant-risk-scores"),  # not in the catalog
        level="internal",
    )

    # when
    report = lineage_link_from_mlflow(version=version)

    # then
    assert links(version) == {("card-transactions-2026q3", "training", "mlflow"),
                              ("chargebacks-2026q3", "training", "mlflow"),
                              ("holdout-2026q3", "evaluation", "mlflow")}
    assert report.linked == ["card-transactions-2026q3 (training)", "chargebacks-2026q3 (training)",
                             "holdout-2026q3 (evaluation)"]
    assert (report.existing, report.unknown, report.reclassified) == ([], ["merchant-risk-scores"], True)
    entries = ledger("lineage.linked")
    assert [(e.payload["dataset"], e.payload["role"], e.payload["source"]) for e in entries] == [
        ("card-transactions-2026q3", "training", "mlflow"), ("chargebacks-2026q3", "training", "mlflow"),
        ("holdout-2026q3", "evaluation", "mlflow")]
    assert {e.actor["id"] for e in entries} == {"lineage"}
    # an input nobody catalogued makes the classification unknown (#13), and InfoSec sees it
    assert level_of(version) == ""
    [violation] = ComplianceViolation.objects.filter(kind=ComplianceViolation.Kind.UNCATALOGUED_LINEAGE)
    assert violation.details["datasets"] == ["merchant-risk-scores"]

    # and: again, nothing new
    before = state()
    again = lineage_link_from_mlflow(version=version)
    assert (again.linked, again.reclassified, len(again.existing)) == ([], False, 3)
    assert state() == before


def test_complete_lineage_sets_the_level_even_below_a_declared_one(people: People, fraud: RegisteredModel) -> None:
    # given: the MLflow tag declared confidential; the only input is catalogued as internal
    classify(people, register(people, "chargebacks-2026q3"), "internal")
    version = mirrored(fraud, 1, mlflow_input("chargebacks-2026q3"), level="confidential")

    lineage_link_from_mlflow(version=version)

    assert level_of(version) == "internal"
    [entry] = ledger("model.version_classified")
    assert entry.payload["previous_level"] == "confidential"
    assert entry.payload["reason"] == "lineage: MLflow dataset inputs chargebacks-2026q3"


def test_incomplete_lineage_raises_the_level_and_uncatalogued_inputs_make_it_unknown(
    people: People, fraud: RegisteredModel
) -> None:
    # given: one input is not in the catalog, another is registered but never classified
    classify(people, register(people, "chargebacks-2026q3"), "internal")
    register(people, "device-fingerprints")
    declared = mirrored(fraud, 1, mlflow_input("chargebacks-2026q3"), mlflow_input("merchant-risk-scores"),
                        level="confidential")
    unclassified = mirrored(fraud, 2, mlflow_input("chargebacks-2026q3"), mlflow_input("device-fingerprints"),
                            level="confidential")
    unknown = mirrored(fraud, 3, mlflow_input("chargebacks-2026q3"), mlflow_input("merchant-risk-scores"))

    for version in (declared, unclassified, unknown):
        lineage_link_from_mlflow(version=version)

    # then: an unclassified dataset never lowers the level; an uncatalogued one makes it unknown whatever
    # was declared (#13), and an unknown level is not replaced by a lower bound
    assert (level_of(declared), level_of(unclassified), level_of(unknown)) == ("", "confidential", "")
    assert [e.payload["level"] for e in ledger("model.version_classified")] == [""]
    assert lineage_state(unclassified).unclassified == ("device-fingerprints",)
    assert lineage_state(declared).unknown == ("merchant-risk-scores",)

    # when: a linked dataset turns out to be restricted, the level rises whatever else is unknown
    restricted = classify(people, Dataset.objects.get(name="chargebacks-2026q3"), "restricted")
    assert {level_of(v) for v in (declared, unclassified, unknown)} == {"restricted"}
    assert len(ledger("model.version_classified")) == 4
    # and: once the missing dataset is classified, lineage is complete and sets the level exactly; what the
    # catalog does not know is unknown again below the top level
    classify(people, restricted, "internal", reason="restricted by mistake")
    classify(people, Dataset.objects.get(name="device-fingerprints"), "confidential", ["device_id"])
    assert (level_of(declared), level_of(unclassified), level_of(unknown)) == ("", "confidential", "")


def test_registering_a_dataset_links_versions_already_mirrored(people: People, fraud: RegisteredModel) -> None:
    # given: v1 was mirrored before anyone catalogued its training data
    v1 = mirrored(fraud, 1, mlflow_input("device-fingerprints"), level="internal")
    mirrored(fraud, 2, mlflow_input("chargebacks-2026q3"), level="internal")
    assert lineage_link_from_mlflow(version=v1).unknown == ["device-fingerprints"]

    # when
    dataset = register(people, "device-fingerprints")

    # then: linked, but an unclassified dataset says nothing about the level yet
    assert links(v1) == {("device-fingerprints", "training", "mlflow")}
    assert Lineage.objects.count() == 1
    assert level_of(v1) == ""  # unknown while uncatalogued, and an unclassified dataset says nothing yet
    [entry] = ledger("lineage.linked")
    assert entry.actor == user_actor(people.steward)

    # when: classified, v1 follows
    classify(people, dataset, "confidential", ["device_id", "ip_address"])
    assert level_of(v1) == "confidential"
    assert ledger("model.version_classified")[-1].payload["reason"] == (
        "lineage: dataset device-fingerprints reclassified to confidential")


def test_a_version_with_lineage_cannot_be_declared_another_level(people: People, fraud: RegisteredModel) -> None:
    classify(people, register(people, "card-transactions"), "confidential")
    complete = mirrored(fraud, 1, mlflow_input("card-transactions"), level="internal")
    uncatalogued = mirrored(fraud, 2, mlflow_input("card-transactions"), mlflow_input("merchant-risk-scores"),
                            level="internal")
    register(people, "device-fingerprints")  # catalogued, never classified
    incomplete = mirrored(fraud, 3, mlflow_input("card-transactions"), mlflow_input("device-fingerprints"),
                          level="internal")
    for version in (complete, uncatalogued, incomplete):
        lineage_link_from_mlflow(version=version)

    with refused(GovernanceError, "classified_by_lineage") as info:
        model_versions.model_version_declare_classification(actor=people.steward, version=complete, level="restricted",
                                                            reason="extra caution")
    assert "reclassify those datasets instead" in str(info.value)
    for level in ("internal", "restricted"):  # data nobody catalogued cannot be declared anything (#13)
        with refused(GovernanceError, "uncatalogued_lineage"):
            model_versions.model_version_declare_classification(actor=people.infosec, version=uncatalogued, level=level,
                                                                reason="the tag says so")
    assert level_of(uncatalogued) == ""
    with refused(GovernanceError, "below_lineage"):
        model_versions.model_version_declare_classification(actor=people.steward, version=incomplete, level="internal",
                                                            reason="merchant scores are internal")
    # at or above what the known datasets say, a declaration still covers the unknown part
    model_versions.model_version_declare_classification(actor=people.infosec, version=incomplete, level="restricted",
                                                        reason="merchant risk scores contain national ids")
    assert level_of(incomplete) == "restricted"


# --- the registry mirror links lineage ---------------------------------------------------------------


def test_the_registry_mirror_links_new_versions_and_changed_inputs(
    people: People, fraud: RegisteredModel, no_mlflow: None
) -> None:
    classify(people, register(people, "card-transactions-2026q3"), "confidential", ["email"])
    classify(people, register(people, "device-fingerprints"), "confidential", ["device_id"])
    data = VersionData(name="fraud-detector", version=4, run_id="r4", source="runs:/r4/model", creator="omar",
                       tags={"data_classification": "internal"},
                       datasets=[mlflow_input("card-transactions-2026q3")])

    # when: first seen
    version, outcome = model_version_upsert(model=fraud, data=data)

    # then: linked and classified from lineage; the tag declares nothing (#13)
    assert (outcome, version.data_classification) == ("created", "confidential")
    assert links(version) == {("card-transactions-2026q3", "training", "mlflow")}
    classified = ledger("model.version_classified")
    assert [e.payload["level"] for e in classified] == ["confidential"]
    assert {e.actor["id"] for e in classified} == {"mlflow-sync"}

    # when: the run gains an input
    changed = VersionData(**{**data.__dict__, "datasets": [mlflow_input("card-transactions-2026q3"),
                                                           mlflow_input("device-fingerprints")]})
    version, outcome = model_version_upsert(model=fraud, data=changed)
    assert outcome == "changed"
    assert {name for name, _, _ in links(version)} == {"card-transactions-2026q3", "device-fingerprints"}
    assert [e.actor for e in ledger("lineage.linked")] == [SYNC, SYNC]


def test_lineage_from_a_real_mlflow_run(
    people: People, envs: dict[str, Environment], mlflow_store: mlflow_helpers.MlflowStore
) -> None:
    # given: the run logs its training data (mlflow.log_input, context "training") as "card-transactions"
    classify(people, register(people, "card-transactions"), "confidential", ["email"])
    run_id = mlflow_store.run(metrics={"auc": 0.93})
    mlflow_store.register("fraud-detector", run_id, tags={"data_classification": "internal"})

    # when
    registered_model_sync("fraud-detector")

    # then
    version = ModelVersion.objects.get(model__name="fraud-detector", version=1)
    assert links(version) == {("card-transactions", "training", "mlflow")}
    assert version.data_classification == "confidential"
    [entry] = ledger("lineage.linked")
    assert entry.payload == {"model": "fraud-detector", "version": 1, "dataset": "card-transactions",
                             "role": "training", "source": "mlflow"}


def test_the_lineage_reconcile_task_catches_up(people: People, fraud: RegisteredModel) -> None:
    # given: datasets changed behind the services' back (e.g. a restored backup)
    dataset = classify(people, register(people, "card-transactions"), "confidential")
    version = mirrored(fraud, 1, mlflow_input("card-transactions"), mlflow_input("unknown-set"), level="internal")
    mirrored(fraud, 2, level="internal")  # no inputs, no lineage: not looked at

    # when
    counts = lineage_reconcile.apply().get()

    # then
    assert counts == {"versions": 1, "linked": 1, "reclassified": 1, "unknown_inputs": 1, "errors": 0}
    assert level_of(version) == ""  # an uncatalogued input: unknown (#13)
    Dataset.objects.filter(pk=dataset.pk).update(effective_level="restricted", level="restricted")
    assert lineage_reconcile.apply().get()["reclassified"] == 1
    assert level_of(version) == "restricted"
    assert lineage_reconcile.apply().get()["reclassified"] == 0


# The catalog's admin pages are InfoSec's and auditors' read-only view: tests/admin/.


def test_classification_timestamps_are_set_by_the_service(people: People) -> None:
    dataset = classify(people, register(people), "internal")
    assert dataset.classified_at is not None
    assert timezone.now() - dataset.classified_at < timedelta(minutes=1)
