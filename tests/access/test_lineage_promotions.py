"""Where the catalog meets promotions: reclassified data blocks pending promotions and flags live models,
and a model trained on restricted data needs a ``deploy_to`` grant on the environment to be promoted.

Personas (tests/personas.py): ``steward`` (data-steward),
``requester`` (model-owner), ``model_risk`` / ``infosec`` (production's
approvers), ``approver`` (staging's), ``breakglass``, ``outsider``. Setup that a
test is not about (deployments in earlier environments, the version mirrored with
its MLflow dataset inputs) is written through the ORM; grants through
``access.services.grants.grant_create``. MLflow is never contacted.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone

from access.models import Dataset, DenialWindow, Grant
from access.services.datasets import dataset_classify, dataset_create, dataset_field_classify
from access.services.grants import grant_create
from access.tasks import lineage_reconcile
from audit.ledger import integrate
from audit.models import Entry, PendingEntry
from config.celery import app
from governance import registry
from governance.errors import GovernanceError, NotPermitted
from governance.models import (
    Approval,
    ComplianceViolation,
    Environment,
    LiveDeployment,
    ModelVersion,
    PromotionRequest,
    RegisteredModel,
)
from governance.services import break_glass, compliance, promotions
from governance.services.lineage import LINEAGE_ACTOR, lineage_link_from_mlflow, model_version_reclassify_from_lineage
from tests.factories import ModelVersionFactory, RegisteredModelFactory
from tests.governance.helpers import FakeRegistry, ensure_defaults, make_deployed
from tests.personas import People, make_people

State = PromotionRequest.State
Envs = dict[str, Environment]
REASON = "Q3 retrain: catches the new BIN attack"
COMMENT = "Validation report MRV-2026-131 reviewed"
DATA_GATE = "training data classification allowed"


# --- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _celery_eager() -> Iterator[None]:
    saved = {k: app.conf[k] for k in ("task_always_eager", "task_eager_propagates")}
    app.conf.update(task_always_eager=True, task_eager_propagates=True)
    yield
    app.conf.update(saved)


@pytest.fixture
def fake_registry(monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    def refuse() -> None:
        raise AssertionError("this test must not contact MLflow")

    fake = FakeRegistry()
    monkeypatch.setattr(registry, "client", refuse)
    monkeypatch.setattr(registry, "set_alias", fake.set_alias)
    monkeypatch.setattr(registry, "delete_alias", fake.delete_alias)
    monkeypatch.setattr(registry, "alias_version", fake.alias_version)
    return fake


@pytest.fixture
def envs(db: None, fake_registry: FakeRegistry) -> Envs:
    return ensure_defaults()


@pytest.fixture
def fraud(envs: Envs, people: People) -> RegisteredModel:
    return RegisteredModelFactory(name="fraud-detector", description="Card fraud scoring")


@pytest.fixture
def transactions(people: People) -> Dataset:
    """card-transactions-2026q3: confidential (tokenised PANs, customer e-mails)."""
    dataset = dataset_create(actor=people.steward, name="card-transactions-2026q3", owner=people.steward)
    dataset_field_classify(actor=people.steward, dataset=dataset, field_name="customer_email",
                                   level="confidential", pii_categories=["email"], reason="profiled")
    return dataset_classify(actor=people.steward, dataset=dataset, level="confidential", pii_categories=[],
                                    reason="profiled")


def trained_on(model: RegisteredModel, number: int, *datasets: Dataset) -> ModelVersion:
    """A version mirrored from MLflow whose run's inputs are ``datasets``, with its lineage linked."""
    version = ModelVersionFactory(
        model=model, version=number, creator="ds-creator", data_classification="",
        datasets=[{"name": d.name, "digest": "5c3a9e1f", "source_type": "s3", "source": "{}", "context": "training"}
                  for d in datasets],
    )
    lineage_link_from_mlflow(version=version)
    version.refresh_from_db()
    return version


def fresh(request: PromotionRequest) -> PromotionRequest:
    return PromotionRequest.objects.select_related("version__model", "environment").get(pk=request.pk)


def ledger(event_type: str, **payload: Any) -> list[Entry]:
    integrate()
    return [e for e in Entry.objects.filter(event_type=event_type).order_by("seq")
            if all(e.payload.get(k) == v for k, v in payload.items())]


def reclassify_pan_field(people: People, dataset: Dataset) -> None:
    """The steward finds raw PANs in a column thought tokenised: the field (and so the dataset) is restricted."""
    dataset_field_classify(
        actor=people.steward, dataset=dataset, field_name="pan_token", level="restricted", pii_categories=["card_pan"],
        reason="DG-2026-311: raw PANs found in pan_token for 3% of rows",
    )


