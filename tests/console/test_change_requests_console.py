"""The environments page and two-person control: proposing on protected environments, deciding, withdrawing.

Setup: dev → staging → production (protected) with their migration policies (``ensure_defaults``).
"""
from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from governance.models import Environment, FreezeWindow, GovernanceChangeRequest
from governance.services import change_requests as cr
from tests.console.helpers import client_for, messages_of
from tests.governance.helpers import TIGHTER, production_rules, rules_state
from tests.personas import People

pytestmark = pytest.mark.django_db

Envs = dict[str, Environment]
PAGE = "/console/environments/"





def propose(user: User, rules: Any = TIGHTER) -> GovernanceChangeRequest:
    response = client_for(user).post(reverse("console-environment-policy", args=["production"]),
                                     {"rules": json.dumps(rules), "reason": "INC-12"}, follow=True)
    assert messages_of(response) == [
        "production is protected: the change to the default policy of production is proposed, and applies once a "
        "second InfoSec member approves it."]
    return GovernanceChangeRequest.objects.latest("pk")


def decide(user: User, request: GovernanceChangeRequest, decision: str, **form: str) -> Any:
    return client_for(user).post(reverse(f"console-change-{decision}", args=[request.pk]), form, follow=True)


def test_the_policy_form_of_production_only_proposes(envs: Envs, people: People) -> None:
    before = production_rules()
    request = propose(people.infosec)
    assert production_rules() == before
    assert (request.state, request.change, request.reason) == ("pending", {"rules": TIGHTER}, "INC-12")


def test_a_policy_below_the_floor_is_refused_on_the_page(envs: Envs, people: People) -> None:
    before = rules_state()
    response = client_for(people.infosec).post(reverse("console-environment-policy", args=["production"]),
                                               {"rules": json.dumps({"approvals": [], "gates": []})}, follow=True)
    [message] = messages_of(response)
    assert "below the floor configured for production" in message
    assert rules_state() == before


def test_the_proposer_sees_withdraw_and_a_second_member_sees_approve(
    envs: Envs, people: People, infosec2: User, auditor: User
) -> None:
    request = propose(people.infosec)
    mine = client_for(people.infosec).get(PAGE)
    [change] = mine.context["rows"][2]["changes"]
    assert (change["may_decide"], change["may_withdraw"], change["stale"]) == (False, True, False)
    assert reverse("console-change-approve", args=[request.pk]).encode() not in mine.content
    theirs = client_for(infosec2).get(PAGE)
    [change] = theirs.context["rows"][2]["changes"]
    assert (change["may_decide"], change["may_withdraw"]) == (True, False)
    assert reverse("console-change-approve", args=[request.pk]).encode() in theirs.content
    # Auditors read it, without forms; others do not see it.
    audit = client_for(auditor).get(PAGE)
    [change] = audit.context["rows"][2]["changes"]
    assert (change["may_decide"], change["may_withdraw"]) == (False, False)
    assert client_for(people.requester).get(PAGE).context["rows"][2]["changes"] == []


def test_self_approval_on_the_page_is_refused(envs: Envs, people: People) -> None:
    request = propose(people.infosec)
    before = rules_state()
    response = decide(people.infosec, request, "approve", comment="lgtm")
    assert messages_of(response) == ["you proposed this change, so a second InfoSec member must approve it"]
    assert rules_state() == before


def test_a_second_member_approves_on_the_page(envs: Envs, people: People, infosec2: User) -> None:
    request = propose(people.infosec)
    response = decide(infosec2, request, "approve", comment="reviewed")
    assert messages_of(response) == [f"Change request #{request.pk} is approved and applied."]
    assert production_rules() == TIGHTER


def test_reject_and_withdraw_on_the_page(envs: Envs, people: People, infosec2: User) -> None:
    first, second = propose(people.infosec), propose(people.infosec)
    assert messages_of(decide(infosec2, first, "reject", comment="no")) == [
        f"Change request #{first.pk} is rejected."]
    assert messages_of(decide(people.infosec, second, "withdraw", reason="typo")) == [
        f"Change request #{second.pk} is withdrawn."]
    assert list(GovernanceChangeRequest.objects.order_by("pk").values_list("state", flat=True)) == [
        "rejected", "withdrawn"]


