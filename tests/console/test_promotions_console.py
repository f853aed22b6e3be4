"""Console pages of promotion governance: models, the approvals inbox, a request's page and its
actions, break-glass reviews.

Personas come from tests/personas.py (requester = model-owner and the model's owner,
approver = the staging policy's group, infosec, outsider, creator, break-glass, steward) plus an
auditor. Every action goes through the service: its refusal is shown as a message and nothing is
written (``snapshot()`` covers every governance row and the ledger); its success lands in the ledger.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.urls import reverse

from governance.models import (
    Approval,
    BreakGlassReview,
    Environment,
    PromotionRequest,
    RegisteredModel,
)
from governance.services import break_glass, promotions
from tests.console.helpers import client_for, messages_of
from tests.factories import ModelVersionFactory, RegisteredModelFactory
from tests.governance.helpers import actor_of, entry_of, event_types, make_deployed, snapshot
from tests.personas import People

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow", "celery_eager")]

State = PromotionRequest.State
Envs = dict[str, Environment]
COMMENT = "Validation report MRV-2026-114 reviewed; metrics within tolerance"


# --- helpers and setup ---------------------------------------------------------------------------------


def post(user: User, url: str, **data: str) -> Any:
    return client_for(user).post(url, data, follow=True)


def action_url(request: PromotionRequest, action: str) -> str:
    return reverse("console-request-action", args=[request.pk, action])


# --- login ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, args", [
    ("console-models", []), ("console-model", [1]), ("console-approvals", []), ("console-request", [1]),
    ("console-breakglass", []),
])
def test_anonymous_visitors_are_sent_to_the_login_page(envs: Envs, name: str, args: list[int]) -> None:
    response = Client().get(reverse(name, args=args))
    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/?next=")


def test_an_anonymous_post_is_sent_to_the_login_page_and_writes_nothing(pending: PromotionRequest) -> None:
    before = snapshot()
    response = Client().post(action_url(pending, "approve"), {"comment": COMMENT})
    assert response.status_code == 302 and response["Location"].startswith("/console/login/")
    assert snapshot() == before


# --- models -----------------------------------------------------------------------------------------------


def test_the_models_list_shows_owner_latest_version_classification_and_live_versions(
    pending: PromotionRequest, people: People, owned: RegisteredModel
) -> None:
    ModelVersionFactory(model=owned, version=8, data_classification="confidential")
    response = client_for(people.approver).get(reverse("console-models"))
    assert response.status_code == 200
    row = response.context["rows"][0]
    assert row["model"] == owned and row["model"].latest_version == 8
    assert row["level"] == "confidential"
    assert row["current"] == [7, None, None]  # v7 live in dev only
    html = response.content.decode()
    assert "fraud-detector" in html and "rita" in html


def test_an_outsider_sees_no_model_and_gets_a_404_for_one(pending: PromotionRequest, people: People,
                                                          owned: RegisteredModel) -> None:
    client = client_for(people.outsider)
    assert client.get(reverse("console-models")).context["rows"] == []
    assert client.get(reverse("console-model", args=[owned.pk])).status_code == 404


def test_the_model_page_shows_the_promotion_timeline_per_environment(
    pending: PromotionRequest, people: People, owned: RegisteredModel, envs: Envs
) -> None:
    # given a break-glass promotion to production and an approval on the staging request
    promotions.promotion_approve(actor=people.approver, promotion=pending, comment=COMMENT)
    # when
    response = client_for(people.infosec).get(reverse("console-model", args=[owned.pk]))
    # then
    assert response.status_code == 200
    lanes = {lane["environment"].name: lane for lane in response.context["timeline"]}
    assert [lane["environment"].name for lane in response.context["timeline"]] == ["dev", "staging", "production"]
    assert lanes["dev"]["live"].version.version == 7
    assert [p.pk for p in lanes["staging"]["promotions"]] == [pending.pk]
    html = response.content.decode()
    assert COMMENT in html and "adam" in html and "quarterly retrain" in html


def test_the_models_list_has_a_bounded_number_of_queries(
    envs: Envs, people: People, django_assert_max_num_queries: Any
) -> None:
    def make(n: int) -> None:
        for i in range(n):
            model = RegisteredModelFactory(name=f"bulk-{n}-{i}", owner=people.requester)
            version = ModelVersionFactory(model=model, version=1)
            make_deployed(version, envs["dev"], requested_by=people.requester)

    client = client_for(people.approver)
    make(2)
    with django_assert_max_num_queries(12):
        assert client.get(reverse("console-models")).status_code == 200
    make(23)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("console-models"))
    assert len(response.context["rows"]) == 25


# --- approvals inbox ------------------------------------------------------------------------------------


def test_the_inbox_shows_an_approver_what_awaits_them(pending: PromotionRequest, people: People) -> None:
    response = client_for(people.approver).get(reverse("console-approvals"))
    assert response.status_code == 200
    assert [r.pk for r in response.context["awaiting"]] == [pending.pk]
    assert list(response.context["page"].object_list) == []


def test_the_requester_sees_their_request_but_not_as_awaiting_them(pending: PromotionRequest, people: People) -> None:
    response = client_for(people.requester).get(reverse("console-approvals"))
    assert response.context["awaiting"] == []
    assert [r.pk for r in response.context["page"].object_list] == [pending.pk]


def test_an_outsider_sees_no_request_and_gets_a_404_for_one(pending: PromotionRequest, people: People) -> None:
    client = client_for(people.outsider)
    response = client.get(reverse("console-approvals"))
    assert response.context["awaiting"] == [] and list(response.context["page"].object_list) == []
    assert client.get(reverse("console-request", args=[pending.pk])).status_code == 404
    before = snapshot()
    assert client.post(action_url(pending, "approve"), {"comment": COMMENT}).status_code == 404
    assert snapshot() == before


def test_the_inbox_has_a_bounded_number_of_queries(
    owned: RegisteredModel, envs: Envs, people: People, django_assert_max_num_queries: Any
) -> None:
    def make(first: int, n: int) -> None:
        for number in range(first, first + n):
            version = ModelVersionFactory(model=owned, version=number)
            make_deployed(version, envs["dev"], requested_by=people.requester, live=False)
            promotions.promotion_request(actor=people.requester, version=version, environment=envs["staging"],
                                         reason="retrain")

    client = client_for(people.approver)
    make(100, 2)
    with django_assert_max_num_queries(14):
        assert len(client.get(reverse("console-approvals")).context["awaiting"]) == 2
    make(200, 20)
    with django_assert_max_num_queries(14):
        assert len(client.get(reverse("console-approvals")).context["awaiting"]) == 22


# --- a request's page --------------------------------------------------------------------------------------


def test_the_request_page_shows_gates_rules_and_offers_decisions_to_an_approver(
    pending: PromotionRequest, people: People
) -> None:
    response = client_for(people.approver).get(reverse("console-request", args=[pending.pk]))
    assert response.status_code == 200
    ctx = response.context
    assert ctx["can_decide"] and not ctx["can_withdraw"]
    assert ctx["rules"] == [{"group": "approver", "count": 1, "have": 0}]
    assert {g["gate"] for g in ctx["gates"]} == {"model card present", "training data classification allowed"}
    assert ctx["status"]["unmet_rules"] == ["1 more from approver"]
    html = response.content.decode()
    assert action_url(pending, "approve") in html and action_url(pending, "request-changes") in html
    assert "promotion.requested" in html  # the ledger trail
    # the gates' evaluation time as the console shows times, not as stored
    evaluated = datetime.fromisoformat(pending.evidence["evaluated_at"]).astimezone(UTC)
    assert f"{evaluated:%Y-%m-%d %H:%M:%S} UTC</time>." in html


def test_an_auditor_reads_the_request_but_is_offered_no_action(pending: PromotionRequest, auditor: User) -> None:
    response = client_for(auditor).get(reverse("console-request", args=[pending.pk]))
    assert response.status_code == 200
    assert not response.context["can_decide"] and not response.context["can_withdraw"]
    assert action_url(pending, "approve") not in response.content.decode()


def test_an_approver_approves_and_it_is_in_the_ledger(pending: PromotionRequest, people: People) -> None:
    response = post(people.approver, action_url(pending, "approve"), comment=COMMENT)
    assert response.status_code == 200
    assert messages_of(response) == ["Your approval is recorded. All rules met — deploying."]
    pending.refresh_from_db()
    assert pending.state == State.APPROVED
    entry = entry_of(pending, "promotion.approval_given")
    assert entry.actor == actor_of(people.approver) and entry.payload["comment"] == COMMENT


@pytest.mark.parametrize("comment", ["", "   "])
def test_an_empty_comment_shows_a_message_and_writes_nothing(
    pending: PromotionRequest, people: People, comment: str
) -> None:
    before = snapshot()
    response = post(people.approver, action_url(pending, "approve"), comment=comment)
    assert messages_of(response) == ["a comment is required"]
    assert snapshot() == before


def test_the_requester_cannot_approve_their_own_request(pending: PromotionRequest, people: People) -> None:
    # given the requester is also an approver
    people.requester.groups.add(*people.approver.groups.all())
    before = snapshot()
    page = client_for(people.requester).get(reverse("console-request", args=[pending.pk]))
    assert not page.context["can_decide"]  # not offered (see test_decision_forms_console.py) ...
    # when the form is forged anyway, the service refuses
    response = post(people.requester, action_url(pending, "approve"), comment=COMMENT)
    # then
    assert messages_of(response) == ["you requested this promotion, so you cannot approve or reject it"]
    assert snapshot() == before


def test_an_approver_outside_the_policy_is_refused_with_a_message(pending: PromotionRequest, auditor: User) -> None:
    before = snapshot()
    response = post(auditor, action_url(pending, "approve"), comment=COMMENT)
    assert messages_of(response) == ["approvals for this promotion must come from: approver"]
    assert snapshot() == before


def test_an_approver_rejects(pending: PromotionRequest, people: People) -> None:
    response = post(people.approver, action_url(pending, "reject"), comment="AUC regression on the holdout")
    assert messages_of(response) == [f"Promotion #{pending.pk} is rejected."]
    pending.refresh_from_db()
    assert pending.state == State.REJECTED
    assert entry_of(pending, "promotion.rejected").payload["comment"] == "AUC regression on the holdout"


def test_an_approver_requests_changes(pending: PromotionRequest, people: People) -> None:
    response = post(people.approver, action_url(pending, "request-changes"), comment="extend the model card")
    assert "sent back to its requester" in messages_of(response)[0]
    pending.refresh_from_db()
    assert pending.state == State.CHANGES_REQUESTED
    entry = entry_of(pending, "promotion.changes_requested")
    assert entry.actor == actor_of(people.approver)
    assert entry.payload["comment"] == "extend the model card" and entry.payload["group"] == "approver"
    # the page shows the comment from the ledger trail
    page = client_for(people.requester).get(reverse("console-request", args=[pending.pk]))
    assert "extend the model card" in page.content.decode()


def test_the_requester_withdraws(pending: PromotionRequest, people: People) -> None:
    page = client_for(people.requester).get(reverse("console-request", args=[pending.pk]))
    assert page.context["can_withdraw"] and not page.context["can_decide"]
    response = post(people.requester, action_url(pending, "withdraw"), comment="superseded by v8")
    assert messages_of(response) == [f"Promotion #{pending.pk} is withdrawn."]
    pending.refresh_from_db()
    assert pending.state == State.WITHDRAWN
    assert event_types(pending)[-1] == "promotion.withdrawn"


def test_a_decision_on_a_closed_request_is_refused_with_a_message(pending: PromotionRequest, people: People) -> None:
    promotions.promotion_withdraw(actor=people.requester, promotion=pending, reason="superseded")
    before = snapshot()
    response = post(people.approver, action_url(pending, "approve"), comment=COMMENT)
    assert messages_of(response) == [
        f"promotion #{pending.pk} is withdrawn; only pending requests can be approved"
    ]
    assert snapshot() == before


def test_csrf_is_enforced_on_actions(pending: PromotionRequest, people: People) -> None:
    client = client_for(people.approver, enforce_csrf_checks=True)
    before = snapshot()
    response = client.post(action_url(pending, "approve"), {"comment": COMMENT})
    assert response.status_code == 403
    assert snapshot() == before
    # with the token from the page the same post goes through
    page = client.get(reverse("console-request", args=[pending.pk]))
    token = page.context["csrf_token"]
    response = client.post(action_url(pending, "approve"), {"comment": COMMENT, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert Approval.objects.filter(request=pending, approver=people.approver).exists()


def test_an_unknown_action_is_a_404_and_a_get_is_refused(pending: PromotionRequest, people: People) -> None:
    client = client_for(people.approver)
    assert client.post(action_url(pending, "deploy"), {"comment": COMMENT}).status_code == 404
    assert client.get(action_url(pending, "approve")).status_code == 405


# --- break-glass reviews -------------------------------------------------------------------------------------


def test_break_glass_reviews_are_listed_and_approved_with_a_comment(
    broken_glass: BreakGlassReview, people: People
) -> None:
    page = client_for(people.approver).get(reverse("console-breakglass"))
    assert [r.pk for r in page.context["page"].object_list] == [broken_glass.pk]
    assert page.context["may_review"]
    url = reverse("console-breakglass-approve", args=[broken_glass.pk])
    response = post(people.approver, url, comment="hotfix reviewed with the fraud team")
    assert messages_of(response) == [f"Break-glass promotion #{broken_glass.request_id} is reviewed."]
    broken_glass.refresh_from_db()
    assert broken_glass.state == BreakGlassReview.State.APPROVED
    entry = entry_of(broken_glass.request, "promotion.break_glass_reviewed")
    assert entry.actor == actor_of(people.approver)


def test_the_break_glass_user_cannot_review_their_own_release(broken_glass: BreakGlassReview,
                                                              people: People) -> None:
    people.breakglass.groups.add(*people.approver.groups.all())
    before = snapshot()
    url = reverse("console-breakglass-approve", args=[broken_glass.pk])
    response = post(people.breakglass, url, comment="fine")
    assert messages_of(response) == ["you used break-glass, so you cannot review it"]
    assert snapshot() == before


def test_an_outsider_cannot_see_or_review_break_glass(broken_glass: BreakGlassReview, people: People) -> None:
    client = client_for(people.outsider)
    assert list(client.get(reverse("console-breakglass")).context["page"].object_list) == []
    before = snapshot()
    url = reverse("console-breakglass-approve", args=[broken_glass.pk])
    assert client.post(url, {"comment": "x"}).status_code == 404
    assert snapshot() == before


@override_settings(BREAK_GLASS_MAX_PER_PERSON=100, BREAK_GLASS_MAX_PER_ENVIRONMENT=100)  # 16 break-glasses
def test_the_break_glass_list_has_a_bounded_number_of_queries(
    owned: RegisteredModel, envs: Envs, people: People, django_assert_max_num_queries: Any
) -> None:
    def make(first: int, n: int) -> None:
        for number in range(first, first + n):
            version = ModelVersionFactory(model=owned, version=number)
            make_deployed(version, envs["dev"], requested_by=people.requester, live=False)
            break_glass.promotion_break_glass(actor=people.breakglass, version=version, environment=envs["staging"],
                                              justification="fraud spike")

    client = client_for(people.approver)
    make(100, 1)
    with django_assert_max_num_queries(10):
        client.get(reverse("console-breakglass"))
    make(200, 15)
    with django_assert_max_num_queries(10):
        assert len(client.get(reverse("console-breakglass")).context["page"].object_list) == 16
