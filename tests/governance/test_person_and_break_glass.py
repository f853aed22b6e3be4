"""One person, one principal (a service account counts as its owner) in the promotion rules; separation of
duties on ``ModelVersion.registered_by`` (never the spoofable ``creator``); ``approve_promotion`` as an
optional per-model / per-environment restriction of approvals; break-glass reviews concluding
"unjustified"; the break-glass budget.

Every attack is written as a refusal checked with ``refused()`` (right error and code, no governance row
changed, no ledger entry written), except the budget refusal, which by design writes exactly one
compliance violation and nothing of the promotion.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import override_settings

from access import roles
from access.models import Grant, ServiceAccount
from access.principals import account_ids, person_id, person_ids, same_person
from access.services.grants import grant_create, grant_revoke
from audit.models import Entry, PendingEntry
from governance import selectors
from governance.errors import GovernanceError, InvalidState, NotPermitted
from governance.models import (
    Approval,
    BreakGlassReview,
    ComplianceViolation,
    Environment,
    LiveDeployment,
    ModelVersion,
    PromotionPolicy,
    PromotionRequest,
)
from governance.services import break_glass, deployments, promotions
from tests.factories import ModelVersionFactory, UserFactory
from tests.governance.helpers import FakeRegistry, actor_of, entry_of, event_types, make_deployed, snapshot
from tests.governance.test_promotions import COMMENT, approve, ask, fresh, refused
from tests.personas import People

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]

State = PromotionRequest.State
Envs = dict[str, Environment]
Capture = Callable[..., Any]
JUSTIFICATION = "INC-4711: v6 blocks all Amex transactions; v7 fixes it"


def bot_of(owner: User, name: str, *role_names: str) -> User:
    """A service account owned by ``owner`` (ORM setup, records nothing) and its user, with roles."""
    user = User.objects.create(username=f"svc-{name}")
    user.set_unusable_password()
    user.save()
    ServiceAccount.objects.create(name=name, user=user, owner=owner)
    if role_names:
        user.groups.add(*Group.objects.filter(name__in=role_names))
    return User.objects.get(pk=user.pk)


@pytest.fixture
def in_dev(v7: ModelVersion, envs: Envs, people: People) -> ModelVersion:
    make_deployed(v7, envs["dev"], requested_by=people.requester, hours_ago=72)
    return v7


@pytest.fixture
def in_staging(in_dev: ModelVersion, envs: Envs, people: People) -> ModelVersion:
    make_deployed(in_dev, envs["staging"], requested_by=people.requester, hours_ago=48)
    return in_dev


# --- principals ----------------------------------------------------------------------------------------


def test_a_service_account_is_its_owner_even_through_a_chain(people: People) -> None:
    bot = bot_of(people.approver, "adam-bot")
    bot_bot = bot_of(bot, "adam-bot-bot")

    assert person_id(bot_bot) == person_id(bot) == person_id(people.approver) == people.approver.pk
    assert same_person(bot_bot, people.approver) and same_person(people.approver.pk, bot.pk)
    assert not same_person(bot, people.approver2)
    assert account_ids(people.approver) == account_ids(bot_bot) == {people.approver.pk, bot.pk, bot_bot.pk}
    assert person_ids([bot_bot.pk, people.approver2.pk]) == {bot_bot.pk: people.approver.pk,
                                                             people.approver2.pk: people.approver2.pk}


# --- separation of duties on registered_by, not the spoofable creator ----------------------------------


def test_a_spoofed_creator_no_longer_blocks_an_honest_approver(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    # given a version whose client-set mlflow.user names the approver (anyone can set it)
    ModelVersion.objects.filter(pk=in_dev.pk).update(creator=people.approver.username)
    request = ask(people, in_dev, envs["staging"])

    assert [r.pk for r in selectors.requests_awaiting(people.approver)] == [request.pk]
    assert approve(people.approver, request).state == State.APPROVED


def test_a_version_registered_by_the_approvers_service_account_is_refused(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    bot = bot_of(people.approver, "adam-pipeline")
    ModelVersion.objects.filter(pk=in_dev.pk).update(registered_by=bot)
    request = ask(people, in_dev, envs["staging"])

    assert selectors.requests_awaiting(people.approver) == []
    with refused(NotPermitted, "self_approval") as info:
        approve(people.approver, request)
    assert f"your service account (user:{bot.pk}) registered this model version" in str(info.value)
    with refused(NotPermitted, "self_approval"):
        promotions.promotion_reject(actor=people.approver, promotion=fresh(request), comment="no")
    with refused(NotPermitted, "self_approval"):
        promotions.promotion_request_changes(actor=people.approver, promotion=fresh(request), comment="more")
    # another approver is not affected
    assert approve(people.approver2, request).state == State.APPROVED


def test_a_promotion_requested_by_your_service_account_cannot_be_approved_by_you(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    bot = bot_of(people.approver, "adam-release", roles.MODEL_OWNER)
    request = ask(people, in_dev, envs["staging"], user=bot)

    assert selectors.requests_awaiting(people.approver) == []
    for service in (promotions.promotion_approve, promotions.promotion_reject, promotions.promotion_request_changes):
        with refused(NotPermitted, "self_approval"):
            service(actor=people.approver, promotion=fresh(request), comment=COMMENT)


def test_the_service_account_cannot_approve_its_owners_request(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    people.requester.groups.add(Group.objects.get(name=roles.APPROVER))
    bot = bot_of(people.requester, "olivia-bot", roles.APPROVER)
    request = ask(people, in_dev, envs["staging"])

    assert selectors.requests_awaiting(bot) == []
    with refused(NotPermitted, "self_approval"):
        approve(bot, request)


def test_one_person_approves_once_whatever_accounts_they_hold(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    # given a staging policy of two approvers, and an approver who owns a bot in the approver group
    PromotionPolicy.objects.filter(environment=envs["staging"], model=None).update(
        rules={"approvals": [{"group": "approver", "count": 2}], "gates": []})
    bot = bot_of(people.approver, "adam-second-vote", roles.APPROVER)
    request = ask(people, in_dev, envs["staging"])
    approve(people.approver, request)

    # the console hides the decision forms by the same rule (promotions.has_decided)
    policy, _ = selectors.policy_for(environment=request.environment, model_id=request.version.model_id)
    approvals = list(fresh(request).approvals.all())
    assert promotions.has_decided(bot, fresh(request), policy, approvals)
    assert promotions.has_decided(people.approver, fresh(request), policy, approvals)
    assert not promotions.has_decided(people.approver2, fresh(request), policy, approvals)
    with refused(GovernanceError, "duplicate_approval"):
        approve(bot, fresh(request))
    with refused(GovernanceError, "duplicate_approval"):
        promotions.promotion_reject(actor=bot, promotion=fresh(request), comment="veto by my other account")
    assert approve(people.approver2, request).state == State.APPROVED


# --- approve_promotion: an optional restriction --------------------------------------------------------


def _grant_approve(people: People, principal: User | Group, resource: Any) -> None:
    grant_create(
        actor=people.infosec, principal=principal, resource=resource, permission="approve_promotion",
        expires_at=_days(30), justification="named validators for this model",
    )


def _days(n: int) -> Any:
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() + timedelta(days=n)


def test_without_approve_promotion_grants_the_group_rule_alone_applies(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    request = ask(people, in_dev, envs["staging"])
    assert selectors.missing_approve_promotion(people.approver, in_dev.model_id, envs["staging"].pk) == []
    assert approve(people.approver, request).state == State.APPROVED


def test_a_model_with_approve_promotion_grants_is_approved_only_by_their_holders(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    _grant_approve(people, people.approver2, in_dev.model)
    request = ask(people, in_dev, envs["staging"])

    assert [r.pk for r in selectors.requests_awaiting(people.approver)] == []
    assert [r.pk for r in selectors.requests_awaiting(people.approver2)] == [request.pk]
    for service in (promotions.promotion_approve, promotions.promotion_reject, promotions.promotion_request_changes):
        with refused(NotPermitted, promotions.NEEDS_APPROVE_PROMOTION) as info:
            service(actor=people.approver, promotion=fresh(request), comment=COMMENT)
        assert "approve_promotion on the model" in str(info.value)
    assert approve(people.approver2, request).state == State.APPROVED


def test_a_holder_outside_the_policys_groups_still_may_not_approve(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    _grant_approve(people, people.steward, in_dev.model)
    request = ask(people, in_dev, envs["staging"])
    with refused(NotPermitted, "not_in_required_group"):
        approve(people.steward, request)


def test_an_environment_grant_to_a_group_restricts_that_environment(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    validators = Group.objects.create(name="staging-validators")
    people.approver2.groups.add(validators)
    _grant_approve(people, validators, envs["staging"])
    request = ask(people, in_dev, envs["staging"])

    with refused(NotPermitted, promotions.NEEDS_APPROVE_PROMOTION) as info:
        approve(people.approver, request)
    assert "the environment" in str(info.value)
    assert approve(User.objects.get(pk=people.approver2.pk), request).state == State.APPROVED


def test_a_revoked_approve_promotion_grant_lifts_the_restriction(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    _grant_approve(people, people.approver2, in_dev.model)
    grant = Grant.objects.get(permission="approve_promotion")
    grant_revoke(actor=people.infosec, grant=grant, reason="validators rotated")
    request = ask(people, in_dev, envs["staging"])
    assert approve(people.approver, request).state == State.APPROVED


# --- break-glass reviews: one person, and "unjustified" -------------------------------------------------


def _break_glass(user: User, version: ModelVersion, environment: Environment) -> PromotionRequest:
    return break_glass.promotion_break_glass(actor=user, version=version, environment=environment,
                                             justification=JUSTIFICATION)


def test_the_owner_of_the_service_account_that_used_break_glass_cannot_review_it(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    bot = bot_of(people.model_risk, "mira-hotfix", roles.BREAK_GLASS)
    request = _break_glass(bot, in_dev, envs["production"])
    review = BreakGlassReview.objects.get(request=request)

    for outcome in break_glass.Outcome.ALL:
        with refused(NotPermitted, "self_approval"):
            break_glass.break_glass_review_conclude(actor=people.model_risk, review=review, outcome=outcome,
                                                    comment="fine by me")


def test_a_version_registered_by_the_reviewers_service_account_is_refused_in_review(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    ModelVersion.objects.filter(pk=in_dev.pk).update(registered_by=bot_of(people.model_risk, "mira-train"),
                                                     creator="somebody-else")
    request = _break_glass(people.breakglass, in_dev, envs["production"])
    review = BreakGlassReview.objects.get(request=request)
    with refused(NotPermitted, "self_approval"):
        break_glass.break_glass_review_approve(actor=people.model_risk, review=review, comment="fine")
    # a spoofed creator naming the reviewer blocks nothing
    ModelVersion.objects.filter(pk=in_dev.pk).update(registered_by=None, creator=people.model_risk.username)
    assert break_glass.break_glass_review_approve(actor=people.model_risk, review=review, comment="fine").state == \
        BreakGlassReview.State.APPROVED


def test_an_invalid_outcome_is_refused(in_dev: ModelVersion, envs: Envs, people: People) -> None:
    review = BreakGlassReview.objects.get(request=_break_glass(people.breakglass, in_dev, envs["production"]))
    with refused(GovernanceError, "invalid_outcome"):
        break_glass.break_glass_review_conclude(actor=people.model_risk, review=review, outcome="meh", comment="x")
    with refused(GovernanceError, "required"):
        break_glass.break_glass_review_conclude(actor=people.model_risk, review=review, outcome="unjustified",
                                                comment="  ")


def test_an_unjustified_break_glass_is_a_violation_and_is_rolled_back(
    in_dev: ModelVersion, envs: Envs, people: People, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    # given v6 live in production, and v7 pushed there by break-glass (deployed)
    v6 = ModelVersionFactory(model=in_dev.model, version=6)
    previous = make_deployed(v6, envs["production"], requested_by=people.requester, hours_ago=24 * 10)
    fake_registry.aliases[("fraud-detector", "production")] = 6
    with django_capture_on_commit_callbacks(execute=True):
        request = _break_glass(people.breakglass, in_dev, envs["production"])
    assert fresh(request).state == State.DEPLOYED
    review = BreakGlassReview.objects.get(request=request)

    # when model-risk concludes it was not justified
    with django_capture_on_commit_callbacks(execute=True):
        concluded = break_glass.break_glass_review_conclude(
            actor=people.model_risk, review=review, outcome="unjustified", comment="No incident: INC-4711 is a typo")

    # then the review is concluded, the release rolled back through the rollback path, and a violation raised
    assert concluded.state == BreakGlassReview.State.UNJUSTIFIED and concluded.reviewed_by == people.model_risk
    assert fresh(request).state == State.ROLLED_BACK
    live = LiveDeployment.objects.get(model=in_dev.model, environment=envs["production"])
    assert (live.version, live.promotion) == (v6, previous)
    assert fake_registry.of("fraud-detector") == {"production": 6}
    violation = ComplianceViolation.objects.get(kind=ComplianceViolation.Kind.UNJUSTIFIED_BREAK_GLASS)
    assert violation.reverted is True and violation.subject_id == str(request.pk)
    assert violation.details["reviewer"] == f"user:{people.model_risk.pk}"
    assert event_types(request)[-3:] == ["promotion.rolled_back", "promotion.break_glass_found_unjustified",
                                         "compliance.violation"]
    found = entry_of(request, "promotion.break_glass_found_unjustified")
    assert found.actor == actor_of(people.model_risk)
    assert found.payload["reverted"] is True and found.payload["late"] is False
    assert entry_of(request, "promotion.rolled_back").payload["restored_version"] == 6
    # concluded once
    with refused(InvalidState, "invalid_state"):
        break_glass.break_glass_review_approve(actor=people.infosec, review=review, comment="justified after all")


def test_an_unjustified_break_glass_not_yet_deploying_is_withdrawn(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    request = _break_glass(people.breakglass, in_dev, envs["production"])  # deploy task not run
    review = BreakGlassReview.objects.get(request=request)

    break_glass.break_glass_review_conclude(actor=people.infosec, review=review, outcome="unjustified",
                                            comment="not an emergency")

    assert fresh(request).state == State.WITHDRAWN
    violation = ComplianceViolation.objects.get(kind="unjustified_break_glass")
    assert violation.reverted is True and violation.details["outcome"] == "withdrawn"
    with pytest.raises(InvalidState):  # the deploy task finds nothing to deploy
        deployments.promotion_deploy_start(promotion=request)


def test_a_policy_may_keep_an_unjustified_break_glass_live(
    in_dev: ModelVersion, envs: Envs, people: People, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    rules = {"approvals": [{"group": "model-risk", "count": 1}], "rollback_unjustified_break_glass": False}
    # Set-up, not under test: production is protected (two-person) and floored, so write the policy directly.
    PromotionPolicy.objects.update_or_create(environment=envs["production"], model=None, defaults={"rules": rules})
    with django_capture_on_commit_callbacks(execute=True):
        request = _break_glass(people.breakglass, in_dev, envs["production"])
    review = BreakGlassReview.objects.get(request=request)

    break_glass.break_glass_review_conclude(actor=people.model_risk, review=review, outcome="unjustified",
                                            comment="should have waited")

    assert fresh(request).state == State.DEPLOYED
    violation = ComplianceViolation.objects.get(kind="unjustified_break_glass")
    assert violation.reverted is False
    assert entry_of(request, "promotion.break_glass_found_unjustified").payload["reverted"] is False


def test_justified_keeps_the_original_approve_behaviour(in_dev: ModelVersion, envs: Envs, people: People) -> None:
    request = _break_glass(people.breakglass, in_dev, envs["production"])
    review = BreakGlassReview.objects.get(request=request)
    concluded = break_glass.break_glass_review_conclude(actor=people.model_risk, review=review, outcome="justified",
                                                        comment="Fix verified")
    assert concluded.state == BreakGlassReview.State.APPROVED
    assert entry_of(request, "promotion.break_glass_reviewed").payload["comment"] == "Fix verified"
    assert not ComplianceViolation.objects.exists()


# --- break-glass budget ---------------------------------------------------------------------------------


def _counts() -> dict[str, int]:
    return {"requests": PromotionRequest.objects.count(), "reviews": BreakGlassReview.objects.count(),
            "live": LiveDeployment.objects.count(), "approvals": Approval.objects.count()}


def _assert_budget_refusal(user: User, version: ModelVersion, environment: Environment, scope: str) -> None:
    """Refused with break_glass_budget_exceeded; nothing of the promotion written; one violation recorded."""
    before, violations = _counts(), ComplianceViolation.objects.count()
    ledger_before = PendingEntry.objects.count() + Entry.objects.count()
    with pytest.raises(NotPermitted) as info:
        _break_glass(user, version, environment)
    assert info.value.code == break_glass.BREAK_GLASS_BUDGET_EXCEEDED
    assert _counts() == before
    assert ComplianceViolation.objects.count() == violations + 1
    assert PendingEntry.objects.count() + Entry.objects.count() == ledger_before + 1  # the violation only
    alert = ComplianceViolation.objects.order_by("-pk").first()
    assert alert is not None and alert.kind == "break_glass_budget_exceeded"
    assert alert.subject_type == "environment" and alert.subject_id == environment.name
    assert alert.details["scope"] == scope and alert.details["person"] == f"user:{user.pk}"
    assert user.username not in str(alert.details)  # no personal data in the hashed body


@override_settings(BREAK_GLASS_MAX_PER_PERSON=1, BREAK_GLASS_MAX_PER_ENVIRONMENT=10)
def test_break_glass_beyond_the_persons_budget_is_refused_and_alerts_infosec(
    in_staging: ModelVersion, envs: Envs, people: People
) -> None:
    _break_glass(people.breakglass, in_staging, envs["production"])
    other = ModelVersionFactory(model=in_staging.model, version=9)
    make_deployed(other, envs["dev"], requested_by=people.requester, hours_ago=3)
    _assert_budget_refusal(people.breakglass, other, envs["staging"], "person")
    # the person's service account draws on the same budget
    bot = bot_of(people.breakglass, "bruno-hotfix", roles.BREAK_GLASS)
    _assert_budget_refusal(bot, other, envs["staging"], "person")
    # somebody else is not affected
    people.infosec.groups.add(Group.objects.get(name=roles.BREAK_GLASS))
    assert _break_glass(User.objects.get(pk=people.infosec.pk), other, envs["staging"]).is_break_glass


@override_settings(BREAK_GLASS_MAX_PER_PERSON=10, BREAK_GLASS_MAX_PER_ENVIRONMENT=1)
def test_break_glass_beyond_the_environments_budget_is_refused(
    in_staging: ModelVersion, envs: Envs, people: People
) -> None:
    _break_glass(people.breakglass, in_staging, envs["production"])
    second = UserFactory(username="bea-breakglass", roles=[roles.BREAK_GLASS])
    other = ModelVersionFactory(model=in_staging.model, version=9)
    make_deployed(other, envs["staging"], requested_by=people.requester, hours_ago=48, live=False)
    _assert_budget_refusal(second, other, envs["production"], "environment")


@override_settings(BREAK_GLASS_MAX_PER_PERSON=1, BREAK_GLASS_WINDOW_DAYS=7)
def test_break_glass_budget_is_a_rolling_window(in_staging: ModelVersion, envs: Envs, people: People) -> None:
    from datetime import timedelta

    from django.utils import timezone

    used = _break_glass(people.breakglass, in_staging, envs["production"])
    PromotionRequest.objects.filter(pk=used.pk).update(created_at=timezone.now() - timedelta(days=8))
    other = ModelVersionFactory(model=in_staging.model, version=9)
    make_deployed(other, envs["dev"], requested_by=people.requester, hours_ago=3)
    assert _break_glass(people.breakglass, other, envs["staging"]).is_break_glass


def test_a_refused_break_glass_by_a_non_member_raises_no_budget_alert(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    before = snapshot()
    with pytest.raises(NotPermitted):
        _break_glass(people.outsider, in_dev, envs["production"])
    assert snapshot() == before


# --- unjustified while deploying: the deploy path honours the conclusion ---------------------------------------


@pytest.fixture
def v6_live_in_production(in_dev: ModelVersion, envs: Envs, people: People,
                          fake_registry: FakeRegistry) -> PromotionRequest:
    v6 = ModelVersionFactory(model=in_dev.model, version=6)
    previous = make_deployed(v6, envs["production"], requested_by=people.requester, hours_ago=24 * 10)
    fake_registry.aliases[("fraud-detector", "production")] = 6
    return previous


def _deploying_break_glass(people: People, version: ModelVersion, envs: Envs) -> PromotionRequest:
    """A break-glass promotion the deploy task has started (deploying), its alias not moved yet."""
    request = _break_glass(people.breakglass, version, envs["production"])  # its task is not run
    return deployments.promotion_deploy_start(promotion=request)


def _conclude_unjustified(people: People, request: PromotionRequest) -> str:
    break_glass.break_glass_review_conclude(actor=people.model_risk,
                                            review=BreakGlassReview.objects.get(request=request),
                                            outcome="unjustified", comment="No incident: INC-4711 is a typo")
    return ComplianceViolation.objects.get(kind="unjustified_break_glass").details["outcome"]


def test_the_deploy_task_refuses_to_move_the_alias_once_the_break_glass_is_found_unjustified(
    in_dev: ModelVersion, envs: Envs, people: People, fake_registry: FakeRegistry,
    v6_live_in_production: PromotionRequest, django_capture_on_commit_callbacks: Capture,
) -> None:
    from governance import tasks

    request = _deploying_break_glass(people, in_dev, envs)
    assert _conclude_unjustified(people, request).startswith("to be rolled back")

    with django_capture_on_commit_callbacks(execute=True):
        outcome = tasks.apply_promotion.apply(args=[request.pk]).get()

    assert outcome == "refused: break-glass found unjustified"
    assert fresh(request).state == State.FAILED
    assert "found unjustified" in fresh(request).last_error
    assert fake_registry.calls == []  # MLflow's alias never moved
    live = LiveDeployment.objects.get(model=in_dev.model, environment=envs["production"])
    assert live.promotion == v6_live_in_production
    assert event_types(request)[-1] == "promotion.deploy_failed"


def test_a_deployment_completing_after_the_unjustified_conclusion_is_rolled_back_right_after(
    in_dev: ModelVersion, envs: Envs, people: People, fake_registry: FakeRegistry,
    v6_live_in_production: PromotionRequest, django_capture_on_commit_callbacks: Capture,
) -> None:
    request = _deploying_break_glass(people, in_dev, envs)
    fake_registry.set_alias("fraud-detector", "production", 7)  # the task's alias move, already under way
    _conclude_unjustified(people, request)

    with django_capture_on_commit_callbacks(execute=True):
        deployments.promotion_alias_applied(promotion=request, alias="production")

    assert fresh(request).state == State.ROLLED_BACK
    live = LiveDeployment.objects.get(model=in_dev.model, environment=envs["production"])
    assert (live.version.version, live.promotion) == (6, v6_live_in_production)
    assert fake_registry.of("fraud-detector") == {"production": 6}  # through the same rollback path
    assert event_types(request)[-2:] == ["promotion.deployed", "promotion.rolled_back"]
    rolled = entry_of(request, "promotion.rolled_back")
    assert rolled.actor == actor_of(people.model_risk) and "deployment completed" in rolled.payload["reason"]


def test_a_deployment_completing_is_kept_when_the_policy_keeps_unjustified_break_glass(
    in_dev: ModelVersion, envs: Envs, people: People, fake_registry: FakeRegistry,
    v6_live_in_production: PromotionRequest, django_capture_on_commit_callbacks: Capture,
) -> None:
    rules = {"approvals": [{"group": "model-risk", "count": 2}], "gates": [{"type": "soak", "hours": 24},
             {"type": "data_classification"}], "rollback_unjustified_break_glass": False}
    PromotionPolicy.objects.update_or_create(environment=envs["production"], model=None, defaults={"rules": rules})
    request = _deploying_break_glass(people, in_dev, envs)
    _conclude_unjustified(people, request)

    with django_capture_on_commit_callbacks(execute=True):
        deployments.promotion_alias_applied(promotion=request, alias="production")

    assert fresh(request).state == State.DEPLOYED
    assert "promotion.rolled_back" not in event_types(request)