def deploy_grant(people: People, environment: Environment, principal: Any = None, days: float = 1) -> Grant:
    return grant_create(
        actor=people.infosec, principal=principal or people.requester, resource=environment,
        permission="deploy_to", expires_at=timezone.now() + timedelta(days=days),
        justification="INC-2291: releases of the restricted-data fraud model",
    )


def world() -> dict[str, Any]:
    """Governance rows and the ledger's intake: unchanged by a refused promotion (except a denial entry)."""
    return {
        "requests": list(PromotionRequest.objects.order_by("pk").values()),
        "approvals": list(Approval.objects.order_by("pk").values()),
        "live": list(LiveDeployment.objects.order_by("pk").values()),
        "violations": list(ComplianceViolation.objects.order_by("pk").values()),
        "versions": list(ModelVersion.objects.order_by("pk").values()),
    }


# --- reclassification and pending promotions ----------------------------------------------------------


def test_a_reclassified_dataset_blocks_a_pending_production_promotion(
    envs: Envs, people: People, fraud: RegisteredModel, transactions: Dataset
) -> None:
    # given: v8, trained on confidential data, soaked in staging; production approval half given
    v8 = trained_on(fraud, 8, transactions)
    assert v8.data_classification == "confidential"
    make_deployed(v8, envs["staging"], requested_by=people.requester, hours_ago=30)
    request = promotions.promotion_request(actor=people.requester, version=v8, environment=envs["production"],
                                           reason=REASON)
    promotions.promotion_approve(actor=people.model_risk, promotion=request, comment=COMMENT)
    assert promotions.approval_status(fresh(request))["unmet_rules"] == ["1 more from infosec"]
    digest = fresh(request).evidence_digest

    # when: the steward finds raw PANs in the training data
    reclassify_pan_field(people, transactions)

    # then: the version is restricted, the gate fails and model-risk's approval is stale
    assert ModelVersion.objects.get(pk=v8.pk).data_classification == "restricted"
    status = promotions.approval_status(fresh(request))
    assert status["failed_gates"] == [DATA_GATE]
    assert status["unmet_rules"] == ["1 more from model-risk", "1 more from infosec"]
    assert fresh(request).state == State.PENDING and fresh(request).evidence_digest != digest

    # and: no approval can complete it
    promotions.promotion_approve(actor=people.infosec, promotion=fresh(request), comment=COMMENT)
    promotions.promotion_approve(actor=people.model_risk2, promotion=fresh(request), comment=COMMENT)
    assert fresh(request).state == State.PENDING
    assert promotions.approval_status(fresh(request))["ready"] is False

    # and: the ledger tells the story, in order
    [field] = ledger("dataset.field_classified", field="pan_token")
    [classified] = ledger("model.version_classified", previous_level="confidential")
    [changed] = [e for e in ledger("promotion.evidence_changed") if e.payload["previous_digest"] == digest]
    assert field.seq < classified.seq < changed.seq
    assert field.payload["effective_level"] == "restricted"
    assert classified.actor == {"type": "user", "id": str(people.steward.pk)}
    assert classified.subject == {"type": "model_version", "id": "fraud-detector/8"}
    assert classified.payload == {"model": "fraud-detector", "version": 8, "level": "restricted",
                                  "previous_level": "confidential",
                                  "reason": "lineage: dataset card-transactions-2026q3 reclassified to restricted"}
    assert changed.subject == {"type": "promotion_request", "id": str(request.pk)}
    gate = next(g for g in changed.payload["gates"] if g["type"] == "data_classification")
    assert (gate["passed"], gate["observed"]) == (False, "restricted")
    assert ledger("promotion.approved") == []


def test_declassifying_the_data_again_lets_the_promotion_proceed(
    envs: Envs, people: People, fraud: RegisteredModel, transactions: Dataset
) -> None:
    v8 = trained_on(fraud, 8, transactions)
    make_deployed(v8, envs["staging"], requested_by=people.requester, hours_ago=30)
    request = promotions.promotion_request(actor=people.requester, version=v8, environment=envs["production"],
                                           reason=REASON)
    reclassify_pan_field(people, transactions)
    assert promotions.approval_status(fresh(request))["failed_gates"] == [DATA_GATE]

    # when: the column is re-tokenised and declassified
    dataset_field_classify(actor=people.steward, dataset=transactions, field_name="pan_token",
                                   level="internal", pii_categories=[], reason="DG-2026-311: re-tokenised, verified")

    # then: lineage is complete, so the version is confidential again and the gate passes
    assert ModelVersion.objects.get(pk=v8.pk).data_classification == "confidential"
    assert promotions.approval_status(fresh(request))["failed_gates"] == []
    promotions.promotion_approve(actor=people.model_risk, promotion=fresh(request), comment=COMMENT)
    assert promotions.promotion_approve(actor=people.infosec, promotion=fresh(request), comment=COMMENT).state == (
        State.APPROVED)


