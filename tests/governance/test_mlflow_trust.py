"""MLflow grants no rights and sets no evidence (#13 items 1, 8a, 8b).

Each attack is written as a test that shows it is refused and that nothing was written: whoever
can write tags in MLflow (or pick MLflow's client-set user name) must not become an owner, vouch
for an artifact digest, classify training data, or pass as a known creator.
"""
from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from access import roles
from access.services.service_accounts import service_account_create
from audit.models import Entry, PendingEntry
from governance import selectors
from governance.errors import GovernanceError, InvalidState, NotPermitted
from governance.models import (
    VIA_API_TOKEN,
    VIA_IDENTITY_LINK,
    ComplianceViolation,
    Environment,
    IdentityLink,
    ModelVersion,
    PromotionRequest,
    RegisteredModel,
)
from governance.policy import NO_TRUSTED_CREATOR, PolicyError, parse_policy
from governance.services import (
    deployments,
    environments,
    evidence,
    identity_links,
    model_versions,
    promotions,
    registered_models,
    registry_mirror,
)
from tests.factories import ModelVersionFactory, RegisteredModelFactory
from tests.governance.mlflow_helpers import MlflowStore, catalogued, entries, user
from tests.personas import People

pytestmark = pytest.mark.django_db


NAME = "fraud-detector"
Drift = ComplianceViolation.Kind.OWNERSHIP_DRIFT


def _written() -> int:
    return PendingEntry.objects.count() + Entry.objects.count()


def _version(number: int = 1) -> ModelVersion:
    return ModelVersion.objects.select_related("model").get(model__name=NAME, version=number)


# --- 1. ownership -------------------------------------------------------------------------------------------


def test_an_mlflow_owner_tag_makes_nobody_an_owner_and_grants_no_right(
    mlflow_store: MlflowStore, envs: dict[str, Environment]
) -> None:
    # given an outsider who tags a model with their own name in MLflow, then sends the sync
    mallory = user("mallory")
    catalogued()
    mlflow_store.register(NAME, mlflow_store.run(), model_tags={"owner": "mallory"})

    # when
    registry_mirror.registry_reconcile()

    # then: no owner, and none of the owner's rights
    model = RegisteredModel.objects.get(name=NAME)
    assert model.owner is None and model.tags == {"owner": "mallory"}
    assert not selectors.models_visible_to(mallory).filter(pk=model.pk).exists()
    assert not promotions.may_request_promotion(mallory, model) and not deployments.may_roll_back(mallory, model)
    before = _written()
    with pytest.raises(NotPermitted):
        promotions.promotion_request(actor=mallory, version=_version(), environment=envs["dev"], reason="mine now")
    assert _written() == before and not PromotionRequest.objects.exists()
    assert entries("model.owner_set") == [] and not ComplianceViolation.objects.filter(kind=Drift).exists()


def test_a_tag_naming_someone_else_than_the_owner_is_drift_recorded_once_without_the_name(
    mlflow_store: MlflowStore, envs: dict[str, Environment]
) -> None:
    # given a model whose owner was assigned here
    omar, infosec = user("omar", roles.MODEL_OWNER), user("ines", roles.INFOSEC)
    user("mallory")
    catalogued()
    mlflow_store.register(NAME, mlflow_store.run(), model_tags={"owner": "omar"})
    registry_mirror.registry_reconcile()
    registered_models.model_owner_set(actor=infosec, model=RegisteredModel.objects.get(name=NAME), owner=omar,
                                      reason="model inventory MRM-1")
    assert not ComplianceViolation.objects.filter(kind=Drift).exists()  # the tag agrees

    # when the MLflow tag is changed to someone else, and the reconcile runs twice
    mlflow_store.client.set_registered_model_tag(NAME, "owner", "mallory")
    registry_mirror.registry_reconcile()
    registry_mirror.registry_reconcile()

    # then: one violation, the owner unchanged, and the tag's value nowhere in the ledger
    [drift] = ComplianceViolation.objects.filter(kind=Drift)
    assert drift.details == {"model": NAME, "owner": f"user:{omar.pk}", "tag": "owner"}
    assert RegisteredModel.objects.get(name=NAME).owner == omar
    [recorded] = entries("compliance.violation", kind="ownership_drift")
    assert "mallory" not in recorded.payload_json and "mallory" not in drift.summary

    # and a new disagreeing value is a new drift
    mlflow_store.client.set_registered_model_tag(NAME, "owner", "someone-else")
    registry_mirror.registry_reconcile()
    assert ComplianceViolation.objects.filter(kind=Drift).count() == 2


