"""Promotion requests, approvals and deployments through governance.services, with personas.

Personas (see conftest): the requester is a model-owner; approvers sit in the
``approver`` (staging), ``model-risk`` and ``infosec`` (production) groups; the
version creator (``ModelVersion.creator``) is in every group and still may not
approve; plus an outsider, a break-glass member and a data steward.

Every refusal is checked with ``refused()``: the right error class and code,
no governance row changed and no ledger entry written. Every successful
transition is checked against its ledger entry after ``integrate()``.
MLflow is never contacted: ``fake_registry`` stands in for governance.registry
when on_commit deploy tasks are executed.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from celery.exceptions import Retry
from django.contrib.auth.models import Group, User
from django.utils import timezone
from mlflow.exceptions import MlflowException

from access import roles
from access.models import Grant
from audit.ledger import Actor, integrate
from audit.models import Entry
from config.celery import app
from governance import selectors, tasks
from governance.errors import Frozen, GovernanceError, InvalidState, NotPermitted
from governance.models import (
    Approval,
    BreakGlassReview,
    ComplianceViolation,
    Environment,
    FreezeWindow,
    LiveDeployment,
    ModelVersion,
    PromotionPolicy,
    PromotionRequest,
    RegisteredModel,
)
from governance.services import break_glass as break_glass_services
from governance.services import compliance, deployments, environments, model_versions, promotions, registry_mirror
from tests.factories import ModelVersionFactory, RegisteredModelFactory, UserFactory
from tests.governance.helpers import (
    FakeRegistry,
    actor_of,
    entry_of,
    event_types,
    make_deployed,
    snapshot,
    subject_entries,
)
from tests.personas import People

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]

State = PromotionRequest.State
REASON = "Quarterly retrain with the new merchant-category features"
COMMENT = "Validation report MRV-2026-114 reviewed; metrics within tolerance"
Envs = dict[str, Environment]
Capture = Callable[..., Any]


# --- helpers -------------------------------------------------------------------------------------


@contextmanager
def refused(exc_type: type[GovernanceError], code: str) -> Iterator[pytest.ExceptionInfo[GovernanceError]]:
    """The block raises exactly ``exc_type`` with ``code``; nothing changed and nothing was recorded."""
    before = snapshot()
    with pytest.raises(GovernanceError) as info:
        yield info
    assert type(info.value) is exc_type, f"{type(info.value).__name__}: {info.value}"
    assert info.value.code == code, f"code {info.value.code!r}: {info.value}"
    assert snapshot() == before


def fresh(request: PromotionRequest) -> PromotionRequest:
    return PromotionRequest.objects.select_related("version__model", "environment").get(pk=request.pk)


def ask(
    people: People, version: ModelVersion, environment: Environment, *, user: User | None = None, **kwargs: Any
) -> PromotionRequest:
    return promotions.promotion_request(
        actor=user or people.requester, version=version, environment=environment, reason=REASON, **kwargs
    )


def approve(user: User, request: PromotionRequest, comment: str = COMMENT) -> PromotionRequest:
    return promotions.promotion_approve(actor=user, promotion=request, comment=comment)


def ledger(event_type: str) -> list[Entry]:
    """Every integrated entry of ``event_type``, in seq order."""
    integrate()
    return list(Entry.objects.filter(event_type=event_type).order_by("seq"))


def status(request: PromotionRequest) -> dict[str, Any]:
    return promotions.approval_status(fresh(request))


def assert_entry(entry: Entry, event_type: str, actor: dict[str, str], request: PromotionRequest,
                 **payload: Any) -> None:
    assert entry.event_type == event_type
    assert entry.actor == actor
    assert entry.subject == {"type": "promotion_request", "id": str(request.pk)}
    base = {"model": request.version.model.name, "version": request.version.version,
            "environment": request.environment.name}
    assert {k: entry.payload[k] for k in base} == base
    for key, value in payload.items():
        assert entry.payload[key] == value, key


SYSTEM_DEPLOYER = {"type": "system", "id": "deployer"}


# --- setup ---------------------------------------------------------------------------------------


@pytest.fixture
def in_dev(v7: ModelVersion, envs: Envs, people: People) -> ModelVersion:
    """v7 has been deployed in dev for three days."""
    make_deployed(v7, envs["dev"], requested_by=people.requester, hours_ago=72)
    return v7


@pytest.fixture
def in_staging(in_dev: ModelVersion, envs: Envs, people: People) -> ModelVersion:
    """v7 has been live in staging for 48 hours (past the production policy's 24 h soak)."""
    make_deployed(in_dev, envs["staging"], requested_by=people.requester, hours_ago=48)
    return in_dev


@pytest.fixture
def v6_live_in_staging(fraud: RegisteredModel, envs: Envs, people: People,
                       fake_registry: FakeRegistry) -> PromotionRequest:
    """v6 is what serves fraud-detector in staging today (and MLflow's alias says so)."""
    v6 = ModelVersionFactory(model=fraud, version=6)
    make_deployed(v6, envs["dev"], requested_by=people.requester, hours_ago=24 * 30)
    deployed = make_deployed(v6, envs["staging"], requested_by=people.requester, hours_ago=24 * 20)
    fake_registry.aliases[("fraud-detector", "staging")] = 6
    return deployed


def staging_deployed(people: People, version: ModelVersion, envs: Envs, capture: Capture,
                     **kwargs: Any) -> PromotionRequest:
    """Request and approve ``version`` into staging, running the deploy task (fake registry)."""
    with capture(execute=True):
        request = ask(people, version, envs["staging"], **kwargs)
        approve(people.approver, request)
    return fresh(request)


# --- requesting and approving ----------------------------------------------------------------------


def test_staging_request_then_one_approver_approves(
    in_dev: ModelVersion, envs: Envs, people: People, django_capture_on_commit_callbacks: Capture
) -> None:
    request = ask(people, in_dev, envs["staging"])

    assert request.state == State.PENDING and not request.is_break_glass
    gates = request.evidence["gates"]
    assert [(g["type"], g["passed"]) for g in gates] == [("model_card", True), ("data_classification", True)]
    assert request.evidence["artifact_digest"] == in_dev.artifact_digest
    assert len(request.evidence_digest) == 64
    assert status(request) == {"approvals": {"approver": 0}, "unmet_rules": ["1 more from approver"],
                               "failed_gates": [], "ready": False}
    assert_entry(entry_of(request, "promotion.requested"), "promotion.requested", actor_of(people.requester),
                 request, strategy="full", canary_steps=[], reason=REASON, evidence_digest=request.evidence_digest,
                 gates=gates)

    with django_capture_on_commit_callbacks() as callbacks:
        approved = approve(people.approver, request)

    assert approved.state == State.APPROVED and approved.decided_at is not None
    assert len(callbacks) == 1  # apply_promotion, queued for after commit
    approval = Approval.objects.get(request=request)
    assert (approval.approver, approval.decision, approval.group, approval.comment) == (
        people.approver, "approve", "approver", COMMENT)
    assert approval.evidence_digest == request.evidence_digest
    assert status(request)["ready"] is True
    assert event_types(request) == ["promotion.requested", "promotion.approval_given", "promotion.approved"]
    assert_entry(entry_of(request, "promotion.approval_given"), "promotion.approval_given",
                 actor_of(people.approver), request, group="approver", comment=COMMENT,
                 evidence_digest=request.evidence_digest)
    assert_entry(entry_of(request, "promotion.approved"), "promotion.approved", actor_of(people.approver), request,
                 approvers=[str(people.approver.pk)], evidence_digest=request.evidence_digest, gates=gates)


def test_the_models_owner_may_request_without_the_model_owner_role(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    owner = UserFactory(username="fiona-owner")
    RegisteredModel.objects.filter(pk=in_dev.model_id).update(owner=owner)
    in_dev.model.refresh_from_db()

    request = ask(people, in_dev, envs["staging"], user=owner)

    assert request.requested_by == owner
    assert entry_of(request, "promotion.requested").actor == actor_of(owner)


def test_production_needs_model_risk_and_infosec_after_24h_in_staging(
    in_staging: ModelVersion, envs: Envs, people: People
) -> None:
    request = ask(people, in_staging, envs["production"])
    soak = request.evidence["gates"][0]
    assert (soak["type"], soak["passed"]) == ("soak", True)
    assert 47.9 < soak["observed"] < 48.1
    assert status(request)["unmet_rules"] == ["1 more from model-risk", "1 more from infosec"]

    after_first = approve(people.model_risk, request)
    assert after_first.state == State.PENDING
    assert status(request)["unmet_rules"] == ["1 more from infosec"]

    approved = approve(people.infosec, request)

    assert approved.state == State.APPROVED
    assert set(Approval.objects.filter(request=request).values_list("group", flat=True)) == {"model-risk", "infosec"}
    assert event_types(request) == ["promotion.requested", "promotion.approval_given", "promotion.approval_given",
                                    "promotion.approved"]
    given = [e for e in subject_entries(request) if e.event_type == "promotion.approval_given"]
    assert [(e.actor, e.payload["group"]) for e in given] == [
        (actor_of(people.model_risk), "model-risk"), (actor_of(people.infosec), "infosec")]
    assert_entry(entry_of(request, "promotion.approved"), "promotion.approved", actor_of(people.infosec), request,
                 approvers=sorted([str(people.model_risk.pk), str(people.infosec.pk)]))


def test_production_stays_pending_until_the_soak_gate_passes(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    make_deployed(in_dev, envs["staging"], requested_by=people.requester, hours_ago=2)
    request = ask(people, in_dev, envs["production"])

    approve(people.model_risk, request)
    after = approve(people.infosec, request)

    assert after.state == State.PENDING
    assert status(request) == {"approvals": {"model-risk": 1, "infosec": 1}, "unmet_rules": [],
                               "failed_gates": ["soak 24h in previous environment"], "ready": False}
    assert "promotion.approved" not in event_types(request)


def test_production_refuses_restricted_training_data_by_its_gate(
    in_staging: ModelVersion, envs: Envs, people: People
) -> None:
    ModelVersion.objects.filter(pk=in_staging.pk).update(data_classification="restricted")
    in_staging.refresh_from_db()
    # Promoting a restricted-data model needs a deploy_to grant (see tests/access/test_lineage_promotions.py).
    Grant.objects.create(user=people.requester, resource_type="environment", resource_id=envs["production"].pk,
                         permission="deploy_to", expires_at=timezone.now() + timedelta(days=1),
                         justification="test setup", granted_by=people.infosec)
    request = ask(people, in_staging, envs["production"])

    approve(people.model_risk, request)
    assert approve(people.infosec, request).state == State.PENDING
    assert status(request)["failed_gates"] == ["training data classification allowed"]


def test_a_policy_without_approvals_approves_on_request(
    v7: ModelVersion, envs: Envs, people: People, django_capture_on_commit_callbacks: Capture
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        request = ask(people, v7, envs["dev"])

    assert request.state == State.APPROVED and request.decided_at is not None
    assert len(callbacks) == 1
    assert event_types(request) == ["promotion.requested", "promotion.approved"]
    assert_entry(entry_of(request, "promotion.approved"), "promotion.approved", {"type": "system", "id": "policy"},
                 request, approvers=[], gates=[])


def test_one_person_in_both_required_groups_counts_once(in_staging: ModelVersion, envs: Envs, people: People) -> None:
    both = UserFactory(username="hal-both", roles=[roles.MODEL_RISK, roles.INFOSEC])
    request = ask(people, in_staging, envs["production"])

    assert approve(both, request).state == State.PENDING
    assert Approval.objects.get(request=request).group == "model-risk"
    with refused(GovernanceError, "duplicate_approval"):
        approve(both, request, "and again for infosec")
    assert status(request)["unmet_rules"] == ["1 more from infosec"]


def test_reject_ends_the_request(in_dev: ModelVersion, envs: Envs, people: People) -> None:
    request = ask(people, in_dev, envs["staging"])

    rejected = promotions.promotion_reject(actor=people.approver, promotion=request, comment="No fairness report")

    assert rejected.state == State.REJECTED and rejected.decided_at is not None
    approval = Approval.objects.get(request=request)
    assert (approval.decision, approval.group) == ("reject", "approver")
    assert_entry(entry_of(request, "promotion.rejected"), "promotion.rejected", actor_of(people.approver), request,
                 group="approver", comment="No fairness report")


def test_requester_withdraws_and_may_ask_again(in_dev: ModelVersion, envs: Envs, people: People) -> None:
    request = ask(people, in_dev, envs["staging"])

    withdrawn = promotions.promotion_withdraw(actor=people.requester, promotion=request, reason="Found a leakage bug")

    assert withdrawn.state == State.WITHDRAWN and withdrawn.finished_at is not None
    assert_entry(entry_of(request, "promotion.withdrawn"), "promotion.withdrawn", actor_of(people.requester),
                 request, reason="Found a leakage bug")
    again = ask(people, in_dev, envs["staging"])  # a closed request does not block a new one
    assert again.pk != request.pk and again.state == State.PENDING


def test_infosec_may_withdraw_an_approved_request_and_the_deploy_task_then_does_nothing(
    in_dev: ModelVersion, envs: Envs, people: People, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    request = ask(people, in_dev, envs["staging"])
    with django_capture_on_commit_callbacks() as callbacks:
        approve(people.approver, request)

    promotions.promotion_withdraw(actor=people.infosec, promotion=request, reason="Incident INC-2231 in progress")
    for callback in callbacks:  # the queued apply_promotion finally runs
        callback()

    assert fresh(request).state == State.WITHDRAWN
    assert fake_registry.calls == []
    assert event_types(request)[-1] == "promotion.withdrawn"
    assert entry_of(request, "promotion.withdrawn").actor == actor_of(people.infosec)


def test_withdraw_by_someone_else_is_refused(in_dev: ModelVersion, envs: Envs, people: People) -> None:
    request = ask(people, in_dev, envs["staging"])
    for user in (people.outsider, people.approver):
        with refused(NotPermitted, "not_permitted"):
            promotions.promotion_withdraw(actor=user, promotion=request, reason="not mine to withdraw")


# --- refusals --------------------------------------------------------------------------------------


def test_requester_cannot_approve_their_own_request(in_dev: ModelVersion, envs: Envs, people: People) -> None:
    people.requester.groups.add(Group.objects.get(name=roles.APPROVER))
    request = ask(people, in_dev, envs["staging"])

    with refused(NotPermitted, "self_approval") as info:
        approve(people.requester, request)
    assert "you requested this promotion" in str(info.value)
    with refused(NotPermitted, "self_approval"):
        promotions.promotion_reject(actor=people.requester, promotion=request, comment="hmm")


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_the_account_that_registered_the_version_cannot_approve_even_in_every_group(
    in_staging: ModelVersion, envs: Envs, people: People, environment: str
) -> None:
    if environment == "staging":
        # v7 is already live in staging; ask about a fresh v8 instead
        version = ModelVersionFactory(model=in_staging.model, version=8, creator="ds-creator")
        make_deployed(version, envs["dev"], requested_by=people.requester, hours_ago=5)
    else:
        version = in_staging
    ModelVersion.objects.filter(pk=version.pk).update(registered_by=people.creator)
    request = ask(people, version, envs[environment])

    with refused(NotPermitted, "self_approval") as info:
        approve(people.creator, request)
    assert "you registered this model version" in str(info.value)


@pytest.mark.parametrize(
    ("environment", "who"),
    [("staging", "outsider"), ("staging", "infosec"), ("staging", "model_risk"), ("staging", "steward"),
     ("production", "outsider"), ("production", "approver"), ("production", "breakglass")],
)
def test_approval_from_outside_the_required_groups_is_refused(
    in_staging: ModelVersion, envs: Envs, people: People, environment: str, who: str
) -> None:
    version = in_staging
    if environment == "staging":
        version = ModelVersionFactory(model=in_staging.model, version=8)
        make_deployed(version, envs["dev"], requested_by=people.requester, hours_ago=5)
    request = ask(people, version, envs[environment])

    with refused(NotPermitted, "not_in_required_group") as info:
        approve(getattr(people, who), request)
    assert "approvals for this promotion must come from" in str(info.value)
    with refused(NotPermitted, "not_in_required_group"):
        promotions.promotion_reject(actor=getattr(people, who), promotion=request, comment="no")


def test_double_approval_by_one_person_is_refused(in_staging: ModelVersion, envs: Envs, people: People) -> None:
    request = ask(people, in_staging, envs["production"])
    approve(people.model_risk, request)

    with refused(GovernanceError, "duplicate_approval"):
        approve(people.model_risk, request, "approving twice")
    with refused(GovernanceError, "duplicate_approval"):
        promotions.promotion_reject(actor=people.model_risk, promotion=request, comment="changed my mind")


def test_a_version_deleted_from_mlflow_cannot_be_approved(in_dev: ModelVersion, envs: Envs, people: People) -> None:
    request = ask(people, in_dev, envs["staging"])
    # What the approval's re-read of MLflow (or a sync) does when MLflow no longer has the version.
    assert registry_mirror.model_version_mark_missing(version=in_dev)

    with refused(InvalidState, "version_deleted") as info:
        approve(people.approver, request)
    assert "no longer in the MLflow registry" in str(info.value)
    assert not Approval.objects.filter(request=request).exists()
    assert fresh(request).state == State.PENDING


def _withdraw(people: People, request: PromotionRequest) -> None:
    promotions.promotion_withdraw(actor=people.requester, promotion=request, reason="superseded by v8")


def _reject(people: People, request: PromotionRequest) -> None:
    promotions.promotion_reject(actor=people.approver2, promotion=request, comment="missing fairness report")


def _expire(people: People, request: PromotionRequest) -> None:
    assert promotions.promotion_expire(promotion=request, now=timezone.now() + timedelta(days=15))


@pytest.mark.parametrize("close", [_withdraw, _reject, _expire], ids=["withdrawn", "rejected", "expired"])
def test_closed_requests_cannot_be_approved_rejected_or_withdrawn(
    in_dev: ModelVersion, envs: Envs, people: People, close: Callable[[People, PromotionRequest], None]
) -> None:
    request = ask(people, in_dev, envs["staging"])
    close(people, request)

    with refused(InvalidState, "invalid_state") as info:
        approve(people.approver, request)
    assert "only pending requests can be approved" in str(info.value)
    with refused(InvalidState, "invalid_state"):
        promotions.promotion_reject(actor=people.approver, promotion=request, comment="no")
    with refused(InvalidState, "invalid_state"):
        promotions.promotion_withdraw(actor=people.requester, promotion=request, reason="again")


def test_approving_an_already_approved_request_is_refused(in_dev: ModelVersion, envs: Envs, people: People) -> None:
    request = ask(people, in_dev, envs["staging"])
    approve(people.approver, request)

    with refused(InvalidState, "invalid_state"):
        approve(people.approver2, request)


def test_freeze_window_refuses_requests_and_approvals(in_dev: ModelVersion, envs: Envs, people: People) -> None:
    other = ModelVersionFactory(model=in_dev.model, version=8)
    make_deployed(other, envs["dev"], requested_by=people.requester, hours_ago=3, live=False)
    before_freeze = ask(people, other, envs["staging"])
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)  # the hour now began: a moment written out
    starts = hour - timedelta(hours=1)

    freeze = environments.freeze_window_create(
        actor=people.infosec, environment=envs["staging"], starts_at=starts,
        ends_at=starts + timedelta(hours=7, minutes=30), reason="Black Friday change freeze",
    )

    assert FreezeWindow.objects.get() == freeze and freeze.created_by == people.infosec
    [entry] = ledger("environment.freeze_declared")
    assert entry.actor == actor_of(people.infosec)
    assert entry.subject == {"type": "environment", "id": "staging"}
    assert entry.payload == {"environment": "staging", "starts_at": f"{starts:%Y-%m-%dT%H}:00:00+00:00",
                             "ends_at": f"{starts + timedelta(hours=7):%Y-%m-%dT%H}:30:00+00:00",
                             "reason": "Black Friday change freeze"}
    with refused(Frozen, "frozen") as info:
        ask(people, in_dev, envs["staging"])
    assert "staging is frozen until" in str(info.value) and "Black Friday change freeze" in str(info.value)
    with refused(Frozen, "frozen"):
        approve(people.approver, before_freeze)
    # ending a request is not a change to the environment: still allowed
    assert promotions.promotion_withdraw(actor=people.requester, promotion=before_freeze,
                                         reason="after the freeze").state == State.WITHDRAWN
    # nor does the freeze reach other environments, or an emergency
    assert ask(people, other, envs["dev"]).state == State.APPROVED
    assert break_glass(people, in_dev, envs["staging"]).state == State.APPROVED


def test_freeze_windows_outside_now_do_not_block(in_dev: ModelVersion, envs: Envs, people: People) -> None:
    now = timezone.now()
    # a window that is over (declared while it was ahead: the service refuses declaring one already over)
    FreezeWindow.objects.create(environment=envs["staging"], starts_at=now - timedelta(days=2),
                                ends_at=now - timedelta(days=1), reason="last week's freeze", created_by=people.infosec)
    environments.freeze_window_create(actor=people.infosec, environment=envs["staging"],
                                      starts_at=now + timedelta(days=1),
                                      ends_at=now + timedelta(days=2), reason="next week's freeze")
    # production is protected (two-person changes): its freeze is set up directly
    FreezeWindow.objects.create(environment=envs["production"], starts_at=now - timedelta(hours=1),
                                ends_at=now + timedelta(hours=1), reason="production only", created_by=people.infosec)

    assert ask(people, in_dev, envs["staging"]).state == State.PENDING


@pytest.mark.parametrize("who", ["requester", "approver", "model_risk", "outsider", "breakglass"])
def test_only_infosec_declares_freeze_windows(envs: Envs, people: People, who: str) -> None:
    now = timezone.now()
    with refused(NotPermitted, "not_permitted") as info:
        environments.freeze_window_create(actor=getattr(people, who), environment=envs["production"], starts_at=now,
                                          ends_at=now + timedelta(hours=1), reason="freeze")
    assert "only InfoSec may declare freeze windows" in str(info.value)


def test_freeze_window_must_end_after_it_starts_and_have_a_reason(envs: Envs, people: People) -> None:
    now = timezone.now()
    with refused(GovernanceError, "invalid_window"):
        environments.freeze_window_create(actor=people.infosec, environment=envs["production"], starts_at=now,
                                          ends_at=now, reason="zero length")
    with refused(GovernanceError, "required"):
        environments.freeze_window_create(actor=people.infosec, environment=envs["production"], starts_at=now,
                                          ends_at=now + timedelta(hours=1), reason="  ")
    with refused(GovernanceError, "invalid_window") as info:  # it would block nothing
        environments.freeze_window_create(actor=people.infosec, environment=envs["production"],
                                          starts_at=now - timedelta(days=2), ends_at=now - timedelta(days=1),
                                          reason="r")
    assert "already ended" in str(info.value)
    with refused(GovernanceError, "too_long"):  # the column holds 300: refused here, not by the database
        environments.freeze_window_create(actor=people.infosec, environment=envs["production"], starts_at=now,
                                          ends_at=now + timedelta(hours=1), reason="x" * 301)


def test_promotions_may_not_skip_an_environment(v7: ModelVersion, envs: Envs, people: People) -> None:
    with refused(GovernanceError, "skips_environment") as info:
        ask(people, v7, envs["staging"])
    assert "has not been deployed to dev" in str(info.value)
    make_deployed(v7, envs["dev"], requested_by=people.requester)
    with refused(GovernanceError, "skips_environment") as info:
        ask(people, v7, envs["production"])
    assert "has not been deployed to staging" in str(info.value)


def test_another_versions_deployment_does_not_open_the_next_environment(
    v7: ModelVersion, envs: Envs, people: People
) -> None:
    v6 = ModelVersionFactory(model=v7.model, version=6)
    make_deployed(v6, envs["dev"], requested_by=people.requester)
    with refused(GovernanceError, "skips_environment"):
        ask(people, v7, envs["staging"])


def test_a_failed_or_rolled_back_deployment_does_not_count_as_deployed(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    staged = make_deployed(in_dev, envs["staging"], requested_by=people.requester)
    PromotionRequest.objects.filter(pk=staged.pk).update(state=State.ROLLED_BACK)
    LiveDeployment.objects.filter(promotion=staged).delete()
    with refused(GovernanceError, "skips_environment"):
        ask(people, in_dev, envs["production"])


def test_only_model_owners_request(in_dev: ModelVersion, envs: Envs, people: People) -> None:
    for who in ("outsider", "approver", "infosec", "breakglass"):
        with refused(NotPermitted, "not_permitted") as info:
            ask(people, in_dev, envs["staging"], user=getattr(people, who))
        assert "only the model's owner or a model-owner may request" in str(info.value)


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_reasons_and_comments_are_refused(in_staging: ModelVersion, envs: Envs, people: People,
                                                text: str) -> None:
    with refused(GovernanceError, "required") as info:
        promotions.promotion_request(actor=people.requester, version=in_staging, environment=envs["production"],
                                     reason=text)
    assert "a reason is required" in str(info.value)
    request = ask(people, in_staging, envs["production"])
    for call in (
        lambda: promotions.promotion_approve(actor=people.model_risk, promotion=request, comment=text),
        lambda: promotions.promotion_reject(actor=people.model_risk, promotion=request, comment=text),
        lambda: promotions.promotion_withdraw(actor=people.requester, promotion=request, reason=text),
        lambda: break_glass_services.promotion_break_glass(actor=people.breakglass, version=in_staging,
                                                           environment=envs["production"], justification=text),
        lambda: deployments.promotion_rollback(actor=people.requester, model=in_staging.model,
                                               environment=envs["staging"], reason=text),
        lambda: model_versions.model_version_declare_classification(actor=people.steward, version=in_staging,
                                                                    level="public", reason=text),
    ):
        with refused(GovernanceError, "required"):
            call()


def test_overlong_reason_is_refused(in_dev: ModelVersion, envs: Envs, people: People) -> None:
    with refused(GovernanceError, "too_long"):
        promotions.promotion_request(actor=people.requester, version=in_dev, environment=envs["staging"],
                                     reason="x" * 5001)


@pytest.mark.parametrize(
    ("strategy", "steps", "code"),
    [
        ("blue-green", None, "invalid_strategy"),
        ("FULL", None, "invalid_strategy"),
        ("full", [5, 100], "invalid_strategy"),
        ("shadow", [50, 100], "invalid_strategy"),
        ("canary", [50, 25, 100], "invalid_canary_steps"),
        ("canary", [5, 50], "invalid_canary_steps"),
        ("canary", [0, 100], "invalid_canary_steps"),
        ("canary", [5, 5, 100], "invalid_canary_steps"),
        ("canary", [5, 150], "invalid_canary_steps"),
        ("canary", [True, 100], "invalid_canary_steps"),
        ("canary", [5.5, 100], "invalid_canary_steps"),
        ("canary", "5,100", "invalid_canary_steps"),
    ],
)
def test_invalid_strategy_or_canary_steps_are_refused(
    in_dev: ModelVersion, envs: Envs, people: People, strategy: str, steps: Any, code: str
) -> None:
    with refused(GovernanceError, code):
        ask(people, in_dev, envs["staging"], strategy=strategy, canary_steps=steps)


def test_canary_steps_default_and_are_recorded(in_dev: ModelVersion, envs: Envs, people: People) -> None:
    request = ask(people, in_dev, envs["staging"], strategy="canary")
    assert request.canary_steps == [5, 25, 50, 100]
    assert entry_of(request, "promotion.requested").payload["canary_steps"] == [5, 25, 50, 100]


@pytest.mark.parametrize("first_state", [State.PENDING, State.APPROVED])
def test_a_second_open_request_is_refused(in_dev: ModelVersion, envs: Envs, people: People,
                                          first_state: str) -> None:
    first = ask(people, in_dev, envs["staging"])
    if first_state == State.APPROVED:
        approve(people.approver, first)

    with refused(GovernanceError, "duplicate") as info:
        ask(people, in_dev, envs["staging"], strategy="canary")
    assert "already has an open promotion request to staging" in str(info.value)


def test_requesting_the_live_version_is_refused(in_staging: ModelVersion, envs: Envs, people: People) -> None:
    with refused(GovernanceError, "already_live"):
        ask(people, in_staging, envs["staging"])


# --- stale and expired approvals ----------------------------------------------------------------------


def test_classification_change_makes_approvals_stale_and_the_approver_may_approve_again(
    in_staging: ModelVersion, envs: Envs, people: People
) -> None:
    request = ask(people, in_staging, envs["production"])
    approve(people.model_risk, request)
    old_digest = fresh(request).evidence_digest

    model_versions.model_version_declare_classification(
        actor=people.steward, version=in_staging, level="confidential", reason="Lineage shows card PANs (tokenised)"
    )

    changed = fresh(request)
    assert changed.evidence_digest != old_digest and changed.state == State.PENDING
    assert status(request)["unmet_rules"] == ["1 more from model-risk", "1 more from infosec"]
    [classified] = ledger("model.version_classified")
    assert classified.actor == actor_of(people.steward)
    assert classified.subject == {"type": "model_version", "id": "fraud-detector/7"}
    assert classified.payload == {"model": "fraud-detector", "version": 7, "level": "confidential",
                                  "previous_level": "internal", "reason": "Lineage shows card PANs (tokenised)"}
    assert_entry(entry_of(request, "promotion.evidence_changed"), "promotion.evidence_changed",
                 actor_of(people.steward), request, previous_digest=old_digest,
                 evidence_digest=changed.evidence_digest)

    assert approve(people.infosec, request).state == State.PENDING
    assert status(request)["unmet_rules"] == ["1 more from model-risk"]
    approved = approve(people.model_risk, request, "Re-reviewed with the confidential classification")

    assert approved.state == State.APPROVED
    assert Approval.objects.filter(request=request, approver=people.model_risk).count() == 1  # replaced, not added
    assert event_types(request) == [
        "promotion.requested", "promotion.approval_given", "promotion.evidence_changed",
        "promotion.approval_given", "promotion.approval_given", "promotion.approved",
    ]


def test_artifact_change_makes_approvals_stale(in_staging: ModelVersion, envs: Envs, people: People) -> None:
    request = ask(people, in_staging, envs["production"])
    approve(people.model_risk, request)
    ModelVersion.objects.filter(pk=in_staging.pk).update(artifact_digest="sha256:" + "ab" * 32)

    changed = promotions.promotion_reevaluate(promotion=request, actor=Actor.system("mlflow-sync"))

    assert changed is True
    assert fresh(request).evidence["artifact_digest"] == "sha256:" + "ab" * 32
    assert status(request)["approvals"] == {"model-risk": 0, "infosec": 0}
    assert entry_of(request, "promotion.evidence_changed").actor == {"type": "system", "id": "mlflow-sync"}
    approve(people.infosec, request)
    assert approve(people.model_risk, request).state == State.APPROVED


def test_gate_failing_when_approved_then_passing_needs_a_fresh_approval(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    ModelVersion.objects.filter(pk=in_dev.pk).update(data_classification="")
    in_dev.refresh_from_db()
    request = ask(people, in_dev, envs["staging"])
    assert status(request)["failed_gates"] == ["training data classification allowed"]

    assert approve(people.approver, request).state == State.PENDING  # approved the failing evidence
    model_versions.model_version_declare_classification(actor=people.steward, version=in_dev, level="internal",
                                                        reason="Declared from the data catalogue")

    assert fresh(request).state == State.PENDING  # the approval was for other evidence
    assert status(request) == {"approvals": {"approver": 0}, "unmet_rules": ["1 more from approver"],
                               "failed_gates": [], "ready": False}
    assert approve(people.approver, request).state == State.APPROVED


def test_reevaluation_without_change_records_nothing(in_staging: ModelVersion, envs: Envs, people: People) -> None:
    request = ask(people, in_staging, envs["production"])
    approve(people.model_risk, request)
    before = len(subject_entries(request))

    assert promotions.promotion_reevaluate(promotion=request, actor=Actor.system("mlflow-sync")) is False
    assert len(subject_entries(request)) == before
    assert status(request)["approvals"] == {"model-risk": 1, "infosec": 0}


def test_reevaluation_of_a_closed_request_does_nothing(in_dev: ModelVersion, envs: Envs, people: People) -> None:
    request = ask(people, in_dev, envs["staging"])
    approve(people.approver, request)
    ModelVersion.objects.filter(pk=in_dev.pk).update(artifact_digest="sha256:changed")

    assert promotions.promotion_reevaluate(promotion=request, actor=Actor.system("mlflow-sync")) is False
    assert "promotion.evidence_changed" not in event_types(request)


def test_declaring_a_classification_needs_a_data_steward_or_infosec(
    v7: ModelVersion, envs: Envs, people: People
) -> None:
    for who in ("requester", "approver", "model_risk", "outsider"):
        with refused(NotPermitted, "not_permitted"):
            model_versions.model_version_declare_classification(actor=getattr(people, who), version=v7, level="public",
                                                                reason="I say so")
    with refused(GovernanceError, "invalid_level"):
        model_versions.model_version_declare_classification(actor=people.steward, version=v7, level="secret",
                                                            reason="x")
    model_versions.model_version_declare_classification(actor=people.infosec, version=v7, level="restricted",
                                                        reason="PII")
    assert ModelVersion.objects.get(pk=v7.pk).data_classification == "restricted"


def test_an_expired_approval_no_longer_counts(in_staging: ModelVersion, envs: Envs, people: People) -> None:
    request = ask(people, in_staging, envs["production"])
    approve(people.model_risk, request)
    Approval.objects.filter(request=request).update(created_at=timezone.now() - timedelta(days=7, minutes=1))

    assert status(request)["unmet_rules"] == ["1 more from model-risk", "1 more from infosec"]
    assert approve(people.infosec, request).state == State.PENDING
    # another model-risk validator can still complete it
    assert approve(people.model_risk2, request).state == State.APPROVED


def test_an_approval_inside_the_expiry_still_counts(in_staging: ModelVersion, envs: Envs, people: People) -> None:
    request = ask(people, in_staging, envs["production"])
    approve(people.model_risk, request)
    Approval.objects.filter(request=request).update(created_at=timezone.now() - timedelta(days=6, hours=23))

    assert approve(people.infosec, request).state == State.APPROVED


def test_an_approver_may_renew_an_expired_approval(in_staging: ModelVersion, envs: Envs, people: People) -> None:
    request = ask(people, in_staging, envs["production"])
    approve(people.model_risk, request)
    Approval.objects.filter(request=request).update(created_at=timezone.now() - timedelta(days=8))
    approve(people.infosec, request)

    assert approve(people.model_risk, request, "Renewing my approval").state == State.APPROVED


def test_approved_entry_lists_only_the_approvals_that_counted(
    in_staging: ModelVersion, envs: Envs, people: People
) -> None:
    request = ask(people, in_staging, envs["production"])
    approve(people.model_risk, request)
    model_versions.model_version_declare_classification(actor=people.steward, version=in_staging, level="public",
                                                        reason="Re-labelled")
    approve(people.infosec, request)
    approve(people.model_risk2, request)

    assert entry_of(request, "promotion.approved").payload["approvers"] == sorted(
        [str(people.infosec.pk), str(people.model_risk2.pk)])


def test_soak_counts_only_time_the_version_is_live_in_the_previous_environment(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    make_deployed(in_dev, envs["staging"], requested_by=people.requester, hours_ago=48)
    v8 = ModelVersionFactory(model=in_dev.model, version=8)
    make_deployed(v8, envs["staging"], requested_by=people.requester, hours_ago=47, previous_version=in_dev)

    request = ask(people, in_dev, envs["production"])

    soak = request.evidence["gates"][0]
    assert soak["type"] == "soak" and soak["passed"] is False


def test_requests_awaiting_lists_only_what_the_user_may_approve(
    in_staging: ModelVersion, envs: Envs, people: People
) -> None:
    production = ask(people, in_staging, envs["production"])

    assert list(selectors.requests_awaiting(people.model_risk)) == [production]
    assert list(selectors.requests_awaiting(people.outsider)) == []
    assert list(selectors.requests_awaiting(people.approver)) == []  # staging's group, not production's
    assert list(selectors.requests_awaiting(people.creator)) == [production]  # creator is free text: no rule
    ModelVersion.objects.filter(pk=in_staging.pk).update(registered_by=people.creator)
    assert list(selectors.requests_awaiting(people.creator)) == []  # registered the version


def test_requests_awaiting_costs_the_same_queries_however_many_models_wait(
    in_dev: ModelVersion, envs: Envs, people: People, django_assert_num_queries: Capture
) -> None:
    # given pending staging requests of three models, each under its own policy or the default
    for i in range(3):
        model = RegisteredModelFactory(name=f"scorer-{i}", owner=people.requester)
        version = ModelVersionFactory(model=model, version=1)
        make_deployed(version, envs["dev"], requested_by=people.requester, hours_ago=72)
        if i == 0:
            PromotionPolicy.objects.create(environment=envs["staging"], model=model,
                                           rules={"approvals": [{"group": "infosec", "count": 1}], "gates": []})
        ask(people, version, envs["staging"])
    ask(people, in_dev, envs["staging"])
    approver = User.objects.get(pk=people.approver.pk)

    # when / then: the approver's roles, their accounts (service accounts count as them), the pending
    # requests, the policies they need, the approve_promotion grants that may restrict them
    with django_assert_num_queries(5):
        awaiting = selectors.requests_awaiting(approver)
    # scorer-0's own policy wants InfoSec, not the approver group
    assert sorted(r.version.model.name for r in awaiting) == ["fraud-detector", "scorer-1", "scorer-2"]
    outsider = User.objects.get(pk=people.outsider.pk)
    with django_assert_num_queries(1):  # their roles: nobody without one approves anything
        assert selectors.requests_awaiting(outsider) == []


def test_approving_reads_the_approvals_once_under_the_lock(
    in_staging: ModelVersion, envs: Envs, people: People, django_assert_num_queries: Capture
) -> None:
    # given a production request that already has one of its two approvals
    request = ask(people, in_staging, envs["production"])
    approve(people.model_risk, request)
    approver = User.objects.get(pk=people.infosec.pk)

    # when the second approval completes it
    # then: SAVEPOINT/RELEASE aside, the roles, the lock (with the freeze), the approver's accounts,
    # approve_promotion grants, policy, approvals, the gates' read (previous environment and what is live
    # there), the approval, one UPDATE (evidence, decision, the deployment's follow-up mark) and one INSERT
    # (both entries): 10 statements, down from 14
    with django_assert_num_queries(12):
        approve(approver, request)
    assert fresh(request).state == State.APPROVED
    assert entry_of(request, "promotion.approved").payload["approvers"] == sorted(
        [str(people.model_risk.pk), str(people.infosec.pk)])


def test_an_inactive_approver_is_refused(in_dev: ModelVersion, envs: Envs, people: People) -> None:
    # given an approver whose account was deactivated (their group membership is left as it was)
    request = ask(people, in_dev, envs["staging"])
    User.objects.filter(pk=people.approver.pk).update(is_active=False)
    approver = User.objects.get(pk=people.approver.pk)

    # when / then
    with refused(NotPermitted, "not_in_required_group"):
        approve(approver, request)


# --- request expiry ------------------------------------------------------------------------------------


def test_pending_requests_expire_after_request_expiry_days(in_dev: ModelVersion, envs: Envs, people: People) -> None:
    request = ask(people, in_dev, envs["staging"])
    now = timezone.now()

    assert promotions.promotion_expire(promotion=request, now=now + timedelta(days=13, hours=23)) is False
    assert fresh(request).state == State.PENDING
    assert promotions.promotion_expire(promotion=request, now=now + timedelta(days=14, minutes=1)) is True

    expired = fresh(request)
    assert expired.state == State.EXPIRED and expired.finished_at is not None
    assert_entry(entry_of(request, "promotion.expired"), "promotion.expired", {"type": "system", "id": "scheduler"},
                 request, after_days=14)
    assert promotions.promotion_expire(promotion=request, now=now + timedelta(days=30)) is False  # idempotent
    assert event_types(request).count("promotion.expired") == 1


def test_expire_promotions_task_expires_only_old_pending_requests(
    fraud: RegisteredModel, envs: Envs, people: People
) -> None:
    requests = {}
    for version, name in enumerate(["old_pending", "fresh_pending", "old_approved", "old_withdrawn"], start=1):
        v = ModelVersionFactory(model=fraud, version=version)
        make_deployed(v, envs["dev"], requested_by=people.requester, live=False)
        requests[name] = ask(people, v, envs["staging"])
    approve(people.approver, requests["old_approved"])
    promotions.promotion_withdraw(actor=people.requester, promotion=requests["old_withdrawn"],
                                  reason="no longer needed")
    old = timezone.now() - timedelta(days=15)
    PromotionRequest.objects.filter(pk__in=[requests[n].pk for n in ("old_pending", "old_approved", "old_withdrawn")]
                                    ).update(created_at=old)

    assert tasks.expire_promotions() == 1

    states = {name: fresh(r).state for name, r in requests.items()}
    assert states == {"old_pending": State.EXPIRED, "fresh_pending": State.PENDING,
                      "old_approved": State.APPROVED, "old_withdrawn": State.WITHDRAWN}
    assert tasks.expire_promotions() == 0


def test_request_expiry_follows_the_policy(in_dev: ModelVersion, envs: Envs, people: People) -> None:
    environments.policy_set(actor=people.infosec, environment=envs["staging"],
                            rules={"approvals": [{"group": "approver", "count": 1}], "request_expiry_days": 2})
    request = ask(people, in_dev, envs["staging"])
    PromotionRequest.objects.filter(pk=request.pk).update(created_at=timezone.now() - timedelta(days=2, minutes=1))

    assert tasks.expire_promotions() == 1
    assert entry_of(request, "promotion.expired").payload["after_days"] == 2


# --- break-glass -----------------------------------------------------------------------------------------


def break_glass(people: People, version: ModelVersion, environment: Environment) -> PromotionRequest:
    return break_glass_services.promotion_break_glass(
        actor=people.breakglass, version=version, environment=environment,
        justification="INC-4711: v6 blocks all Amex transactions; v7 fixes it",
    )


def test_break_glass_promotes_at_once_and_opens_a_review(
    in_dev: ModelVersion, envs: Envs, people: People, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    started = timezone.now()
    with django_capture_on_commit_callbacks() as callbacks:
        request = break_glass(people, in_dev, envs["production"])  # not even through staging

    assert request.state == State.APPROVED and request.is_break_glass and request.decided_at is not None
    assert request.requested_by == people.breakglass
    review = BreakGlassReview.objects.get(request=request)
    assert review.state == BreakGlassReview.State.OPEN
    assert started + timedelta(hours=24) <= review.due_at <= timezone.now() + timedelta(hours=24)
    assert_entry(entry_of(request, "promotion.break_glass"), "promotion.break_glass", actor_of(people.breakglass),
                 request, break_glass=True, justification="INC-4711: v6 blocks all Amex transactions; v7 fixes it",
                 review_due_at=review.due_at.isoformat())
    # the evidence is still evaluated and recorded: production's soak gate failed
    gates = entry_of(request, "promotion.break_glass").payload["gates"]
    assert [(g["type"], g["passed"]) for g in gates] == [("soak", False), ("data_classification", True),
                                                          ("model_card", True)]

    assert len(callbacks) == 1
    callbacks[0]()  # the deploy task

    assert fresh(request).state == State.DEPLOYED
    assert fake_registry.of("fraud-detector") == {"production": 7}
    assert selectors.admission_check(model_name="fraud-detector", version=7, environment_name="production").allowed


def test_break_glass_review_hours_follow_the_policy(in_dev: ModelVersion, envs: Envs, people: People) -> None:
    # Set up directly: production is protected (two-person changes) and this policy is below its floor.
    PromotionPolicy.objects.create(
        environment=envs["production"], model=in_dev.model,
        rules={"approvals": [{"group": "infosec", "count": 1}], "break_glass_review_hours": 4})
    started = timezone.now()
    request = break_glass(people, in_dev, envs["production"])
    due = BreakGlassReview.objects.get(request=request).due_at
    assert started + timedelta(hours=4) <= due <= timezone.now() + timedelta(hours=4)


@pytest.mark.parametrize("who", ["requester", "approver", "infosec", "outsider"])
def test_break_glass_by_a_non_member_is_refused(in_dev: ModelVersion, envs: Envs, people: People, who: str) -> None:
    with refused(NotPermitted, "not_permitted") as info:
        break_glass_services.promotion_break_glass(actor=getattr(people, who), version=in_dev,
                                                   environment=envs["production"],
                                                   justification="urgent")
    assert "only members of the break-glass group" in str(info.value)


def test_break_glass_refuses_the_live_version_or_a_request_already_approved(
    in_staging: ModelVersion, envs: Envs, people: People
) -> None:
    with refused(GovernanceError, "already_live"):
        break_glass(people, in_staging, envs["staging"])
    pending = ask(people, in_staging, envs["production"])
    PromotionRequest.objects.filter(pk=pending.pk).update(state=PromotionRequest.State.APPROVED)
    with refused(GovernanceError, "duplicate"):
        break_glass(people, in_staging, envs["production"])


def test_break_glass_supersedes_a_pending_request(in_staging: ModelVersion, envs: Envs, people: People) -> None:
    # given: an ordinary request still waiting for approvers
    pending = ask(people, in_staging, envs["production"])
    # when: the on-call engineer cannot wait
    emergency = break_glass(people, in_staging, envs["production"])
    # then: the ordinary request is withdrawn, on the record, and the emergency one proceeds
    pending.refresh_from_db()
    assert pending.state == PromotionRequest.State.WITHDRAWN
    assert emergency.is_break_glass and emergency.state == PromotionRequest.State.APPROVED
    withdrawn = entry_of(pending, "promotion.withdrawn")
    assert withdrawn.payload["reason"] == "superseded by a break-glass promotion"
    assert withdrawn.actor_id == str(people.breakglass.pk)


def test_break_glass_review_by_a_policy_approver(in_dev: ModelVersion, envs: Envs, people: People) -> None:
    request = break_glass(people, in_dev, envs["production"])
    review = BreakGlassReview.objects.get(request=request)

    with refused(NotPermitted, "self_approval"):
        break_glass_services.break_glass_review_approve(actor=people.breakglass, review=review,
                                                        comment="I reviewed myself")
    for who in ("approver", "outsider", "steward"):  # approver is staging's group, not production's
        with refused(NotPermitted, "not_in_required_group"):
            break_glass_services.break_glass_review_approve(actor=getattr(people, who), review=review,
                                                            comment="looks fine")

    reviewed = break_glass_services.break_glass_review_approve(actor=people.model_risk, review=review,
                                                               comment="Fix verified against INC-4711 replay")

    assert reviewed.state == BreakGlassReview.State.APPROVED and reviewed.reviewed_by == people.model_risk
    assert reviewed.reviewed_at is not None
    assert_entry(entry_of(request, "promotion.break_glass_reviewed"), "promotion.break_glass_reviewed",
                 actor_of(people.model_risk), request, comment="Fix verified against INC-4711 replay", late=False)
    with refused(InvalidState, "invalid_state"):
        break_glass_services.break_glass_review_approve(actor=people.infosec, review=review, comment="again")


def test_overdue_break_glass_review_is_flagged_once_as_a_violation(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    request = break_glass(people, in_dev, envs["production"])
    review = BreakGlassReview.objects.get(request=request)

    assert break_glass_services.break_glass_reviews_flag_overdue(now=review.due_at - timedelta(seconds=1)) == 0
    assert break_glass_services.break_glass_reviews_flag_overdue(now=review.due_at + timedelta(minutes=1)) == 1

    review.refresh_from_db()
    assert review.state == BreakGlassReview.State.OVERDUE
    violation = ComplianceViolation.objects.get()
    assert violation.kind == ComplianceViolation.Kind.OVERDUE_BREAK_GLASS_REVIEW
    assert (violation.subject_type, violation.subject_id) == ("promotion_request", str(request.pk))
    assert f"break-glass promotion #{request.pk} of fraud-detector/7 to production" in violation.summary
    entry = entry_of(request, "compliance.violation")
    assert entry.actor == {"type": "system", "id": "compliance"}
    assert entry.payload["violation_id"] == violation.pk
    assert entry.payload["kind"] == "overdue_break_glass_review"
    assert entry.payload["reverted"] is False
    assert entry.payload["details"]["due_at"] == review.due_at.isoformat()

    before = snapshot()
    assert break_glass_services.break_glass_reviews_flag_overdue(now=review.due_at + timedelta(days=3)) == 0
    assert tasks.flag_overdue_reviews() == 0
    assert snapshot() == before

    late = break_glass_services.break_glass_review_approve(actor=people.infosec, review=review, comment="Reviewed late")
    assert late.state == BreakGlassReview.State.APPROVED
    assert entry_of(request, "promotion.break_glass_reviewed").payload["late"] is True


# --- deploying (fake MLflow registry) --------------------------------------------------------------------


def test_full_deploy_moves_the_alias_and_keeps_the_previous_version(
    in_dev: ModelVersion, envs: Envs, people: People, v6_live_in_staging: PromotionRequest,
    fake_registry: FakeRegistry, django_capture_on_commit_callbacks: Capture,
) -> None:
    request = staging_deployed(people, in_dev, envs, django_capture_on_commit_callbacks)

    assert request.state == State.DEPLOYED and request.deployed_at is not None
    assert request.traffic_percent == 100 and request.deploy_attempts == 1
    assert request.previous_version == v6_live_in_staging.version
    live = LiveDeployment.objects.get(model=in_dev.model, environment=envs["staging"])
    assert (live.version, live.promotion) == (in_dev, request)
    assert fake_registry.calls == [("set", "fraud-detector", "staging", "7")]
    assert fake_registry.of("fraud-detector") == {"staging": 7}
    assert event_types(request) == [
        "promotion.requested", "promotion.approval_given", "promotion.approved",
        "promotion.deploy_started", "promotion.alias_applied", "promotion.deployed", "promotion.receipt_issued",
    ]
    assert_entry(entry_of(request, "promotion.deploy_started"), "promotion.deploy_started", SYSTEM_DEPLOYER, request,
                 strategy="full", alias="staging", previous_version=6)
    assert_entry(entry_of(request, "promotion.alias_applied"), "promotion.alias_applied", SYSTEM_DEPLOYER, request,
                 alias="staging")
    assert_entry(entry_of(request, "promotion.deployed"), "promotion.deployed", SYSTEM_DEPLOYER, request,
                 strategy="full")
    # running the task again changes nothing
    assert tasks.apply_promotion.delay(request.pk).get() == "nothing to do (deployed)"
    assert len(fake_registry.calls) == 1


def test_first_deploy_has_no_previous_version(
    in_dev: ModelVersion, envs: Envs, people: People, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    request = staging_deployed(people, in_dev, envs, django_capture_on_commit_callbacks)

    assert request.state == State.DEPLOYED and request.previous_version is None
    assert entry_of(request, "promotion.deploy_started").payload["previous_version"] is None


@pytest.fixture
def retries_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Eager tasks that retry as a worker would: Celery only re-runs an eager task when errors don't
    propagate, and our tasks only retry off the eager path (tasks._can_retry)."""
    monkeypatch.setattr(tasks, "_can_retry", lambda task: task.request.retries < task.max_retries)
    saved = app.conf.task_eager_propagates
    app.conf.task_eager_propagates = False
    yield
    app.conf.task_eager_propagates = saved


@pytest.mark.usefixtures("retries_run")
def test_registry_errors_are_retried_then_recorded_as_a_failed_deploy(
    in_dev: ModelVersion, envs: Envs, people: People, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    fake_registry.fail_with = MlflowException("registry unavailable")

    request = staging_deployed(people, in_dev, envs, django_capture_on_commit_callbacks)

    assert request.state == State.FAILED and request.finished_at is not None
    assert fake_registry.calls == []  # every set_alias failed
    assert "MLflow registry error: registry unavailable" in request.last_error
    assert not LiveDeployment.objects.filter(environment=envs["staging"]).exists()
    assert event_types(request)[-2:] == ["promotion.deploy_started", "promotion.deploy_failed"]
    assert_entry(entry_of(request, "promotion.deploy_failed"), "promotion.deploy_failed", SYSTEM_DEPLOYER, request)


@pytest.mark.usefixtures("retries_run")
def test_a_transient_registry_error_is_retried_to_success(
    in_dev: ModelVersion, envs: Envs, people: People, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    fake_registry.fail_with, fake_registry.fail_times = MlflowException("502 from the tracking server"), 2

    request = staging_deployed(people, in_dev, envs, django_capture_on_commit_callbacks)

    assert request.state == State.DEPLOYED
    assert fake_registry.calls == [("set", "fraud-detector", "staging", "7")]
    assert event_types(request).count("promotion.deploy_started") == 1


@pytest.mark.usefixtures("retries_run")
def test_deploy_attempts_counts_the_retries(
    in_dev: ModelVersion, envs: Envs, people: People, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    fake_registry.fail_with, fake_registry.fail_times = MlflowException("502 from the tracking server"), 2

    request = staging_deployed(people, in_dev, envs, django_capture_on_commit_callbacks)

    assert request.deploy_attempts == 3


def test_a_registry_error_in_the_embedded_eager_setup_ends_as_a_failed_deploy(
    in_dev: ModelVersion, envs: Envs, people: People, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    fake_registry.fail_with = MlflowException("registry unavailable")
    request = ask(people, in_dev, envs["staging"])

    try:
        with django_capture_on_commit_callbacks(execute=True):
            approve(people.approver, request)
    except Retry:
        raise AssertionError("celery Retry escaped to the approver") from None

    assert fresh(request).state == State.FAILED


def test_canary_rollout_moves_the_candidate_alias_then_the_main_alias(
    in_dev: ModelVersion, envs: Envs, people: People, v6_live_in_staging: PromotionRequest,
    fake_registry: FakeRegistry, django_capture_on_commit_callbacks: Capture,
) -> None:
    request = staging_deployed(people, in_dev, envs, django_capture_on_commit_callbacks, strategy="canary",
                               canary_steps=[10, 50, 100])
    runtime = Actor.service("seldon-staging")

    assert request.state == State.DEPLOYING and request.traffic_percent == 0
    assert fake_registry.of("fraud-detector") == {"staging": 6, "staging-canary": 7}
    assert_entry(entry_of(request, "promotion.deploy_started"), "promotion.deploy_started", SYSTEM_DEPLOYER, request,
                 strategy="canary", alias="staging-canary", previous_version=6)
    assert entry_of(request, "promotion.alias_applied").payload["alias"] == "staging-canary"
    live = LiveDeployment.objects.get(environment=envs["staging"])
    assert live.version == v6_live_in_staging.version  # still v6 until the canary completes

    stepped = deployments.promotion_report_progress(actor=runtime, promotion=request, status="step", traffic_percent=10,
                                                    detail="error rate 0.1%")
    assert stepped.traffic_percent == 10
    for bad in (25, 10, 5, None):  # not a step, not forward
        with refused(GovernanceError, "invalid_step"):
            deployments.promotion_report_progress(actor=runtime, promotion=request, status="step", traffic_percent=bad)
    deployments.promotion_report_progress(actor=runtime, promotion=request, status="step", traffic_percent=50)
    with refused(GovernanceError, "invalid_status"):
        deployments.promotion_report_progress(actor=runtime, promotion=request, status="paused")

    with django_capture_on_commit_callbacks(execute=True):
        deployments.promotion_report_progress(actor=runtime, promotion=request, status="completed")

    done = fresh(request)
    assert done.state == State.DEPLOYED and done.traffic_percent == 100
    assert fake_registry.of("fraud-detector") == {"staging": 7}
    assert LiveDeployment.objects.get(environment=envs["staging"]).version == in_dev
    progress = [e for e in subject_entries(request) if e.event_type == "promotion.progress_reported"]
    assert [(e.payload["status"], e.payload["traffic_percent"]) for e in progress] == [
        ("step", 10), ("step", 50), ("completed", 50)]
    assert progress[0].actor == {"type": "service", "id": "seldon-staging"}
    assert progress[0].payload["detail"] == "error rate 0.1%"
    assert event_types(request)[-3:] == ["promotion.progress_reported", "promotion.alias_applied",
                                         "promotion.deployed"]
    assert [e.payload["alias"] for e in subject_entries(request) if e.event_type == "promotion.alias_applied"] == [
        "staging-canary", "staging"]


def test_production_canary_uses_the_production_canary_alias(
    in_staging: ModelVersion, envs: Envs, people: People, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        request = ask(people, in_staging, envs["production"], strategy="canary")
        approve(people.model_risk, request)
        approve(people.infosec, request)

    assert fresh(request).state == State.DEPLOYING
    assert fake_registry.of("fraud-detector") == {"production-canary": 7}
    admission = selectors.admission_check(model_name="fraud-detector", version=7, environment_name="production")
    assert (admission.allowed, admission.mode, admission.promotion_id) == (True, "canary", request.pk)


def test_failed_canary_removes_the_candidate_alias(
    in_dev: ModelVersion, envs: Envs, people: People, v6_live_in_staging: PromotionRequest,
    fake_registry: FakeRegistry, django_capture_on_commit_callbacks: Capture,
) -> None:
    request = staging_deployed(people, in_dev, envs, django_capture_on_commit_callbacks, strategy="canary")
    runtime = Actor.service("seldon-staging")
    deployments.promotion_report_progress(actor=runtime, promotion=request, status="step", traffic_percent=5)

    with django_capture_on_commit_callbacks(execute=True):
        deployments.promotion_report_progress(actor=runtime, promotion=request, status="failed",
                                              detail="p99 latency 480ms over budget")

    failed = fresh(request)
    assert failed.state == State.FAILED and failed.finished_at is not None
    assert failed.last_error == "p99 latency 480ms over budget"
    assert fake_registry.of("fraud-detector") == {"staging": 6}
    assert LiveDeployment.objects.get(environment=envs["staging"]).version == v6_live_in_staging.version
    assert_entry(entry_of(request, "promotion.deploy_failed"), "promotion.deploy_failed",
                 {"type": "service", "id": "seldon-staging"}, request, error="p99 latency 480ms over budget")
    [removed] = ledger("mlflow.alias_changed")
    assert removed.actor == SYSTEM_DEPLOYER
    assert removed.subject == {"type": "registered_model", "id": "fraud-detector"}
    assert removed.payload == {"model": "fraud-detector", "alias": "staging-canary", "version": None,
                               "previous_version": 7, "reason": f"rollout #{request.pk} failed"}
    with refused(InvalidState, "invalid_state"):
        deployments.promotion_report_progress(actor=runtime, promotion=request, status="step", traffic_percent=25)
    denied = selectors.admission_check(model_name="fraud-detector", version=7, environment_name="staging")
    assert denied.allowed is False


def test_shadow_rollout_uses_the_shadow_alias_and_has_no_traffic_steps(
    in_dev: ModelVersion, envs: Envs, people: People, v6_live_in_staging: PromotionRequest,
    fake_registry: FakeRegistry, django_capture_on_commit_callbacks: Capture,
) -> None:
    request = staging_deployed(people, in_dev, envs, django_capture_on_commit_callbacks, strategy="shadow")
    runtime = Actor.service("seldon-staging")

    assert fake_registry.of("fraud-detector") == {"staging": 6, "staging-shadow": 7}
    admission = selectors.admission_check(model_name="fraud-detector", version=7, environment_name="staging")
    assert (admission.allowed, admission.mode, admission.promotion_id) == (True, "shadow", request.pk)
    with refused(GovernanceError, "invalid_status"):
        deployments.promotion_report_progress(actor=runtime, promotion=request, status="step", traffic_percent=100)

    with django_capture_on_commit_callbacks(execute=True):
        deployments.promotion_report_progress(actor=runtime, promotion=request, status="completed",
                                              detail="agreement 99.2% with v6")

    done = fresh(request)
    # once promoted, the environment's alias serves all of its traffic
    assert (done.state, done.traffic_percent) == (State.DEPLOYED, 100)
    assert fake_registry.of("fraud-detector") == {"staging": 7}


def test_progress_reports_need_a_canary_or_shadow_rollout_in_progress(
    in_dev: ModelVersion, envs: Envs, people: People, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    full = staging_deployed(people, in_dev, envs, django_capture_on_commit_callbacks)
    with refused(InvalidState, "invalid_state"):
        deployments.promotion_report_progress(actor=Actor.service("runtime"), promotion=full, status="completed")


def test_deploy_start_refuses_requests_that_are_not_approved(in_dev: ModelVersion, envs: Envs,
                                                             people: People) -> None:
    request = ask(people, in_dev, envs["staging"])
    with refused(InvalidState, "invalid_state"):
        deployments.promotion_deploy_start(promotion=request)
    with refused(InvalidState, "invalid_state"):
        deployments.promotion_alias_applied(promotion=request, alias="staging")
    with refused(InvalidState, "invalid_state"):
        deployments.promotion_deploy_failed(promotion=request, error="x")


# --- rollback ----------------------------------------------------------------------------------------


def test_rollback_restores_the_previous_version(
    in_dev: ModelVersion, envs: Envs, people: People, v6_live_in_staging: PromotionRequest,
    fake_registry: FakeRegistry, django_capture_on_commit_callbacks: Capture,
) -> None:
    request = staging_deployed(people, in_dev, envs, django_capture_on_commit_callbacks)
    assert fake_registry.of("fraud-detector") == {"staging": 7}

    with django_capture_on_commit_callbacks(execute=True):
        rolled = deployments.promotion_rollback(actor=people.requester, model=in_dev.model, environment=envs["staging"],
                                                reason="False positives doubled after release")

    assert rolled.state == State.ROLLED_BACK and rolled.finished_at is not None
    live = LiveDeployment.objects.get(model=in_dev.model, environment=envs["staging"])
    assert (live.version, live.promotion) == (v6_live_in_staging.version, v6_live_in_staging)
    assert fake_registry.of("fraud-detector") == {"staging": 6}
    assert_entry(entry_of(request, "promotion.rolled_back"), "promotion.rolled_back", actor_of(people.requester),
                 request, reason="False positives doubled after release", restored_version=6)
    [alias_entry] = ledger("mlflow.alias_changed")
    assert alias_entry.payload == {"model": "fraud-detector", "alias": "staging", "version": 6,
                                   "previous_version": 7, "reason": f"rollback of #{request.pk}"}
    assert selectors.admission_check(model_name="fraud-detector", version=6, environment_name="staging").allowed
    assert not selectors.admission_check(model_name="fraud-detector", version=7, environment_name="staging").allowed
    # a rolled-back version no longer opens production
    with refused(GovernanceError, "skips_environment"):
        ask(people, in_dev, envs["production"])


def test_rollback_with_nothing_previous_removes_the_live_deployment(
    in_dev: ModelVersion, envs: Envs, people: People, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    request = staging_deployed(people, in_dev, envs, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        deployments.promotion_rollback(actor=people.infosec, model=in_dev.model, environment=envs["staging"],
                                       reason="Pulled pending investigation")

    assert not LiveDeployment.objects.filter(environment=envs["staging"]).exists()
    assert fake_registry.of("fraud-detector") == {}
    assert entry_of(request, "promotion.rolled_back").payload["restored_version"] is None
    assert [e.payload["version"] for e in ledger("mlflow.alias_changed")] == [None]
    denied = selectors.admission_check(model_name="fraud-detector", version=7, environment_name="staging")
    assert denied.allowed is False and denied.reason == "no version of fraud-detector is approved for staging"
    with refused(InvalidState, "invalid_state"):
        deployments.promotion_rollback(actor=people.infosec, model=in_dev.model, environment=envs["staging"],
                                       reason="again")


@pytest.mark.parametrize("who", ["outsider", "approver", "model_risk", "steward"])
def test_rollback_by_someone_without_the_right_is_refused(
    in_staging: ModelVersion, envs: Envs, people: People, who: str
) -> None:
    with refused(NotPermitted, "not_permitted"):
        deployments.promotion_rollback(actor=getattr(people, who), model=in_staging.model, environment=envs["staging"],
                                       reason="I don't like it")


# --- admission check ---------------------------------------------------------------------------------------


def test_admission_check(
    in_dev: ModelVersion, envs: Envs, people: People, v6_live_in_staging: PromotionRequest,
    fake_registry: FakeRegistry, django_capture_on_commit_callbacks: Capture,
) -> None:
    live = selectors.admission_check(model_name="fraud-detector", version=6, environment_name="staging")
    assert (live.allowed, live.mode, live.promotion_id) == (True, "live", v6_live_in_staging.pk)
    assert live.reason == "live under an approved promotion"

    other = selectors.admission_check(model_name="fraud-detector", version=7, environment_name="staging")
    assert (other.allowed, other.promotion_id, other.mode) == (False, None, None)
    assert other.reason == "version 6 is the approved version of fraud-detector in staging"

    nothing = selectors.admission_check(model_name="fraud-detector", version=6, environment_name="production")
    assert (nothing.allowed, nothing.reason) == (False, "no version of fraud-detector is approved for production")
    unknown = selectors.admission_check(model_name="churn", version=1, environment_name="staging")
    assert unknown.allowed is False

    # a full rollout is not admitted before its alias moved
    request = ask(people, in_dev, envs["staging"])
    approve(people.approver, request)
    deployments.promotion_deploy_start(promotion=request)
    assert not selectors.admission_check(model_name="fraud-detector", version=7, environment_name="staging").allowed
    deployments.promotion_alias_applied(promotion=request, alias="staging")
    now_live = selectors.admission_check(model_name="fraud-detector", version=7, environment_name="staging")
    assert (now_live.allowed, now_live.mode, now_live.promotion_id) == (True, "live", request.pk)


# --- policies, environments and violations ------------------------------------------------------------------

STRICT_STAGING = {
    "approvals": [{"group": "approver", "count": 2}],
    "gates": [{"type": "metric", "metric": "auc", "op": ">=", "value": 0.9}, {"type": "model_card"}],
}


@pytest.mark.parametrize("who", ["requester", "approver", "model_risk", "outsider", "breakglass", "steward"])
def test_policy_set_is_infosec_only(envs: Envs, people: People, who: str) -> None:
    with refused(NotPermitted, "not_permitted") as info:
        environments.policy_set(actor=getattr(people, who), environment=envs["staging"], rules=STRICT_STAGING)
    assert "only InfoSec may change promotion policies" in str(info.value)


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"approvals": [{"group": "approver", "count": 0}]}, "'count' must be a positive integer"),
        ({"gates": [{"type": "vibes"}]}, "unknown gate type 'vibes'"),
        ({"approvals": [], "auto_deploy": True}, "unknown policy key(s): auto_deploy"),
        ("approvals: []", "a policy must be a JSON object"),
    ],
)
def test_policy_set_refuses_invalid_policies(envs: Envs, people: People, rules: Any, message: str) -> None:
    with refused(GovernanceError, "invalid_policy") as info:
        environments.policy_set(actor=people.infosec, environment=envs["staging"], rules=rules)
    assert str(info.value).startswith("invalid policy: ") and message in str(info.value)


def test_policy_set_replaces_a_default_and_adds_a_model_policy(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    replaced = environments.policy_set(actor=people.infosec, environment=envs["staging"], rules=STRICT_STAGING)
    # dev, not production: production is protected (tests/governance/test_change_requests.py)
    per_model = environments.policy_set(actor=people.infosec, environment=envs["dev"], model=in_dev.model,
                                        rules={"approvals": [{"group": "infosec", "count": 1}]})

    assert PromotionPolicy.objects.get(environment=envs["staging"], model=None) == replaced
    assert replaced.rules == STRICT_STAGING
    entries = ledger("policy.updated")
    assert [(e.subject, e.actor) for e in entries] == [
        ({"type": "environment", "id": "staging"}, actor_of(people.infosec)),
        ({"type": "environment", "id": "dev"}, actor_of(people.infosec)),
    ]
    assert entries[0].payload == {"environment": "staging", "model": None, "rules": STRICT_STAGING, "created": False}
    assert entries[1].payload["model"] == "fraud-detector" and entries[1].payload["created"] is True
    policy, row = selectors.policy_for(environment=envs["dev"], model_id=in_dev.model_id)
    assert row == per_model and policy.approval_groups == ("infosec",)
    other_policy, other_row = selectors.policy_for(environment=envs["dev"], model_id=None)
    assert other_policy.approval_groups == () and other_row is not None

    # the new staging policy applies to new requests: two approvers and the auc gate
    request = ask(people, in_dev, envs["staging"])
    assert [g["gate"] for g in request.evidence["gates"]] == ["metric auc >= 0.9", "model card present"]
    assert approve(people.approver, request).state == State.PENDING
    assert approve(people.approver2, request).state == State.APPROVED


def test_environment_without_a_policy_row_uses_the_built_in_default(envs: Envs) -> None:
    PromotionPolicy.objects.filter(environment=envs["staging"]).delete()
    policy, row = selectors.policy_for(environment=envs["staging"], model_id=None)
    assert row is None and policy.approval_groups == ("approver",) and policy.gates == ()


def test_environment_update(envs: Envs, people: People) -> None:
    for who in ("requester", "approver", "outsider"):
        with refused(NotPermitted, "not_permitted"):
            environments.environment_update(actor=getattr(people, who), environment=envs["staging"],
                                            max_data_classification="internal")
    with refused(GovernanceError, "invalid_level"):
        environments.environment_update(actor=people.infosec, environment=envs["staging"],
                                        max_data_classification="top")
    for alias in ("", "stag ing", "staging!"):
        with refused(GovernanceError, "invalid_alias"):
            environments.environment_update(actor=people.infosec, environment=envs["staging"], mlflow_alias=alias)
    with refused(GovernanceError, "duplicate"):
        environments.environment_update(actor=people.infosec, environment=envs["staging"], mlflow_alias="production")
    before = snapshot()
    environments.environment_update(actor=people.infosec, environment=envs["staging"])  # no changes: nothing recorded
    assert snapshot() == before

    updated = environments.environment_update(actor=people.infosec, environment=envs["staging"],
                                              max_data_classification="confidential", mlflow_alias="pre-prod")

    assert Environment.objects.get(pk=updated.pk).mlflow_alias == "pre-prod"
    [entry] = ledger("environment.updated")
    assert entry.actor == actor_of(people.infosec)
    assert entry.subject == {"type": "environment", "id": "staging"}
    assert entry.payload == {"environment": "staging",
                             "changes": {"max_data_classification": "confidential", "mlflow_alias": "pre-prod"}}


def test_lowering_an_environment_ceiling_fails_the_classification_gate(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    environments.environment_update(actor=people.infosec, environment=envs["staging"], max_data_classification="public")
    request = ask(people, in_dev, envs["staging"])
    assert status(request)["failed_gates"] == ["training data classification allowed"]


def test_violations_are_acknowledged_by_infosec_only(in_dev: ModelVersion, envs: Envs, people: People) -> None:
    request = break_glass(people, in_dev, envs["production"])
    break_glass_services.break_glass_reviews_flag_overdue(now=timezone.now() + timedelta(days=2))
    violation = ComplianceViolation.objects.get()

    for who in ("requester", "model_risk", "breakglass", "outsider"):
        with refused(NotPermitted, "not_permitted"):
            compliance.violation_acknowledge(actor=getattr(people, who), violation=violation, comment="seen")
    acknowledged = compliance.violation_acknowledge(actor=people.infosec, violation=violation,
                                                    comment="Escalated to the CRO; review booked")

    assert acknowledged.acknowledged_by == people.infosec and acknowledged.acknowledged_at is not None
    entry = entry_of(request, "compliance.violation_acknowledged")
    assert entry.actor == actor_of(people.infosec)
    assert entry.payload == {"violation_id": violation.pk, "kind": "overdue_break_glass_review",
                             "comment": "Escalated to the CRO; review booked"}
    with refused(InvalidState, "invalid_state"):
        compliance.violation_acknowledge(actor=people.infosec, violation=violation, comment="again")