def test_a_reclassified_dataset_flags_a_live_production_model_without_rolling_it_back(
    envs: Envs, people: People, fraud: RegisteredModel, transactions: Dataset, fake_registry: FakeRegistry
) -> None:
    # given: v6 live in production and in staging, both trained on the transactions
    v6 = trained_on(fraud, 6, transactions)
    make_deployed(v6, envs["staging"], requested_by=people.requester, hours_ago=400)
    prod = make_deployed(v6, envs["production"], requested_by=people.requester, hours_ago=300)
    live_before = list(LiveDeployment.objects.order_by("pk").values())

    # when
    reclassify_pan_field(people, transactions)

    # then: one violation, for production only (staging allows restricted data); nothing rolled back
    [violation] = ComplianceViolation.objects.all()
    assert (violation.kind, violation.subject_type, violation.subject_id) == (
        "classification", "model_version", "fraud-detector/6")
    assert violation.details == {
        "model": "fraud-detector", "version": 6, "environment": "production", "level": "restricted",
        "max_data_classification": "confidential", "promotion_id": prod.pk,
        "reason": "lineage: dataset card-transactions-2026q3 reclassified to restricted"}
    assert "fraud-detector/6 is live in production but was trained on restricted data" in violation.summary
    assert list(LiveDeployment.objects.order_by("pk").values()) == live_before
    assert fresh(prod).state == State.DEPLOYED
    assert fake_registry.calls == []
    [entry] = ledger("compliance.violation")
    assert entry.subject == {"type": "model_version", "id": "fraud-detector/6"}
    assert entry.actor == {"type": "system", "id": "compliance"}
    assert entry.payload == {"violation_id": violation.pk, "kind": "classification", "summary": violation.summary,
                             "details": violation.details, "reverted": False}

    # when: more reclassifications that leave it restricted, then a full re-derivation
    dataset_field_classify(actor=people.steward, dataset=transactions, field_name="cvv", level="restricted",
                                   pii_categories=["card_pan"], reason="CVVs found too")
    lineage_link_from_mlflow(version=v6)
    model_version_reclassify_from_lineage(version=v6, reason="lineage: nightly check",
                                                  actor=LINEAGE_ACTOR)

    # then: still one violation (once per version, environment and level)
    assert ComplianceViolation.objects.count() == 1
    assert len(ledger("compliance.violation")) == 1


def test_infosec_acknowledges_the_classification_violation(
    envs: Envs, people: People, fraud: RegisteredModel, transactions: Dataset
) -> None:
    v6 = trained_on(fraud, 6, transactions)
    make_deployed(v6, envs["production"], requested_by=people.requester, hours_ago=300)
    reclassify_pan_field(people, transactions)
    violation = ComplianceViolation.objects.get(kind="classification")

    with pytest.raises(NotPermitted):
        compliance.violation_acknowledge(actor=people.steward, violation=violation, comment="seen")
    compliance.violation_acknowledge(actor=people.infosec, violation=violation,
                                     comment="Rollback to v5 planned: CHG-88")

    assert ComplianceViolation.objects.get(pk=violation.pk).acknowledged_by == people.infosec


# --- restricted data needs deploy_to --------------------------------------------------------------------


@pytest.fixture
def restricted_v9(envs: Envs, people: People, fraud: RegisteredModel, transactions: Dataset) -> ModelVersion:
    """v9, trained on the transactions once their PAN column was found restricted, deployed in dev."""
    reclassify_pan_field(people, transactions)
    version = trained_on(fraud, 9, transactions)
    assert version.data_classification == "restricted"
    make_deployed(version, envs["dev"], requested_by=people.requester, hours_ago=2)
    integrate()
    return version


