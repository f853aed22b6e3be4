"""Requesting a promotion from the console: the form on the model page and ``console-model-request``.

Setup: fraud-detector is owned by ``otis-owner`` (no role at all: the owner rule alone lets him request)
and has v6 and v7, neither deployed anywhere. ``rita`` (``people.requester``) holds the ``model-owner`` role and a
grant on the model (so she can see it). ``services.promotion_request`` decides; the page offers the form
to those it would allow, and a refusal is a message with nothing written (``snapshot()`` covers every
governance row and the ledger). With the default policies, dev approves at once and staging needs one
approval from ``approver`` plus the model-card and data-classification gates.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from access.models import Grant
from audit.models import PendingEntry
from governance.models import (
    Environment,
    FreezeWindow,
    ModelVersion,
    PromotionRequest,
    RegisteredModel,
)
from governance.services import promotion_request
from tests.console.helpers import client_for, messages_of
from tests.factories import ModelVersionFactory, RegisteredModelFactory, UserFactory
from tests.governance.helpers import FakeRegistry, actor_of, entry_of, make_deployed, snapshot
from tests.personas import People

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow", "celery_eager")]

State = PromotionRequest.State
Envs = dict[str, Environment]
REASON = "Better recall on card-not-present fraud"
REFUSED = "only the model's owner or a model-owner may request a promotion"


def request_url(model: RegisteredModel) -> str:
    return reverse("console-model-request", args=[model.pk])


def model_url(model: RegisteredModel) -> str:
    return reverse("console-model", args=[model.pk])


def form(chosen: ModelVersion, environment: str = "dev", **fields: str) -> dict[str, str]:
    return {"version": str(chosen.pk), "environment": environment, "strategy": "full", "canary_steps": "",
            "reason": REASON, **fields}


def only_request() -> PromotionRequest:
    created = PromotionRequest.objects.select_related("version", "environment", "requested_by").get()
    return created


@pytest.fixture
def otis(envs: Envs) -> User:
    """fraud-detector's owner, with no role at all (not one of the suite's people)."""
    return UserFactory(username="otis-owner")


@pytest.fixture
def owned(fraud: RegisteredModel, otis: User) -> RegisteredModel:
    fraud.owner = otis
    fraud.save(update_fields=["owner"])
    return fraud


@pytest.fixture
def v6(owned: RegisteredModel) -> ModelVersion:
    return ModelVersionFactory(model=owned, version=6)


@pytest.fixture
def teammate(owned: RegisteredModel, people: People) -> User:
    """A ``model-owner`` who does not own fraud-detector but holds a grant on it (ORM setup)."""
    Grant.objects.create(user=people.requester, resource_type="registered_model", resource_id=owned.pk,
                         permission="view_metadata", expires_at=timezone.now() + timedelta(days=30),
                         justification="on the fraud team", granted_by=people.infosec)
    return people.requester


# --- requesting ------------------------------------------------------------------------------------------


def test_the_owner_requests_dev_and_lands_on_the_approved_request(
    owned: RegisteredModel, v7: ModelVersion, otis: User, envs: Envs, fake_registry: FakeRegistry,
) -> None:
    client = client_for(otis)
    # when
    response = client.post(request_url(owned), form(v7, "dev"))
    # then
    created = only_request()
    assert response.status_code == 302
    assert response["Location"] == reverse("console-request", args=[created.pk])
    assert (created.version, created.environment, created.requested_by) == (v7, envs["dev"], otis)
    assert (created.state, created.strategy, created.reason) == (State.APPROVED, "full", REASON)
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert messages_of(page) == [
        f"Promotion #{created.pk} of fraud-detector v7 to dev is requested and approved at once "
        "(the policy needs no approvals); it deploys next."
    ]
    entry = entry_of(created, "promotion.requested")
    assert entry.actor == actor_of(otis)
    assert entry.payload["reason"] == REASON and entry.payload["strategy"] == "full"
    assert entry_of(created, "promotion.approved").actor == {"type": "system", "id": "policy"}
    assert fake_registry.calls == []  # MLflow only after commit, by the deploy task


def test_a_canary_to_staging_is_pending_and_the_message_says_what_it_needs(
    owned: RegisteredModel, v7: ModelVersion, otis: User, envs: Envs, people: People,
) -> None:
    # given v7 has been deployed in dev
    make_deployed(v7, envs["dev"], requested_by=otis)
    # when
    response = client_for(otis).post(
        request_url(owned), form(v7, "staging", strategy="canary", canary_steps=" 5, 50 ,100"), follow=True
    )
    # then
    created = PromotionRequest.objects.get(environment=envs["staging"])
    assert response.redirect_chain == [(reverse("console-request", args=[created.pk]), 302)]
    assert (created.state, created.strategy, created.canary_steps) == (State.PENDING, "canary", [5, 50, 100])
    assert messages_of(response) == [
        f"Promotion #{created.pk} of fraud-detector v7 to staging is requested and is pending "
        "(it needs 1 more from approver)."
    ]
    assert entry_of(created, "promotion.requested").payload["canary_steps"] == [5, 50, 100]


def test_failed_gates_are_named_in_the_message(
    owned: RegisteredModel, otis: User, envs: Envs,
) -> None:
    # given a version without a model card (nor a model description to fall back on), deployed in dev
    RegisteredModel.objects.filter(pk=owned.pk).update(description="")
    bare = ModelVersionFactory(model=owned, version=8, description="")
    make_deployed(bare, envs["dev"], requested_by=otis)
    # when
    response = client_for(otis).post(request_url(owned), form(bare, "staging"), follow=True)
    # then the request is recorded, pending, and the failing gate is shown
    created = PromotionRequest.objects.get(environment=envs["staging"])
    assert created.state == State.PENDING
    assert messages_of(response) == [
        f"Promotion #{created.pk} of fraud-detector v8 to staging is requested and is pending "
        "(gates failed: model card present; it needs 1 more from approver)."
    ]
    entry_of(created, "promotion.requested")


def test_a_model_owner_who_does_not_own_the_model_may_request(
    owned: RegisteredModel, v7: ModelVersion, teammate: User,
) -> None:
    response = client_for(teammate).post(request_url(owned), form(v7), follow=True)
    created = only_request()
    assert response.redirect_chain[-1][0] == reverse("console-request", args=[created.pk])
    assert created.requested_by == teammate
    assert entry_of(created, "promotion.requested").actor == actor_of(teammate)


@pytest.mark.parametrize("who", ["approver", "model_risk", "infosec", "auditor"])
def test_someone_who_sees_the_model_but_may_not_request_is_refused_and_nothing_changes(
    owned: RegisteredModel, v7: ModelVersion, people: People, auditor: User, who: str,
) -> None:
    # given someone the model page is open to
    user = auditor if who == "auditor" else getattr(people, who)
    client = client_for(user)
    assert client.get(model_url(owned)).status_code == 200
    before = snapshot()
    # when
    response = client.post(request_url(owned), form(v7), follow=True)
    # then
    assert response.redirect_chain == [(model_url(owned), 302)]
    assert messages_of(response) == [REFUSED]
    assert snapshot() == before


def test_an_outsider_gets_a_404_and_nothing_changes(owned: RegisteredModel, v7: ModelVersion, people: People) -> None:
    client = client_for(people.outsider)
    assert client.get(model_url(owned)).status_code == 404
    before = snapshot()
    assert client.post(request_url(owned), form(v7)).status_code == 404
    assert snapshot() == before


def test_a_model_owner_without_a_grant_gets_a_404(owned: RegisteredModel, v7: ModelVersion, people: People) -> None:
    # the role allows requesting, but only on models one can see
    before = snapshot()
    assert client_for(people.requester).post(request_url(owned), form(v7)).status_code == 404
    assert snapshot() == before


def test_a_model_that_does_not_exist_is_a_404(owned: RegisteredModel, v7: ModelVersion, people: People) -> None:
    response = client_for(people.infosec).post(reverse("console-model-request", args=[999999]), form(v7))
    assert response.status_code == 404


def test_a_version_of_another_model_is_refused_and_writes_nothing(
    owned: RegisteredModel, v7: ModelVersion, otis: User,
) -> None:
    # given another model of the same owner, so its version is one he could promote on its own page
    theirs = ModelVersionFactory(model=RegisteredModelFactory(name="churn-predictor", owner=otis), version=1)
    before = snapshot()
    # when
    response = client_for(otis).post(request_url(owned), form(theirs), follow=True)
    # then
    assert response.redirect_chain == [(model_url(owned), 302)]
    assert messages_of(response) == ["choose a version of fraud-detector"]
    assert snapshot() == before


@pytest.mark.parametrize("fields, message", [
    ({"version": ""}, "choose a version of fraud-detector"),
    ({"version": "v7"}, "choose a version of fraud-detector"),
    ({"version": "999999999"}, "choose a version of fraud-detector"),
    ({"environment": ""}, "choose an environment"),
    ({"environment": "moon"}, "no environment 'moon'"),
    ({"strategy": "yolo"}, "strategy must be one of full, canary, shadow"),
])
def test_bad_choices_are_refused_with_a_message_and_write_nothing(
    owned: RegisteredModel, v7: ModelVersion, otis: User, fields: dict[str, str], message: str,
) -> None:
    before = snapshot()
    response = client_for(otis).post(request_url(owned), form(v7, **fields), follow=True)
    assert response.redirect_chain == [(model_url(owned), 302)]
    assert messages_of(response) == [message]
    assert snapshot() == before


def test_skipping_an_environment_is_refused_with_the_services_message(
    owned: RegisteredModel, v7: ModelVersion, otis: User,
) -> None:
    before = snapshot()
    response = client_for(otis).post(request_url(owned), form(v7, "staging"), follow=True)
    assert messages_of(response) == [
        "fraud-detector/7 has not been deployed to dev; promotions may not skip an environment"
    ]
    assert snapshot() == before


SYNTAX = "canary steps must be whole traffic percents separated by commas, e.g. 5,25,50,100"
RULES = "canary steps must be increasing traffic percents between 1 and 100, ending at 100"


@pytest.mark.parametrize("strategy, steps, message", [
    ("canary", "5,abc,100", SYNTAX),
    ("canary", "5;25;100", SYNTAX),
    ("canary", "5,,100", SYNTAX),
    ("canary", "-5,100", SYNTAX),
    ("canary", "1.5,100", SYNTAX),
    ("canary", "50,25,100", RULES),
    ("canary", "5,25,50", RULES),
    ("canary", "0,100", RULES),
    ("canary", "5,25,250", RULES),
    ("full", "5,25,100", "canary steps are only for the canary strategy"),
    ("shadow", "100", "canary steps are only for the canary strategy"),
])
def test_bad_canary_steps_are_refused_and_write_nothing(
    owned: RegisteredModel, v7: ModelVersion, otis: User, strategy: str, steps: str, message: str,
) -> None:
    before = snapshot()
    response = client_for(otis).post(
        request_url(owned), form(v7, strategy=strategy, canary_steps=steps), follow=True
    )
    assert response.redirect_chain == [(model_url(owned), 302)]
    assert messages_of(response) == [message]
    assert snapshot() == before


def test_a_canary_without_steps_gets_the_services_default(
    owned: RegisteredModel, v7: ModelVersion, otis: User,
) -> None:
    client_for(otis).post(request_url(owned), form(v7, strategy="canary", canary_steps="  "))
    assert only_request().canary_steps == [5, 25, 50, 100]


@pytest.mark.parametrize("data", [{"reason": ""}, {"reason": "   "}, {}])
def test_a_request_without_a_reason_is_refused_and_writes_nothing(
    owned: RegisteredModel, v7: ModelVersion, otis: User, data: dict[str, str],
) -> None:
    fields = form(v7)
    del fields["reason"]
    before = snapshot()
    response = client_for(otis).post(request_url(owned), {**fields, **data}, follow=True)
    assert messages_of(response) == ["a reason is required"]
    assert snapshot() == before


def test_a_duplicate_open_request_is_refused_and_writes_nothing(
    owned: RegisteredModel, v7: ModelVersion, otis: User, envs: Envs,
) -> None:
    # given an open (pending) request of v7 to staging
    make_deployed(v7, envs["dev"], requested_by=otis)
    promotion_request(user=otis, version=v7, environment=envs["staging"], reason="first try")
    before = snapshot()
    # when
    response = client_for(otis).post(request_url(owned), form(v7, "staging"), follow=True)
    # then
    assert messages_of(response) == ["fraud-detector/7 already has an open promotion request to staging"]
    assert snapshot() == before


def test_a_frozen_environment_is_refused_and_writes_nothing(
    owned: RegisteredModel, v7: ModelVersion, otis: User, envs: Envs,
) -> None:
    now = timezone.now()
    FreezeWindow.objects.create(environment=envs["dev"], starts_at=now - timedelta(hours=1),
                                ends_at=now + timedelta(hours=1), reason="quarter close")
    before = snapshot()
    response = client_for(otis).post(request_url(owned), form(v7), follow=True)
    [message] = messages_of(response)
    assert message.startswith("dev is frozen until ") and "quarter close" in message
    assert snapshot() == before


def test_a_get_is_refused_and_changes_nothing(owned: RegisteredModel, v7: ModelVersion, otis: User) -> None:
    before = snapshot()
    assert client_for(otis).get(request_url(owned)).status_code == 405
    assert snapshot() == before


def test_an_anonymous_post_is_sent_to_the_login_page_and_writes_nothing(
    owned: RegisteredModel, v7: ModelVersion,
) -> None:
    before = snapshot()
    response = Client().post(request_url(owned), form(v7))
    assert response.status_code == 302 and response["Location"].startswith("/console/login/")
    assert snapshot() == before


def test_csrf_is_enforced(owned: RegisteredModel, v7: ModelVersion, otis: User) -> None:
    client = client_for(otis, enforce_csrf_checks=True)
    before = snapshot()
    assert client.post(request_url(owned), form(v7)).status_code == 403
    assert snapshot() == before
    # with the token from the model page the same post goes through
    token = client.get(model_url(owned)).context["csrf_token"]
    response = client.post(request_url(owned), {**form(v7), "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert only_request().version == v7
    assert PendingEntry.objects.filter(event_type="promotion.requested").count() == 1


# --- the form on the model page ---------------------------------------------------------------------------


@pytest.mark.parametrize("who, offered", [
    ("owner", True),
    ("teammate", True),  # the model-owner role
    ("approver", False),
    ("model_risk", False),
    ("infosec", False),
    ("auditor", False),
])
def test_the_form_is_offered_only_to_those_who_may_request(
    owned: RegisteredModel, v6: ModelVersion, v7: ModelVersion, otis: User, teammate: User, people: People,
    auditor: User, who: str, offered: bool,
) -> None:
    user = {"owner": otis, "teammate": teammate, "auditor": auditor}.get(who) or getattr(people, who)
    response = client_for(user).get(model_url(owned))
    assert response.status_code == 200
    assert response.context["can_request"] is offered
    html = response.content.decode()
    assert (request_url(owned) in html) is offered
    assert ('name="canary_steps"' in html) is offered
    if offered:
        # versions newest first, every environment, every strategy, a mandatory reason and the CSRF token
        assert html.index(f'<option value="{v7.pk}">v7') < html.index(f'<option value="{v6.pk}">v6')
        for name in ("dev", "staging", "production"):
            assert f'<option value="{name}">{name}</option>' in html
        for strategy in ("full", "canary", "shadow"):
            assert f'<option value="{strategy}">{strategy}</option>' in html
        assert 'name="reason" required' in html and 'name="csrfmiddlewaretoken"' in html


def test_no_form_for_a_model_without_versions(envs: Envs, otis: User) -> None:
    empty = RegisteredModelFactory(name="empty-model", owner=otis)
    response = client_for(otis).get(model_url(empty))
    assert response.context["can_request"] is True
    assert request_url(empty) not in response.content.decode()


def test_the_model_page_query_count_stays_bounded_with_the_form(
    owned: RegisteredModel, v7: ModelVersion, otis: User, envs: Envs,
) -> None:
    def count() -> tuple[int, Any]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(model_url(owned))
        assert response.status_code == 200 and response.context["can_request"] is True
        return len(queries), response

    # given v7 in dev (a page with no promotion at all skips the prefetch of their approvals)
    make_deployed(v7, envs["dev"], requested_by=otis)
    client = client_for(otis)
    client.get(model_url(owned))  # the session and the viewer's roles, as on any later page
    small, _ = count()
    # given more environments and many more versions, some deployed
    for i in range(4):
        env = Environment.objects.create(name=f"region-{i}", order=10 + i, mlflow_alias=f"region-{i}")
        for number in range(20 + 10 * i, 25 + 10 * i):
            make_deployed(ModelVersionFactory(model=owned, version=number), env, requested_by=otis,
                          hours_ago=100 - number)
    # when
    large, response = count()
    # then every version and environment is in the form, for the same number of queries
    html = response.content.decode()
    assert html.count('<option value="region-') == 4
    assert len(response.context["versions"]) == 21
    assert large == small
    assert small <= 15


def test_a_restricted_version_without_a_deploy_to_grant_is_refused_and_only_the_denial_is_recorded(
    owned: RegisteredModel, otis: User,
) -> None:
    # given a version trained on restricted data, and no deploy_to grant on dev
    restricted = ModelVersionFactory(model=owned, version=9, data_classification="restricted")
    before = snapshot()
    # when
    response = client_for(otis).post(request_url(owned), form(restricted), follow=True)
    # then the service's refusal is shown; no promotion row, only the denied access check is recorded
    [message] = messages_of(response)
    assert message.startswith("fraud-detector/9 was trained on restricted data: promoting it to dev needs")
    after = snapshot()
    assert after["requests"] == before["requests"] == []
    assert PendingEntry.objects.filter(event_type="access.check_denied").count() == 1
    assert PendingEntry.objects.exclude(event_type="access.check_denied").count() == before["pending_entries"]
