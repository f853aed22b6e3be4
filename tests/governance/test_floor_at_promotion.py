"""The policy floor holds when promotions are decided, not only when policies are written.

A stored policy can be below its environment's floor: stored before the floor was raised, or
written to the database behind the product's back (a DBA's ``.update()``). Every decision reads
the effective policy (``selectors.policy_for``): the stricter of the stored policy and the floor.
"""
from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from audit.models import Entry, PendingEntry
from governance import selectors, services
from governance.errors import NotPermitted
from governance.models import Environment, LiveDeployment, ModelVersion, PromotionPolicy, PromotionRequest
from governance.policy import ApprovalRule, Gate, parse_policy
from governance.policy_floor import Floor, floor_problems, raise_to_floor
from tests.console.helpers import client_for
from tests.governance.helpers import FakeRegistry, event_types, make_deployed
from tests.personas import People

pytestmark = [pytest.mark.django_db]

State = PromotionRequest.State
Envs = dict[str, Environment]
COMMENT = "Validation report reviewed"
DBA_RULES: dict[str, Any] = {"approvals": [], "gates": []}


def _dba_writes(environment: Environment, rules: dict[str, Any]) -> None:
    """Behind the product's back: no service, no ledger entry, no floor check."""
    assert PromotionPolicy.objects.filter(environment=environment, model=None).update(rules=rules) == 1


def _ledger_size() -> int:
    return PendingEntry.objects.count() + Entry.objects.count()


@pytest.fixture
def in_staging(v7: ModelVersion, envs: Envs, people: People) -> ModelVersion:
    make_deployed(v7, envs["dev"], requested_by=people.requester, hours_ago=96)
    make_deployed(v7, envs["staging"], requested_by=people.requester, hours_ago=48)
    return v7


def _ask(people: People, version: ModelVersion, environment: Environment) -> PromotionRequest:
    return services.promotion_request(user=people.requester, version=version, environment=environment,
                                      reason="quarterly retrain")


def _fresh(request: PromotionRequest) -> PromotionRequest:
    return PromotionRequest.objects.select_related("version__model", "environment").get(pk=request.pk)


# --- the attack: a DBA empties production's policy --------------------------------------------------------


def test_a_policy_emptied_by_a_dba_still_needs_the_floors_approvals_and_gates(
    in_staging: ModelVersion, envs: Envs, people: People, infosec2: User, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Any,
) -> None:
    _dba_writes(envs["production"], DBA_RULES)

    request = _ask(people, in_staging, envs["production"])

    # Not approved on request, as the stored policy (no approvals, no gates) would have it.
    assert request.state == State.PENDING
    assert "promotion.approved" not in event_types(request)
    assert [g["type"] for g in request.evidence["gates"]] == ["soak", "data_classification"]
    status = services.approval_status(_fresh(request))
    assert status["unmet_rules"] == ["2 more from infosec"] and status["ready"] is False
    assert not LiveDeployment.objects.filter(environment=envs["production"]).exists()
    assert fake_registry.calls == []

    # One approval is not enough: the floor's minimum is two.
    assert services.promotion_approve(user=people.infosec, request=request, comment=COMMENT).state == State.PENDING
    assert fake_registry.calls == []
    # Production still works: a second person completes the floor's rules and it deploys.
    with django_capture_on_commit_callbacks(execute=True):
        approved = services.promotion_approve(user=infosec2, request=request, comment=COMMENT)
    assert approved.state == State.APPROVED
    assert _fresh(request).state == State.DEPLOYED
    assert fake_registry.calls == [("set", "fraud-detector", "production", "7")]


def test_the_floors_soak_gate_holds_a_policy_emptied_by_a_dba(
    v7: ModelVersion, envs: Envs, people: People, infosec2: User, fake_registry: FakeRegistry
) -> None:
    make_deployed(v7, envs["dev"], requested_by=people.requester, hours_ago=96)
    make_deployed(v7, envs["staging"], requested_by=people.requester, hours_ago=2)  # soaked 2h, floor 24h
    _dba_writes(envs["production"], DBA_RULES)
    request = _ask(people, v7, envs["production"])

    services.promotion_approve(user=people.infosec, request=request, comment=COMMENT)
    after = services.promotion_approve(user=infosec2, request=request, comment=COMMENT)

    assert after.state == State.PENDING
    assert services.approval_status(_fresh(request))["failed_gates"] == ["soak 24h in previous environment"]
    assert "promotion.approved" not in event_types(request)
    assert fake_registry.calls == [] and not LiveDeployment.objects.filter(environment=envs["production"]).exists()


def test_a_pending_request_follows_the_floor_once_the_policy_is_lowered_behind_its_back(
    in_staging: ModelVersion, envs: Envs, people: People, fake_registry: FakeRegistry
) -> None:
    request = _ask(people, in_staging, envs["production"])  # model-risk 1 + infosec 1, as installed
    _dba_writes(envs["production"], {"approvals": [{"group": "model-risk", "count": 1}], "gates": []})

    after = services.promotion_approve(user=people.model_risk, request=request, comment=COMMENT)

    assert after.state == State.PENDING
    assert services.approval_status(_fresh(request))["unmet_rules"] == ["1 more from model-risk"]
    assert fake_registry.calls == []


def test_a_deleted_policy_row_falls_back_to_the_builtin_policy_raised_to_the_floor(
    in_staging: ModelVersion, envs: Envs, people: People, fake_registry: FakeRegistry
) -> None:
    PromotionPolicy.objects.filter(environment=envs["production"]).delete()
    request = _ask(people, in_staging, envs["production"])

    after = services.promotion_approve(user=people.approver, request=request, comment=COMMENT)

    assert after.state == State.PENDING
    assert services.approval_status(_fresh(request))["unmet_rules"] == ["1 more from approver"]
    assert fake_registry.calls == []


