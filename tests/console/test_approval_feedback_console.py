"""After an approval the console says one thing: the approval is recorded, and what is still missing
(approvals by group, a soak's end, an unmet gate) or that every rule is met and it deploys; and whoever
has decided is offered no decision forms again (nor is anyone once the request is no longer pending).

The request is ``pending`` (tests/console/conftest.py): fraud-detector v7, live in dev for 72 hours,
asked for staging by ``people.requester``.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from governance.models import PromotionPolicy, PromotionRequest
from governance.services import promotions
from tests.console.helpers import client_for, messages_of
from tests.personas import People

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow", "celery_eager")]

COMMENT = "Validation report reviewed"


def staging_rules(request: PromotionRequest, rules: dict[str, Any]) -> None:
    PromotionPolicy.objects.filter(environment=request.environment, model=None).update(rules=rules)


def approve(user: User, request: PromotionRequest) -> Any:
    url = reverse("console-request-action", args=[request.pk, "approve"])
    return client_for(user).post(url, {"comment": COMMENT}, follow=True)


def decision_forms(user: User, request: PromotionRequest) -> list[str]:
    html = client_for(user).get(reverse("console-request", args=[request.pk])).content.decode()
    return re.findall(r'action="/console/approvals/requests/\d+/(approve|reject|request-changes)/"', html)


def test_the_last_approval_says_it_is_recorded_and_deploys(pending: PromotionRequest, people: People) -> None:
    response = approve(people.approver, pending)
    assert messages_of(response) == ["Your approval is recorded. All rules met — deploying."]


def test_an_approval_that_leaves_a_rule_unmet_says_what_is_missing(pending: PromotionRequest, people: People) -> None:
    staging_rules(pending, {"approvals": [{"group": "approver", "count": 1}, {"group": "model-risk", "count": 1}],
                            "gates": []})
    response = approve(people.approver, pending)
    assert messages_of(response) == [
        "Your approval is recorded. Still missing: 1 more approval from model-risk needed."
    ]
    pending.refresh_from_db()
    assert pending.state == PromotionRequest.State.PENDING


def test_an_unfinished_soak_says_until_when(pending: PromotionRequest, people: People) -> None:
    # v7 has been live in dev for 72 hours; the policy asks for 100.
    staging_rules(pending, {"approvals": [{"group": "approver", "count": 1}],
                            "gates": [{"type": "soak", "hours": 100}]})
    response = approve(people.approver, pending)
    [message] = messages_of(response)
    expected_end = timezone.now() + timedelta(hours=28)
    assert re.fullmatch(r"Your approval is recorded\. Still missing: soak until (\d{4}-\d\d-\d\d \d\d:\d\d) UTC: "
                        r"72\.0h in dev \(needs 100h\)\.", message), message
    until = datetime.strptime(re.search(r"until (.{16}) UTC", message)[1], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert abs(until - expected_end) < timedelta(minutes=2)


def test_an_unmet_gate_is_named(pending: PromotionRequest, people: People) -> None:
    staging_rules(pending, {"approvals": [{"group": "approver", "count": 1}],
                            "gates": [{"type": "metric", "metric": "auc", "op": ">=", "value": 0.99}]})
    response = approve(people.approver, pending)
    assert messages_of(response) == [
        "Your approval is recorded. Still missing: gate metric auc >= 0.99 unmet (auc = 0.94 (needs >= 0.99))."
    ]


def test_who_has_approved_sees_no_decision_forms_and_the_others_still_do(
    pending: PromotionRequest, people: People
) -> None:
    staging_rules(pending, {"approvals": [{"group": "approver", "count": 2}], "gates": []})
    assert decision_forms(people.approver, pending) == ["approve", "request-changes", "reject"]
    approve(people.approver, pending)
    page = client_for(people.approver).get(reverse("console-request", args=[pending.pk]))
    assert page.context["has_decided"] and not page.context["can_decide"]
    assert decision_forms(people.approver, pending) == []
    assert decision_forms(people.approver2, pending) == ["approve", "request-changes", "reject"]


def test_nobody_is_offered_decisions_once_the_request_is_decided(pending: PromotionRequest, people: People) -> None:
    promotions.promotion_approve(actor=people.approver, promotion=pending, comment=COMMENT)
    for user in (people.approver, people.approver2, people.creator):
        assert decision_forms(user, pending) == []


def test_a_stale_approval_may_be_given_again(pending: PromotionRequest, people: People) -> None:
    staging_rules(pending, {"approvals": [{"group": "approver", "count": 2}], "gates": []})
    approve(people.approver, pending)
    PromotionRequest.objects.filter(pk=pending.pk).update(evidence_digest="0" * 64)  # the evidence changed since
    assert decision_forms(people.approver, pending) == ["approve", "request-changes", "reject"]


def test_the_dashboard_links_a_waiting_promotion_to_its_page(pending: PromotionRequest, people: People) -> None:
    html = client_for(people.approver).get(reverse("console-dashboard")).content.decode()
    assert f'<a href="{reverse("console-request", args=[pending.pk])}">#{pending.pk} fraud-detector/7' in html
