"""Two-person control over the rules of protected environments (``governance.services.change_requests``).

Each attack is a test that shows it refused and that nothing was written: no ledger entry, no
change request, no change to the environment, its policies or its freeze windows.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from access import roles
from access.models import ServiceAccount
from governance.errors import GovernanceError, InvalidState, NotPermitted
from governance.models import Environment, FreezeWindow, GovernanceChangeRequest
from governance.services import change_requests as cr
from governance.services import environments
from tests.access.helpers import ledger
from tests.catalog import Resources
from tests.governance.helpers import TIGHTER, ZERO, production_rules, rules_state
from tests.personas import People

pytestmark = pytest.mark.django_db

Kind = GovernanceChangeRequest.Kind


@pytest.fixture
def no_floor(settings: Any) -> None:
    """No floor: the two-person control is shown to hold on its own."""
    settings.POLICY_FLOOR = {}


@pytest.fixture
def production() -> Environment:
    return Environment.objects.get(name="production")


@pytest.fixture
def staging() -> Environment:
    return Environment.objects.get(name="staging")


@contextmanager
def writes_nothing() -> Iterator[None]:
    before = rules_state()
    yield
    assert rules_state() == before


def propose_policy(user: User, environment: Environment, rules: Any, **kw: Any) -> GovernanceChangeRequest:
    return cr.change_request_create(actor=user, environment=environment, kind=Kind.POLICY_SET,
                                    change={"rules": rules}, **kw)


def infosec_bot(owner: User) -> User:
    """A service account of ``owner``, itself in InfoSec (the strongest form of the attack)."""
    from access.services.service_accounts import service_account_create

    account = service_account_create(actor=owner, name=f"{owner.username}-bot")
    account.user.groups.add(Group.objects.get(name=roles.INFOSEC))
    return User.objects.get(pk=account.user_id)


# --- the attack of the issue: one InfoSec member lowers production ------------------------------------------


def test_production_is_protected_from_the_start(production: Environment, staging: Environment) -> None:
    assert production.protected and not staging.protected


def test_one_infosec_member_cannot_lower_production_in_one_step(
    no_floor: None, people: People, production: Environment
) -> None:
    with writes_nothing(), pytest.raises(InvalidState) as info:
        environments.policy_set(actor=people.infosec, environment=production, rules=ZERO)
    assert info.value.code == "two_person_required"
    assert "production is protected" in str(info.value)


def test_a_model_policy_in_production_is_protected_too(
    no_floor: None, people: People, res: Resources, production: Environment
) -> None:
    with writes_nothing(), pytest.raises(InvalidState, match="protected"):
        environments.policy_set(actor=people.infosec, environment=production, rules=ZERO, model=res.model)


def test_the_proposal_applies_only_when_a_second_person_approves(
    no_floor: None, people: People, production: Environment
) -> None:
    before = production_rules()
    request = propose_policy(people.infosec, production, ZERO, reason="drill")
    # Nothing applied: a pending proposal only.
    assert production_rules() == before and request.state == "pending"

    # The proposer approving: refused, nothing written.
    with writes_nothing(), pytest.raises(NotPermitted) as info:
        cr.change_request_approve(actor=people.infosec, change_request=request, comment="lgtm")
    assert info.value.code == "self_approval"

    # A second InfoSec member approves: applied, in the same transaction, and recorded.
    done = cr.change_request_approve(actor=people.infosec2, change_request=request, comment="agreed with the CISO")
    assert done.state == "applied" and done.decided_by == people.infosec2
    assert production_rules() == ZERO

    [requested] = ledger("governance_change.requested")
    [approved] = ledger("governance_change.approved")
    [updated] = ledger("policy.updated")
    assert requested == {"change_request_id": request.pk, "kind": "policy_set", "environment": "production",
                         "model": None, "change": {"rules": ZERO}, "proposed_by": f"user:{people.infosec.pk}",
                         "reason": "drill"}
    assert approved == {"change_request_id": request.pk, "kind": "policy_set", "environment": "production",
                        "model": None, "proposed_by": f"user:{people.infosec.pk}",
                        "approved_by": f"user:{people.infosec2.pk}", "comment": "agreed with the CISO"}
    assert updated["rules"] == ZERO and updated["environment"] == "production"


def test_no_username_in_the_ledger_bodies(no_floor: None, people: People, production: Environment) -> None:
    request = propose_policy(people.infosec, production, TIGHTER)
    cr.change_request_approve(actor=people.infosec2, change_request=request, comment="ok")
    for event in ("governance_change.requested", "governance_change.approved"):
        text = repr(ledger(event))
        assert people.infosec.username not in text and people.infosec2.username not in text


def test_the_proposers_service_account_cannot_approve(
    no_floor: None, people: People, production: Environment
) -> None:
    bot = infosec_bot(people.infosec)
    request = propose_policy(people.infosec, production, ZERO)
    with writes_nothing(), pytest.raises(NotPermitted) as info:
        cr.change_request_approve(actor=bot, change_request=request, comment="lgtm")
    assert info.value.code == "self_approval"
    with writes_nothing(), pytest.raises(NotPermitted):
        cr.change_request_reject(actor=bot, change_request=request, comment="hide it")


def test_a_proposal_by_a_service_account_cannot_be_approved_by_its_owner(
    no_floor: None, people: People, production: Environment
) -> None:
    bot = infosec_bot(people.infosec)
    request = propose_policy(bot, production, ZERO)
    with writes_nothing(), pytest.raises(NotPermitted):
        cr.change_request_approve(actor=people.infosec, change_request=request, comment="lgtm")


@pytest.mark.parametrize("who", ["owner", "auditor", "outsider", "steward", "requester"])
def test_only_infosec_proposes_approves_or_rejects(
    no_floor: None, people: People, production: Environment, who: str
) -> None:
    user = getattr(people, who)
    request = propose_policy(people.infosec, production, TIGHTER)
    with writes_nothing():
        with pytest.raises(NotPermitted):
            propose_policy(user, production, TIGHTER)
        with pytest.raises(NotPermitted):
            cr.change_request_approve(actor=user, change_request=request, comment="ok")
        with pytest.raises(NotPermitted):
            cr.change_request_reject(actor=user, change_request=request, comment="no")
        with pytest.raises(NotPermitted):
            cr.change_request_withdraw(actor=user, change_request=request, reason="no")


def test_reject_and_withdraw(no_floor: None, people: People, production: Environment) -> None:
    before = production_rules()
    first = propose_policy(people.infosec, production, ZERO)
    with writes_nothing(), pytest.raises(NotPermitted):
        cr.change_request_reject(actor=people.infosec, change_request=first, comment="oops")  # the proposer withdraws
    cr.change_request_reject(actor=people.infosec2, change_request=first, comment="no ticket")
    second = propose_policy(people.infosec, production, ZERO)
    with writes_nothing(), pytest.raises(NotPermitted):
        cr.change_request_withdraw(actor=people.infosec2, change_request=second, reason="not yours")
    cr.change_request_withdraw(actor=people.infosec, change_request=second, reason="typo")
    assert production_rules() == before
    assert [r["comment"] for r in ledger("governance_change.rejected")] == ["no ticket"]
    assert [r["reason"] for r in ledger("governance_change.withdrawn")] == ["typo"]
    # Decided requests stay decided.
    for request in (first, second):
        with writes_nothing(), pytest.raises(InvalidState):
            cr.change_request_approve(actor=people.infosec2, change_request=request, comment="late")


def test_a_stale_proposal_is_refused(no_floor: None, people: People, production: Environment) -> None:
    lower = propose_policy(people.infosec, production, ZERO)
    tighter = propose_policy(people.infosec2, production, TIGHTER)
    cr.change_request_approve(actor=people.infosec2, change_request=lower, comment="ok")
    # The rules changed since ``tighter`` was proposed: approving it now would silently undo the other change.
    with writes_nothing(), pytest.raises(InvalidState) as info:
        cr.change_request_approve(actor=people.infosec, change_request=tighter, comment="ok")
    assert info.value.code == "stale"


def test_a_change_made_outside_the_product_makes_a_proposal_stale(
    no_floor: None, people: People, production: Environment
) -> None:
    request = propose_policy(people.infosec, production, TIGHTER)
    Environment.objects.filter(pk=production.pk).update(max_data_classification="restricted")
    with writes_nothing(), pytest.raises(InvalidState, match="stale"):
        cr.change_request_approve(actor=people.infosec2, change_request=request, comment="ok")


def test_approval_needs_a_comment(no_floor: None, people: People, production: Environment) -> None:
    request = propose_policy(people.infosec, production, TIGHTER)
    with writes_nothing(), pytest.raises(GovernanceError, match="comment is required"):
        cr.change_request_approve(actor=people.infosec2, change_request=request, comment="  ")


# --- the floor ---------------------------------------------------------------------------------------------


def test_the_floor_holds_even_when_two_people_agree(people: People, production: Environment) -> None:
    with writes_nothing(), pytest.raises(GovernanceError) as info:
        propose_policy(people.infosec, production, ZERO)
    assert info.value.code == "below_floor"
    assert "POLICY_FLOOR" in str(info.value) and "2" in str(info.value)


def test_a_floor_raised_after_the_proposal_is_checked_at_approval(
    settings: Any, people: People, production: Environment
) -> None:
    request = propose_policy(people.infosec, production, TIGHTER)
    settings.POLICY_FLOOR = {"production": {"min_approvals": 3}}
    with writes_nothing(), pytest.raises(GovernanceError) as info:
        cr.change_request_approve(actor=people.infosec2, change_request=request, comment="ok")
    assert info.value.code == "below_floor"


def test_the_floor_holds_for_model_policies(people: People, res: Resources, production: Environment) -> None:
    with writes_nothing(), pytest.raises(GovernanceError, match="below the floor"):
        propose_policy(people.infosec, production, ZERO, model=res.model)


def test_the_floor_holds_for_unprotected_environments_named_in_it(
    settings: Any, people: People, staging: Environment
) -> None:
    settings.POLICY_FLOOR = {"staging": {"min_approvals": 1, "required_gates": ["model_card"]}}
    with writes_nothing(), pytest.raises(GovernanceError) as info:
        environments.policy_set(actor=people.infosec, environment=staging, rules={"approvals": [], "gates": []})
    assert "1" in str(info.value) and "model_card" in str(info.value)
    environments.policy_set(actor=people.infosec, environment=staging,
                            rules={"approvals": [{"group": "approver", "count": 1}], "gates": [{"type": "model_card"}]})


@pytest.mark.parametrize("rules", [
    {"approvals": [{"group": "infosec", "count": 2}], "gates": [{"type": "soak", "hours": 23},
                                                                {"type": "data_classification"}]},
    {"approvals": [{"group": "infosec", "count": 2}], "gates": [{"type": "soak", "hours": 24}]},
    {"approvals": [{"group": "infosec", "count": 1}], "gates": [{"type": "soak", "hours": 24},
                                                                {"type": "data_classification"}]},
])
def test_each_part_of_the_default_production_floor(people: People, production: Environment, rules: Any) -> None:
    with writes_nothing(), pytest.raises(GovernanceError, match="below the floor"):
        propose_policy(people.infosec, production, rules)


# --- the path, freeze windows and the protection itself ----------------------------------------------------------


def test_unprotecting_production_is_itself_two_person(people: People, production: Environment) -> None:
    request = cr.change_request_create(actor=people.infosec, environment=production,
                                       kind=Kind.ENVIRONMENT_PROTECTION, change={"protected": False})
    assert Environment.objects.get(pk=production.pk).protected
    with writes_nothing(), pytest.raises(NotPermitted):
        cr.change_request_approve(actor=people.infosec, change_request=request, comment="ok")
    cr.change_request_approve(actor=people.infosec2, change_request=request, comment="migration window")
    assert not Environment.objects.get(pk=production.pk).protected
    assert ledger("environment.protection_changed") == [{"environment": "production", "protected": False}]


def test_protecting_is_one_step_and_infosec_only(people: People, staging: Environment) -> None:
    with writes_nothing(), pytest.raises(NotPermitted):
        environments.environment_protect(actor=people.owner, environment=staging)
    environments.environment_protect(actor=people.infosec, environment=staging)
    assert Environment.objects.get(pk=staging.pk).protected
    with writes_nothing(), pytest.raises(InvalidState, match="staging is protected"):
        environments.policy_set(actor=people.infosec, environment=staging, rules=ZERO)


def test_a_protection_proposal_only_removes_it(people: People, production: Environment, staging: Environment) -> None:
    with writes_nothing():
        with pytest.raises(GovernanceError):
            cr.change_request_create(actor=people.infosec, environment=production, kind=Kind.ENVIRONMENT_PROTECTION,
                                     change={"protected": True})
        with pytest.raises(InvalidState, match="not protected"):
            cr.change_request_create(actor=people.infosec, environment=staging, kind=Kind.ENVIRONMENT_PROTECTION,
                                     change={"protected": False})


@pytest.mark.parametrize("change", [
    {"mlflow_alias": "prod-b"},
    {"max_data_classification": "restricted"},
    {"description": "whatever"},
])
def test_changing_production_itself_is_two_person(people: People, production: Environment,
                                                  change: dict[str, str]) -> None:
    with writes_nothing(), pytest.raises(InvalidState, match="protected"):
        environments.environment_update(actor=people.infosec, environment=production, **change)
    request = cr.change_request_create(actor=people.infosec, environment=production, kind=Kind.ENVIRONMENT_UPDATE,
                                       change=change)
    cr.change_request_approve(actor=people.infosec2, change_request=request, comment="ok")
    [key] = change
    assert getattr(Environment.objects.get(pk=production.pk), key) == change[key]
    assert ledger("environment.updated")[-1]["changes"] == change


def test_adding_an_environment_below_production_is_two_person(people: People, production: Environment) -> None:
    Environment.objects.filter(pk=production.pk).update(order=5)
    fields = {"name": "pre-prod", "order": 3, "mlflow_alias": "pre-prod", "max_data_classification": "confidential"}
    with writes_nothing(), pytest.raises(InvalidState, match="path below production"):
        environments.environment_create(actor=people.infosec, **fields)
    # Above production changes nobody's path to production: one step.
    environments.environment_create(actor=people.infosec, name="canary-eu", order=9, mlflow_alias="canary-eu",
                                    max_data_classification="confidential")
    production.refresh_from_db()
    request = cr.change_request_create(actor=people.infosec, environment=production, kind=Kind.ENVIRONMENT_CREATE,
                                       change=fields)
    cr.change_request_approve(actor=people.infosec2, change_request=request, comment="ok")
    assert Environment.objects.get(name="pre-prod").order == 3


def test_an_environment_proposal_must_target_the_protected_environment_it_joins(
    people: People, production: Environment
) -> None:
    with writes_nothing(), pytest.raises(GovernanceError, match="does not join the path"):
        cr.change_request_create(actor=people.infosec, environment=production, kind=Kind.ENVIRONMENT_CREATE,
                                 change={"name": "late", "order": 9, "mlflow_alias": "late",
                                         "max_data_classification": "public"})


def test_freeze_windows_of_production_are_two_person(people: People, production: Environment) -> None:
    tomorrow = timezone.now().date() + timedelta(days=1)
    starts = datetime.combine(tomorrow, time(9, 0), tzinfo=UTC)
    ends = starts + timedelta(days=1, hours=8, minutes=30)
    with writes_nothing(), pytest.raises(InvalidState, match="protected"):
        environments.freeze_window_create(actor=people.infosec, environment=production, starts_at=starts, ends_at=ends,
                                          reason="peak")
    request = cr.change_request_create(actor=people.infosec, environment=production,
                                       kind=Kind.FREEZE_WINDOW_CREATE,
                                       change={"starts_at": starts, "ends_at": ends, "reason": " peak "})
    assert request.change == {"starts_at": f"{tomorrow}T09:00:00+00:00",
                              "ends_at": f"{tomorrow + timedelta(days=1)}T17:30:00+00:00", "reason": "peak"}
    cr.change_request_approve(actor=people.infosec2, change_request=request, comment="ok")
    freeze = FreezeWindow.objects.get()
    assert (freeze.starts_at, freeze.ends_at, freeze.created_by) == (starts, ends, people.infosec)


def test_unprotected_environments_keep_the_one_step_path(people: People, staging: Environment) -> None:
    environments.policy_set(actor=people.infosec, environment=staging, rules=ZERO)
    environments.environment_update(actor=people.infosec, environment=staging, description="x")
    with writes_nothing(), pytest.raises(InvalidState, match="not protected"):
        propose_policy(people.infosec, staging, ZERO)


# --- bad input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "change", "message"), [
    ("delete_everything", {}, "unknown kind"),
    (Kind.POLICY_SET, [], "JSON object"),
    (Kind.POLICY_SET, {}, "needs its 'rules'"),
    (Kind.POLICY_SET, {"rules": TIGHTER, "also": 1}, "unknown field"),
    (Kind.POLICY_SET, {"rules": {"approvals": "all"}}, "invalid policy"),
    (Kind.ENVIRONMENT_UPDATE, {}, "nothing to change"),
    (Kind.ENVIRONMENT_UPDATE, {"order": 0}, "unknown field"),
    (Kind.ENVIRONMENT_UPDATE, {"mlflow_alias": "staging"}, "used by another"),
    (Kind.ENVIRONMENT_UPDATE, {"mlflow_alias": 7}, "are text"),
    (Kind.ENVIRONMENT_UPDATE, {"max_data_classification": "top"}, "classification"),
    (Kind.FREEZE_WINDOW_CREATE, {"starts_at": "2099-01-01T00:00:00", "ends_at": "2099-01-02T00:00:00Z",
                                 "reason": "r"}, "time zone"),
    (Kind.FREEZE_WINDOW_CREATE, {"starts_at": "soon", "ends_at": "2099-01-02T00:00:00Z", "reason": "r"},
     "ISO 8601"),
    (Kind.FREEZE_WINDOW_CREATE, {"starts_at": "2099-13-01T00:00:00Z", "ends_at": "2099-01-02T00:00:00Z",
                                 "reason": "r"}, "ISO 8601"),
    (Kind.FREEZE_WINDOW_CREATE, {"starts_at": "2020-01-01T00:00:00Z", "ends_at": "2020-01-02T00:00:00Z",
                                 "reason": "r"}, "already ended"),
    (Kind.FREEZE_WINDOW_CREATE, {"starts_at": "2099-01-01T00:00:00Z", "ends_at": "2099-01-02T00:00:00Z"},
     "reason is required"),
    (Kind.FREEZE_WINDOW_CREATE, {"starts_at": "2099-01-01T00:00:00Z", "ends_at": "2099-01-02T00:00:00Z",
                                 "reason": 5}, "reason is text"),
    (Kind.ENVIRONMENT_CREATE, {"name": "x y", "order": 1, "mlflow_alias": "x", "max_data_classification": "public"},
     "environment name"),
])
def test_bad_proposals_are_refused_with_the_problem_named(
    people: People, production: Environment, kind: str, change: Any, message: str
) -> None:
    with writes_nothing(), pytest.raises(GovernanceError, match=message):
        cr.change_request_create(actor=people.infosec, environment=production, kind=kind, change=change)


def test_a_model_is_named_only_by_a_policy_change(people: People, res: Resources, production: Environment) -> None:
    with writes_nothing(), pytest.raises(GovernanceError, match="only a policy change"):
        cr.change_request_create(actor=people.infosec, environment=production, kind=Kind.ENVIRONMENT_UPDATE,
                                 change={"description": "x"}, model=res.model)


def test_a_reason_too_long_is_refused(people: People, production: Environment) -> None:
    with writes_nothing(), pytest.raises(GovernanceError, match="at most 5000"):
        propose_policy(people.infosec, production, TIGHTER, reason="x" * 5001)


# --- who may read ------------------------------------------------------------------------------------------------


def test_change_requests_are_visible_to_infosec_and_auditors_only(people: People, production: Environment) -> None:
    propose_policy(people.infosec, production, TIGHTER)
    for user in (people.infosec, people.infosec2, people.auditor):
        assert cr.change_requests_visible_to(user).count() == 1
    for user in (people.owner, people.outsider, people.steward):
        assert cr.change_requests_visible_to(user).count() == 0


def test_service_account_model_is_used(people: People) -> None:
    # The bot helper really makes a service account (the attack tests would prove nothing otherwise).
    bot = infosec_bot(people.infosec)
    assert ServiceAccount.objects.get(user=bot).owner == people.infosec
    assert roles.INFOSEC in {g.name for g in bot.groups.all()}