def test_a_floor_the_product_cannot_add_by_itself_keeps_the_promotion_from_being_approved(
    in_staging: ModelVersion, envs: Envs, people: People, infosec2: User, fake_registry: FakeRegistry,
    settings: Any,
) -> None:
    settings.POLICY_FLOOR = {"production": {"min_approvals": 2, "required_gates": ["metric"]}}
    _dba_writes(envs["production"], DBA_RULES)
    request = _ask(people, in_staging, envs["production"])
    services.promotion_approve(user=people.infosec, request=request, comment=COMMENT)

    after = services.promotion_approve(user=infosec2, request=request, comment=COMMENT)

    assert after.state == State.PENDING
    unmet = services.approval_status(_fresh(request))["unmet_rules"]
    assert len(unmet) == 1 and "below its floor" in unmet[0] and "metric" in unmet[0]
    assert "promotion.approved" not in event_types(request)
    assert fake_registry.calls == []


def test_who_may_approve_follows_the_effective_policy(
    in_staging: ModelVersion, envs: Envs, people: People
) -> None:
    _dba_writes(envs["production"], DBA_RULES)
    request = _ask(people, in_staging, envs["production"])

    assert [r.pk for r in selectors.requests_awaiting(people.infosec)] == [request.pk]
    assert selectors.requests_awaiting(people.model_risk) == []
    before = (_ledger_size(), list(request.approvals.values()))
    with pytest.raises(NotPermitted) as info:
        services.promotion_approve(user=people.model_risk, request=request, comment=COMMENT)
    assert info.value.code == "not_in_required_group"
    assert (_ledger_size(), list(request.approvals.values())) == before


def test_a_policy_meeting_its_floor_decides_as_stored(envs: Envs) -> None:
    policy, _ = selectors.policy_for(environment=envs["production"], model_id=None)
    assert policy.approval_groups == ("model-risk", "infosec")
    assert [g.type for g in policy.gates] == ["soak", "data_classification", "model_card"]
    dev, _ = selectors.policy_for(environment=envs["dev"], model_id=None)
    assert dev.approvals == () and dev.gates == ()  # dev has no floor


def test_policies_for_floors_each_environment_like_policy_for(envs: Envs, fraud: Any) -> None:
    _dba_writes(envs["production"], DBA_RULES)
    pairs = {(envs["production"].pk, fraud.pk), (envs["dev"].pk, fraud.pk)}
    many = selectors.policies_for(pairs)
    for env in ("production", "dev"):
        one, _ = selectors.policy_for(environment=envs[env], model_id=fraud.pk)
        assert many[(envs[env].pk, fraud.pk)] == one


# --- raising a policy to its floor ---------------------------------------------------------------------------


def test_raising_shares_the_shortfall_among_the_policys_groups_and_replaces_a_short_soak() -> None:
    floor = Floor(min_approvals=4, min_soak_hours=24, required_gates=("data_classification", "model_card"))
    stored = parse_policy({"approvals": [{"group": "a", "count": 1}], "gates": [{"type": "soak", "hours": 1},
                                                                               {"type": "model_card"}]})
    raised = raise_to_floor(floor, stored)
    assert raised.approvals == (ApprovalRule("a", 4),)
    assert raised.gates == (Gate("model_card"), Gate("soak", {"hours": 24}), Gate("data_classification"))
    assert floor_problems(floor, raised) == []
    two = parse_policy({"approvals": [{"group": "a", "count": 1}, {"group": "b", "count": 1}]})
    assert raise_to_floor(Floor(min_approvals=5), two).approvals == (ApprovalRule("a", 3), ApprovalRule("b", 2))


def test_raising_turns_on_the_default_rollback_of_unjustified_break_glass_but_not_an_explicit_off() -> None:
    floor = Floor(min_approvals=2)
    assert raise_to_floor(floor, parse_policy(DBA_RULES), DBA_RULES).rollback_unjustified_break_glass is True
    explicit = {**DBA_RULES, "rollback_unjustified_break_glass": False}
    assert raise_to_floor(floor, parse_policy(explicit), explicit).rollback_unjustified_break_glass is False


def test_a_policy_meeting_the_floor_is_returned_unchanged() -> None:
    policy = parse_policy({"approvals": [{"group": "a", "count": 2}], "gates": [{"type": "soak", "hours": 48}]})
    assert raise_to_floor(Floor(min_approvals=2, min_soak_hours=24), policy) is policy
    assert raise_to_floor(None, policy) is policy


# --- what the console shows ------------------------------------------------------------------------------------


def test_the_request_page_shows_the_effective_rules_and_why(
    in_staging: ModelVersion, envs: Envs, people: People
) -> None:
    _dba_writes(envs["production"], DBA_RULES)
    request = _ask(people, in_staging, envs["production"])

    response = client_for(people.infosec).get(reverse("console-request", args=[request.pk]))

    assert response.status_code == 200
    assert response.context["rules"] == [{"group": "infosec", "count": 2, "have": 0}]
    assert response.context["floor_applied"] == ["it requires 0 approval(s), the floor is 2",
                                                 "its soak gate is 0h, the floor is 24h",
                                                 "it must keep the gate(s) data_classification"]
    assert "below its floor (POLICY_FLOOR)" in response.content.decode()