def test_promoting_a_restricted_data_model_needs_deploy_to_on_the_environment(
    envs: Envs, people: People, restricted_v9: ModelVersion
) -> None:
    staging = envs["staging"]  # staging allows restricted data: only the grant is missing
    before, entries = world(), PendingEntry.objects.count()

    # when: no grant
    with pytest.raises(NotPermitted) as info:
        promotions.promotion_request(actor=people.requester, version=restricted_v9, environment=staging, reason=REASON)

    # then: refused with a message naming the missing grant; nothing changed but the recorded denial
    assert info.value.code == "needs_deploy_to"
    assert "deploy_to grant on environment:staging" in str(info.value)
    assert "fraud-detector/9 was trained on restricted data" in str(info.value)
    assert world() == before
    assert PendingEntry.objects.count() == entries + 1
    [denied] = ledger("access.check_denied")
    assert denied.actor == {"type": "user", "id": str(people.requester.pk)}
    assert denied.payload == {"principal": f"user:{people.requester.pk}", "resource": "environment:staging",
                              "permission": "deploy_to", "level": "restricted"}
    assert ledger("promotion.requested") == []

    # when: InfoSec grants deploy_to on staging
    grant = deploy_grant(people, staging)
    request = promotions.promotion_request(actor=people.requester, version=restricted_v9, environment=staging,
                                           reason=REASON)

    # then
    assert request.state == State.PENDING
    promotions.promotion_withdraw(actor=people.requester, promotion=request, reason="re-request after the grant check")

    # when: the grant expired a second ago (before the expiry task ran)
    Grant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    before = world()
    with pytest.raises(NotPermitted) as info:
        promotions.promotion_request(actor=people.requester, version=restricted_v9, environment=staging, reason=REASON)

    # then: refused again
    assert info.value.code == "needs_deploy_to"
    assert world() == before
    # the same denial again within the interval is counted, not recorded again (docs/access.md)
    assert len(ledger("access.check_denied")) == 1
    assert DenialWindow.objects.get(permission="deploy_to").count == 2
    assert len(ledger("promotion.requested")) == 1


def test_a_deploy_to_grant_elsewhere_or_for_someone_else_does_not_count(
    envs: Envs, people: People, restricted_v9: ModelVersion
) -> None:
    deploy_grant(people, envs["production"])  # another environment
    deploy_grant(people, envs["staging"], principal=people.approver)  # another person
    with pytest.raises(NotPermitted) as info:
        promotions.promotion_request(actor=people.requester, version=restricted_v9, environment=envs["staging"],
                                     reason=REASON)
    assert info.value.code == "needs_deploy_to"


def test_a_group_grant_of_deploy_to_counts(envs: Envs, people: People, restricted_v9: ModelVersion) -> None:
    team = Group.objects.create(name="fraud-ml-team")
    people.requester.groups.add(team)
    deploy_grant(people, envs["staging"], principal=team)

    request = promotions.promotion_request(actor=people.requester, version=restricted_v9, environment=envs["staging"],
                                           reason=REASON)
    assert request.state == State.PENDING


def test_the_deploy_to_rule_comes_after_the_role_check(envs: Envs, people: People, restricted_v9: ModelVersion) -> None:
    with pytest.raises(NotPermitted) as info:
        promotions.promotion_request(actor=people.outsider, version=restricted_v9, environment=envs["staging"],
                                     reason=REASON)
    assert info.value.code == "not_permitted"
    assert ledger("access.check_denied") == []


def test_models_on_less_sensitive_data_need_no_grant(
    envs: Envs, people: People, fraud: RegisteredModel, transactions: Dataset
) -> None:
    v8 = trained_on(fraud, 8, transactions)  # confidential
    make_deployed(v8, envs["dev"], requested_by=people.requester, hours_ago=2)
    request = promotions.promotion_request(actor=people.requester, version=v8, environment=envs["staging"],
                                           reason=REASON)
    assert request.state == State.PENDING
    assert ledger("access.check_denied") == []


def test_break_glass_also_needs_deploy_to_for_restricted_data(
    envs: Envs, people: People, restricted_v9: ModelVersion, fake_registry: FakeRegistry
) -> None:
    staging = envs["staging"]
    before = world()
    with pytest.raises(NotPermitted) as info:
        break_glass.promotion_break_glass(actor=people.breakglass, version=restricted_v9, environment=staging,
                                          justification="INC-2291: losses rising")
    assert info.value.code == "needs_deploy_to"
    assert world() == before
    [denied] = ledger("access.check_denied")
    assert denied.actor == {"type": "user", "id": str(people.breakglass.pk)}

    deploy_grant(people, staging, principal=people.breakglass)
    request = break_glass.promotion_break_glass(actor=people.breakglass, version=restricted_v9, environment=staging,
                                                justification="INC-2291: losses rising")
    assert (request.state, request.is_break_glass) == (State.APPROVED, True)