def test_infosec_and_the_current_owner_hand_a_model_over_with_a_reason(db: None, people: People) -> None:
    model = RegisteredModelFactory(name=NAME, owner=None)
    infosec, olivia, adam = people.infosec, people.requester, people.approver

    registered_models.model_owner_set(actor=infosec, model=model, owner=olivia, reason="inventory")
    registered_models.model_owner_set(actor=olivia, model=model, owner=adam, reason="team change")

    model.refresh_from_db()
    assert model.owner == adam
    assert [e.payload for e in entries("model.owner_set")] == [
        {"model": NAME, "owner": f"user:{olivia.pk}", "previous_owner": None, "reason": "inventory"},
        {"model": NAME, "owner": f"user:{adam.pk}", "previous_owner": f"user:{olivia.pk}", "reason": "team change"},
    ]


@pytest.mark.parametrize(
    ("who", "to", "reason", "error"),
    [
        ("outsider", "outsider", "taking it", NotPermitted),  # anyone taking a model
        ("requester", "requester", "mine", NotPermitted),  # a model-owner who does not own it
        ("approver", "approver", "handover", NotPermitted),  # the previous owner after handing it over
        ("infosec", "service", "bot", GovernanceError),  # a service account owns nothing
        ("infosec", "inactive", "gone", GovernanceError),
        ("infosec", "requester", "   ", GovernanceError),  # a reason is required
    ],
)
def test_taking_or_misassigning_ownership_is_refused_and_writes_nothing(
    db: None, people: People, who: str, to: str, reason: str, error: type[Exception]
) -> None:
    owner = people.approver
    model = RegisteredModelFactory(name=NAME, owner=None)
    registered_models.model_owner_set(actor=people.infosec, model=model, owner=people.model_risk, reason="first")
    registered_models.model_owner_set(actor=people.model_risk, model=model, owner=owner, reason="handed to adam")
    registered_models.model_owner_set(actor=owner, model=model, owner=people.model_risk2, reason="handed on")
    targets: dict[str, Any] = {
        "service": service_account_create(actor=people.requester, name="olivia-bot").user,
        "inactive": user("gone-user"),
    }
    User.objects.filter(username="gone-user").update(is_active=False)
    targets["inactive"].refresh_from_db()
    actor = {"outsider": people.outsider, "requester": people.requester, "approver": owner,
             "infosec": people.infosec}[who]
    target = targets.get(to) or actor
    before = _written()

    with pytest.raises(error):
        registered_models.model_owner_set(actor=actor, model=model, owner=target, reason=reason)

    assert _written() == before
    assert RegisteredModel.objects.get(pk=model.pk).owner == people.model_risk2


# --- 1. evidence: artifact digest and classification ----------------------------------------------------------


def test_a_remote_artifact_has_no_digest_and_the_digest_gate_says_why(
    db: None, people: People, envs: dict[str, Environment]
) -> None:
    version = ModelVersionFactory(model=RegisteredModelFactory(name=NAME, owner=people.requester), version=1,
                                  artifact_digest="", tags={"artifact_digest": "sha256:declared"})
    environments.policy_set(actor=people.infosec, environment=envs["dev"],
                            rules={"gates": [{"type": "artifact_digest"}]})

    request = promotions.promotion_request(actor=people.requester, version=version, environment=envs["dev"],
                                           reason="ship")

    [gate] = request.evidence["gates"]
    assert gate["type"] == "artifact_digest" and not gate["passed"]
    assert "could not be read" in gate["detail"] and "never used" in gate["detail"]
    assert request.state == PromotionRequest.State.PENDING


