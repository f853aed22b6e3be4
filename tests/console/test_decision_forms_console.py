"""The request page offers approve / reject / request changes only to those the services would hear.

Separation of duties (the requester, whoever registered the version, as a person) and the
``approve_promotion`` restriction hide the forms, with a short note why; the services still refuse a
forged POST. The request page and the approvals inbox stay within a fixed number of queries.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from access.models import ServiceAccount
from access.services.grants import grant_create
from governance.models import Environment, ModelVersion, PromotionRequest, RegisteredModel
from governance.services import promotions
from tests.console.helpers import client_for
from tests.factories import ModelVersionFactory
from tests.governance.helpers import make_deployed, snapshot
from tests.personas import People

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow", "celery_eager")]

Envs = dict[str, Environment]
FORMS = ("approve", "reject", "request-changes")


def _page(user: User, request: PromotionRequest) -> Any:
    response = client_for(user).get(reverse("console-request", args=[request.pk]))
    assert response.status_code == 200
    return response


def _forms(response: Any, request: PromotionRequest) -> list[str]:
    html = response.content.decode()
    return [a for a in FORMS if reverse("console-request-action", args=[request.pk, a]) in html]


def _grant_approve(people: People, principal: User, resource: Any) -> None:
    grant_create(actor=people.infosec, principal=principal, resource=resource,
                               permission="approve_promotion", expires_at=timezone.now() + timedelta(days=30),
                               justification="named validators for this model")


def _bot_of(owner: User, name: str) -> User:
    bot = User.objects.create(username=f"svc-{name}")
    ServiceAccount.objects.create(name=name, user=bot, owner=owner)
    return bot


def test_an_approver_may_decide_and_sees_the_forms(pending: PromotionRequest, people: People) -> None:
    response = _page(people.approver, pending)
    assert response.context["can_decide"] and response.context["decide_note"] == ""
    assert _forms(response, pending) == list(FORMS)


def test_the_requester_in_the_approval_group_sees_no_forms_and_why(pending: PromotionRequest, people: People) -> None:
    people.requester.groups.add(*people.approver.groups.all())
    response = _page(people.requester, pending)
    assert not response.context["can_decide"] and _forms(response, pending) == []
    assert "you requested this promotion" in response.context["decide_note"]
    assert "You cannot approve, reject or request changes here" in response.content.decode()
    # A forged POST is still refused by the service: nothing written.
    before = snapshot()
    client_for(people.requester).post(reverse("console-request-action", args=[pending.pk, "approve"]),
                                      {"comment": "mine"})
    assert snapshot() == before


def test_the_owner_of_the_account_that_registered_the_version_sees_no_forms(
    pending: PromotionRequest, people: People
) -> None:
    ModelVersion.objects.filter(pk=pending.version_id).update(registered_by=_bot_of(people.approver, "adam-train"))
    response = _page(people.approver, pending)
    assert not response.context["can_decide"] and _forms(response, pending) == []
    assert "registered this model version" in response.context["decide_note"]


def test_the_approve_promotion_restriction_hides_the_forms_from_non_holders(
    pending: PromotionRequest, people: People
) -> None:
    _grant_approve(people, people.approver2, pending.version.model)

    refused = _page(people.approver, pending)
    assert not refused.context["can_decide"] and _forms(refused, pending) == []
    assert "restricted to holders of approve_promotion on the model" in refused.context["decide_note"]
    holder = _page(people.approver2, pending)
    assert holder.context["can_decide"] and _forms(holder, pending) == list(FORMS)


def test_someone_outside_the_approval_groups_sees_no_forms_and_no_note(
    pending: PromotionRequest, people: People
) -> None:
    response = _page(people.infosec, pending)  # InfoSec sees every request, but staging wants an approver
    assert not response.context["can_decide"] and _forms(response, pending) == []
    assert response.context["decide_note"] == ""


# --- bounded queries -------------------------------------------------------------------------------------


def _queries(user: User, url: str) -> int:
    client = client_for(user)
    client.get(url)  # warm the session and caches alike for both measurements
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_the_request_page_takes_the_same_queries_whatever_the_restrictions_and_approvals(
    pending: PromotionRequest, people: People, envs: Envs
) -> None:
    url = reverse("console-request", args=[pending.pk])
    plain = _queries(people.approver, url)
    for holder in (people.approver2, people.creator, people.model_risk):
        _grant_approve(people, holder, pending.version.model)
    _grant_approve(people, people.approver, envs["staging"])
    restricted = _queries(people.approver, url)
    assert restricted <= plain + 1  # the restriction's grants: read once, however many
    assert restricted <= 40


def test_the_inbox_takes_the_same_queries_for_2_and_12_restricted_requests(
    owned: RegisteredModel, envs: Envs, people: People
) -> None:
    def make(first: int, n: int) -> None:
        for number in range(first, first + n):
            version = ModelVersionFactory(model=owned, version=number)
            make_deployed(version, envs["dev"], requested_by=people.requester, live=False)
            promotions.promotion_request(actor=people.requester, version=version, environment=envs["staging"],
                                         reason="retrain")

    _grant_approve(people, people.approver, owned)  # the model and the environment restrict approvals
    _grant_approve(people, people.approver, envs["staging"])
    make(100, 2)
    url = reverse("console-approvals")
    few = _queries(people.approver, url)
    make(200, 10)
    many = _queries(people.approver, url)

    assert few == many
    assert len(client_for(people.approver).get(url).context["awaiting"]) == 12
    # approver2 is in the group but holds no approve_promotion: nothing waits for them
    assert client_for(people.approver2).get(url).context["awaiting"] == []