def test_a_version_that_becomes_restricted_after_its_request_is_caught_by_the_gate_not_the_grant(
    envs: Envs, people: People, fraud: RegisteredModel, transactions: Dataset
) -> None:
    # The grant is checked when the promotion is requested; later, the environment's
    # classification ceiling (the data_classification gate) is what keeps it out.
    v8 = trained_on(fraud, 8, transactions)
    make_deployed(v8, envs["staging"], requested_by=people.requester, hours_ago=30)
    request = promotions.promotion_request(actor=people.requester, version=v8, environment=envs["production"],
                                           reason=REASON)
    reclassify_pan_field(people, transactions)
    with pytest.raises(GovernanceError) as info:
        promotions.promotion_request(actor=people.requester, version=v8, environment=envs["production"], reason=REASON)
    assert info.value.code == "needs_deploy_to"  # a second request now needs the grant too
    assert fresh(request).state == State.PENDING
    assert promotions.approval_status(fresh(request))["failed_gates"] == [DATA_GATE]


# --- concurrency (PostgreSQL, real commits) ------------------------------------------------------------


def race(*targets: Callable[[], Any]) -> list[BaseException | None]:
    """Run each target on its own thread and connection, released together; their errors (None: fine)."""
    barrier = threading.Barrier(len(targets))
    errors: list[BaseException | None] = [None] * len(targets)

    def run(i: int, target: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            target()
        except BaseException as exc:
            errors[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, t), daemon=True) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive(), "worker thread did not finish"
    return errors


@pytest.fixture
def restore_defaults_after_flush(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Set up before ``committing_db``, so torn down after its flush: put the migration rows back."""
    yield
    with django_db_blocker.unblock():
        ensure_defaults()


@pytest.mark.usefixtures("on_postgres", "restore_defaults_after_flush", "committing_db")
def test_a_reclassification_racing_a_new_link_leaves_no_version_at_a_stale_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry, "client", lambda: pytest.fail("this test must not contact MLflow"))
    ensure_defaults()
    people = make_people()
    fraud = RegisteredModelFactory(name="fraud-detector")
    for round_ in range(6):
        # given: v(old) linked to a confidential dataset; v(new) mirrored, naming it, not linked yet
        dataset = dataset_create(actor=people.steward, name=f"card-transactions-{round_}", owner=people.steward)
        dataset_classify(actor=people.steward, dataset=dataset, level="confidential", pii_categories=[],
                                 reason="profiled")
        old = trained_on(fraud, 100 + 2 * round_, dataset)
        new = ModelVersionFactory(
            model=fraud, version=101 + 2 * round_, data_classification="",
            datasets=[{"name": dataset.name, "digest": "1", "source_type": "s3", "source": "{}", "context": ""}],
        )

        # when: the steward reclassifies while the mirror links the new version
        errors = race(lambda d=dataset: reclassify_pan_field(people, d),
                      lambda v=new: lineage_link_from_mlflow(version=v))

        # then: whatever the interleaving, both versions end up restricted, each recorded once
        assert errors == [None, None], round_
        levels = dict(ModelVersion.objects.filter(pk__in=[old.pk, new.pk]).values_list("pk", "data_classification"))
        assert levels == {old.pk: "restricted", new.pk: "restricted"}, round_
        integrate()
        for version in (old, new):
            final = [e.payload["level"] for e in Entry.objects.filter(
                event_type="model.version_classified", subject_id=version.ref).order_by("seq")]
            assert final[-1] == "restricted" and final.count("restricted") == 1, (round_, final)


def test_a_version_deployed_after_its_data_was_reclassified_is_flagged_by_the_reconcile(
    envs: Envs, people: People, fraud: RegisteredModel, transactions: Dataset
) -> None:
    # given: v8 becomes restricted, then goes live in production anyway (a request approved before, deploying)
    v8 = trained_on(fraud, 8, transactions)
    reclassify_pan_field(people, transactions)
    assert ComplianceViolation.objects.count() == 0
    make_deployed(v8, envs["production"], requested_by=people.requester, hours_ago=0.1)

    # when
    lineage_reconcile.apply().get()

    # then: flagged, once
    [violation] = ComplianceViolation.objects.all()
    assert (violation.kind, violation.details["environment"], violation.details["level"]) == (
        "classification", "production", "restricted")
    lineage_reconcile.apply().get()
    assert ComplianceViolation.objects.count() == 1