def test_a_classification_tag_on_uncatalogued_data_makes_nothing_public(
    mlflow_store: MlflowStore, envs: dict[str, Environment]
) -> None:
    # given v1 trained on a dataset the catalog does not know, tagged "public" by its owner
    omar, steward = user("omar", roles.MODEL_OWNER), user("dana", roles.DATA_STEWARD)
    run_id = mlflow_store.run()  # input "card-transactions", not catalogued
    mlflow_store.register(NAME, run_id, tags={"data_classification": "public"})

    # when mirrored, and its owner asks for dev (no gate) and production-like staging
    registry_mirror.registry_reconcile()

    # then: unknown, visible to InfoSec as a violation naming the dataset, once
    assert _version().data_classification == ""
    [violation] = ComplianceViolation.objects.filter(kind=ComplianceViolation.Kind.UNCATALOGUED_LINEAGE)
    assert violation.details["datasets"] == ["card-transactions"]
    registry_mirror.registry_reconcile()
    mlflow_store.client.set_model_version_tag(NAME, 1, "data_classification", "internal")
    registry_mirror.registry_reconcile()
    assert ComplianceViolation.objects.filter(kind=ComplianceViolation.Kind.UNCATALOGUED_LINEAGE).count() == 1
    assert _version().data_classification == ""
    assert entries("model.version_classified") == []

    # and the data_classification gate fails naming the uncatalogued dataset; production needs no gate to say so
    staging_gate = evidence.evaluate(_version(), envs["staging"], selectors.policy_for(
        environment=envs["staging"], model_id=_version().model_id)[0])[0]
    failed = [g for g in staging_gate if g.type == "data_classification"]
    assert failed and not failed[0].passed and "card-transactions" in failed[0].detail
    prod = evidence.evaluate(_version(), envs["production"], parse_policy({"gates": []}))[0]
    assert [(g.type, g.passed) for g in prod] == [("data_classification", False)]

    # and a steward cannot declare it either: nothing written
    before = _written()
    with pytest.raises(GovernanceError) as refused:
        model_versions.model_version_declare_classification(actor=steward, version=_version(), level="public",
                                                            reason="the tag says so")
    assert refused.value.code == "uncatalogued_lineage" and _written() == before
    assert _version().data_classification == ""

    # until the steward catalogues the dataset: the catalog's level, not the tag's
    catalogued(level="confidential")
    assert _version().data_classification == "confidential"
    assert omar.pk  # the owner never took part in classifying


def test_a_classification_tag_never_lowers_what_the_catalog_says(mlflow_store: MlflowStore, db: None) -> None:
    catalogued(level="confidential")
    mlflow_store.register(NAME, mlflow_store.run(), tags={"data_classification": "public"})
    registry_mirror.registry_reconcile()
    assert _version().data_classification == "confidential"

    mlflow_store.client.set_model_version_tag(NAME, 1, "data_classification", "public")
    mlflow_store.client.set_model_version_tag(NAME, 1, "note", "retagged")
    registry_mirror.registry_reconcile()
    assert _version().data_classification == "confidential"
    assert [e.payload["level"] for e in entries("model.version_classified")] == ["confidential"]


# --- 8b. the creator is who the product knows -----------------------------------------------------------------


def test_a_creator_name_matching_a_username_is_not_a_trusted_identity(
    mlflow_store: MlflowStore, envs: dict[str, Environment]
) -> None:
    # given an account "carol" and a version whose client-set MLflow user is "carol"
    user("carol", roles.APPROVER)
    catalogued()
    mlflow_store.register(NAME, mlflow_store.run(user="carol"))

    registry_mirror.registry_reconcile()

    version = _version()
    assert (version.creator, version.registered_by, version.registered_via) == ("carol", None, "")
    assert entries("model.version_registrant_linked") == []


def test_an_identity_link_made_by_infosec_links_past_and_future_versions_without_names(
    mlflow_store: MlflowStore, envs: dict[str, Environment]
) -> None:
    carol, infosec = user("carol", roles.APPROVER), user("ines", roles.INFOSEC)
    catalogued()
    mlflow_store.register(NAME, mlflow_store.run(user="carol"))
    registry_mirror.registry_reconcile()

    link = identity_links.identity_link_create(actor=infosec, mlflow_identity="carol", account=carol,
                                               reason="IdP check")
    mlflow_store.register(NAME, mlflow_store.run(user="carol"))
    registry_mirror.registry_reconcile()

    assert [(v.registered_by, v.registered_via) for v in (_version(1), _version(2))] == [
        (carol, VIA_IDENTITY_LINK), (carol, VIA_IDENTITY_LINK)]
    linked = entries("model.version_registrant_linked")
    assert [e.payload for e in linked] == [
        {"model": NAME, "version": n, "registered_by": f"user:{carol.pk}", "via": VIA_IDENTITY_LINK,
         "link_id": link.pk} for n in (1, 2)]
    [created] = entries("mlflow.identity_linked")
    assert "carol" not in created.payload_json and created.payload["account"] == f"user:{carol.pk}"
    # the creator's value of v2 is committed under Carol's own key: erasing Carol erases it
    [v2] = entries("model.version_registered", version=2)
    assert "carol" not in v2.payload_json


@pytest.mark.parametrize("who", ["approver", "outsider", "requester"])
def test_only_infosec_links_identities_and_a_refusal_writes_nothing(db: None, people: People, who: str) -> None:
    actor = getattr(people, who)
    ModelVersionFactory(model=RegisteredModelFactory(name=NAME), version=1, creator="ds-creator")
    before = _written()

    with pytest.raises(NotPermitted):
        identity_links.identity_link_create(actor=actor, mlflow_identity="ds-creator", account=actor, reason="it's me")

    assert _written() == before and not IdentityLink.objects.exists()
    assert _version().registered_by is None