@pytest.mark.parametrize("who", ["requester", "approver", "outsider", "model_risk"])
def test_others_may_not_decide(envs: Envs, people: People, who: str) -> None:
    request = propose(people.infosec)
    before = rules_state()
    for decision in ("approve", "reject", "withdraw"):
        response = client_for(getattr(people, who)).post(reverse(f"console-change-{decision}", args=[request.pk]),
                                                         {"comment": "x", "reason": "x"})
        assert response.status_code == 403
    assert rules_state() == before


def test_an_auditor_may_not_decide(envs: Envs, people: People, auditor: User) -> None:
    request = propose(people.infosec)
    before = rules_state()
    response = decide(auditor, request, "approve", comment="x")
    assert messages_of(response) == ["only InfoSec may approve changes to protected environments"]
    assert rules_state() == before


def test_unknown_change_request_is_404(envs: Envs, people: People) -> None:
    assert client_for(people.infosec).post(reverse("console-change-approve", args=[999]),
                                           {"comment": "x"}).status_code == 404


def test_a_stale_request_is_shown_stale_and_refused(envs: Envs, people: People, infosec2: User) -> None:
    first, second = propose(people.infosec), propose(people.infosec, {**TIGHTER, "approval_expiry_days": 3})
    decide(infosec2, first, "approve", comment="ok")
    [change] = client_for(infosec2).get(PAGE).context["rows"][2]["changes"]
    assert change["request"] == second and change["stale"] is True
    before = rules_state()
    [message] = messages_of(decide(infosec2, second, "approve", comment="ok"))
    assert "stale" in message
    assert rules_state() == before


def test_the_freeze_form_of_production_proposes(envs: Envs, people: People, infosec2: User) -> None:
    response = client_for(people.infosec).post(reverse("console-environment-freeze", args=["production"]), {
        "starts_at": "2099-12-20T00:00", "ends_at": "2100-01-02T06:30", "reason": "peak trading"}, follow=True)
    assert messages_of(response) == [
        "production is protected: the freeze window is proposed, and applies once a second InfoSec member "
        "approves it."]
    assert not FreezeWindow.objects.exists()
    decide(infosec2, GovernanceChangeRequest.objects.get(), "approve", comment="ok")
    assert FreezeWindow.objects.get().created_by == people.infosec


def test_protection_from_the_page(envs: Envs, people: People, infosec2: User) -> None:
    url = reverse("console-environment-protection", args=["staging"])
    assert client_for(people.requester).post(url, {"protected": "1"}).status_code == 403
    response = client_for(people.infosec).post(url, {"protected": "1"}, follow=True)
    assert messages_of(response) == [
        "staging is protected: its rules now change only with a second InfoSec member."]
    assert Environment.objects.get(name="staging").protected
    # Removing it: only a proposal.
    response = client_for(people.infosec).post(url, {"protected": "0", "reason": "migration"}, follow=True)
    assert messages_of(response) == [
        "Removing the protection of staging is proposed: a second InfoSec member decides."]
    assert Environment.objects.get(name="staging").protected
    decide(infosec2, GovernanceChangeRequest.objects.get(), "approve", comment="ok")
    assert not Environment.objects.get(name="staging").protected


def test_the_page_with_pending_requests_has_bounded_queries(
    envs: Envs, people: People, infosec2: User, django_assert_max_num_queries: Any
) -> None:
    client = client_for(infosec2)
    propose(people.infosec)
    # The page's seven (its environments' Kubernetes namespaces among them), the pending requests, the policies
    # and namespaces for their digests, and whose person the viewer is.
    with django_assert_max_num_queries(11):
        client.get(PAGE)
    for _ in range(10):
        cr.change_request_create(actor=people.infosec, environment=envs["production"], kind="policy_set",
                                 change={"rules": TIGHTER})
    with django_assert_max_num_queries(11):
        response = client.get(PAGE)
    assert len(response.context["rows"][2]["changes"]) == 11