def test_a_second_link_of_the_same_identity_is_refused_and_removal_keeps_history(db: None, people: People) -> None:
    link = identity_links.identity_link_create(actor=people.infosec, mlflow_identity="ds-creator",
                                               account=people.creator,
                                               reason="IdP")
    before = _written()
    with pytest.raises(InvalidState):
        identity_links.identity_link_create(actor=people.infosec, mlflow_identity="ds-creator", account=people.outsider,
                                            reason="swap")
    assert _written() == before
    with pytest.raises(GovernanceError):
        identity_links.identity_link_create(actor=people.infosec, mlflow_identity="x\x07y", account=people.outsider,
                                            reason="bad")
    assert _written() == before

    identity_links.identity_link_remove(actor=people.infosec, link=link, reason="left the company")
    assert not IdentityLink.objects.exists()
    assert entries("mlflow.identity_unlinked")[0].payload == {
        "link_id": link.pk, "account": f"user:{people.creator.pk}", "reason": "left the company"}


def test_without_a_trusted_identity_the_evidence_says_so_and_the_policy_can_require_one(
    db: None, people: People, envs: dict[str, Environment]
) -> None:
    # given a policy that requires a trusted creator, and a version known only by MLflow's creator name
    version = ModelVersionFactory(model=RegisteredModelFactory(name=NAME, owner=people.requester), version=1)
    environments.policy_set(actor=people.infosec, environment=envs["dev"], rules={"require_trusted_creator": True})

    request = promotions.promotion_request(actor=people.requester, version=version, environment=envs["dev"],
                                           reason="ship")

    # then the request's gate fails and its evidence says why
    assert request.state == PromotionRequest.State.PENDING
    assert request.evidence["registered_by"] == NO_TRUSTED_CREATOR
    [gate] = request.evidence["gates"]
    assert (gate["type"], gate["passed"]) == ("trusted_creator", False) and NO_TRUSTED_CREATOR in gate["detail"]

    # when InfoSec links the creator's identity, the pending request is re-evaluated and approved
    identity_links.identity_link_create(actor=people.infosec, mlflow_identity="ds-creator", account=people.creator,
                                        reason="IdP")
    request.refresh_from_db()
    assert request.evidence["registered_by"] == f"user:{people.creator.pk}"
    assert request.evidence["gates"][0]["passed"] and request.state != PromotionRequest.State.PENDING


def test_a_policy_option_must_be_a_boolean() -> None:
    with pytest.raises(PolicyError):
        parse_policy({"require_trusted_creator": "yes"})
    assert [g.type for g in parse_policy({"require_trusted_creator": True}).gates] == ["trusted_creator"]
    assert [g.type for g in parse_policy({"gates": [{"type": "trusted_creator"}],
                                          "require_trusted_creator": True}).gates] == ["trusted_creator"]


def test_a_registrant_report_needs_a_service_account_and_the_version_s_run(db: None, people: People) -> None:
    version = ModelVersionFactory(model=RegisteredModelFactory(name=NAME), version=1)
    bot = service_account_create(actor=people.requester, name="olivia-pipeline").user
    other = service_account_create(actor=people.infosec, name="ines-pipeline").user
    before = _written()

    for call, code in [
        (dict(actor=people.requester, token_id=1, run_id=version.run_id), "not_permitted"),  # a person
        (dict(actor=bot, token_id=1, run_id="0" * 32), "run_mismatch"),
        (dict(actor=bot, token_id=1, run_id=""), "required"),
    ]:
        with pytest.raises(GovernanceError) as refused:
            model_versions.model_version_report_registered(version=version, **call)
        assert refused.value.code == code
    assert _written() == before

    model_versions.model_version_report_registered(actor=bot, version=version, token_id=7, run_id=version.run_id)
    model_versions.model_version_report_registered(actor=bot, version=version, token_id=8,
                                                   run_id=version.run_id)  # no-op
    after = _written()
    with pytest.raises(InvalidState) as conflict:
        model_versions.model_version_report_registered(actor=other, version=version, token_id=9, run_id=version.run_id)
    assert conflict.value.code == "conflict" and _written() == after
    version.refresh_from_db()
    assert (version.registered_by, version.registered_via) == (bot, VIA_API_TOKEN)
    assert [e.payload for e in entries("model.version_registrant_linked")] == [
        {"model": NAME, "version": 1, "registered_by": f"user:{bot.pk}", "via": VIA_API_TOKEN, "token_id": 7}]
