"""Rolling back from the console: the form on the model page and ``console-model-rollback``.

Setup: fraud-detector (owned by ``requester``) has v6 deployed in staging three weeks ago and v7
deployed over it two days ago, so a rollback in staging puts v6 back. The service
(``services.promotion_rollback``) decides; the page only offers the form to those it would allow, and
a refusal is a message with nothing written (``snapshot()`` covers every governance row and the
ledger). MLflow is the fake registry: the alias move runs after commit, captured in the tests.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from access import roles
from audit.models import PendingEntry
from governance.models import (
    Environment,
    LiveDeployment,
    ModelVersion,
    PromotionRequest,
    RegisteredModel,
)
from tests.console.helpers import client_for, messages_of
from tests.factories import ModelVersionFactory, RegisteredModelFactory, UserFactory
from tests.governance.helpers import FakeRegistry, actor_of, entry_of, make_deployed, snapshot
from tests.personas import People

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow", "celery_eager")]

State = PromotionRequest.State
Envs = dict[str, Environment]
REASON = "False positives doubled after the release"
REFUSED = "only the model's owner, a model-owner, InfoSec or break-glass may roll back"


def rollback_url(model: RegisteredModel, environment: str) -> str:
    return reverse("console-model-rollback", args=[model.pk, environment])


def model_url(model: RegisteredModel) -> str:
    return reverse("console-model", args=[model.pk])


def live_in(model: RegisteredModel, environment: Environment) -> LiveDeployment | None:
    return LiveDeployment.objects.filter(model=model, environment=environment).select_related("version").first()


@dataclass
class Rollout:
    v6: ModelVersion
    v7: ModelVersion
    v6_staging: PromotionRequest  # deployed three weeks ago
    v7_staging: PromotionRequest  # deployed over v6 two days ago: live now


@pytest.fixture
def rollout(owned: RegisteredModel, v7: ModelVersion, envs: Envs, people: People,
            fake_registry: FakeRegistry) -> Rollout:
    v6 = ModelVersionFactory(model=owned, version=6)
    make_deployed(v6, envs["dev"], requested_by=people.requester, hours_ago=24 * 30)
    v6_staging = make_deployed(v6, envs["staging"], requested_by=people.requester, hours_ago=24 * 20)
    # v7 in dev has nothing before it on record: no rollback is offered there
    make_deployed(v7, envs["dev"], requested_by=people.requester, hours_ago=72)
    v7_staging = make_deployed(v7, envs["staging"], requested_by=people.requester, hours_ago=48,
                               previous_version=v6)
    fake_registry.aliases[("fraud-detector", "staging")] = 7
    return Rollout(v6=v6, v7=v7, v6_staging=v6_staging, v7_staging=v7_staging)


# --- rolling back -----------------------------------------------------------------------------------------


def test_the_owner_rolls_back_and_the_previous_version_is_live_again(
    rollout: Rollout, owned: RegisteredModel, envs: Envs, people: People, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Any,
) -> None:
    client = client_for(people.requester)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(rollback_url(owned, "staging"), {"reason": REASON})
    # then
    assert response.status_code == 302 and response["Location"] == model_url(owned)
    page = client.get(response["Location"])
    assert messages_of(page) == [
        "fraud-detector is rolled back in staging: the version live before is restored and its MLflow alias follows."
    ]
    live = live_in(owned, envs["staging"])
    assert live is not None and (live.version, live.promotion_id) == (rollout.v6, rollout.v6_staging.pk)
    rollout.v7_staging.refresh_from_db()
    assert rollout.v7_staging.state == State.ROLLED_BACK
    entry = entry_of(rollout.v7_staging, "promotion.rolled_back")
    assert entry.actor == actor_of(people.requester)
    assert entry.payload["reason"] == REASON and entry.payload["restored_version"] == 6
    assert fake_registry.of("fraud-detector") == {"staging": 6}  # the alias moved after commit
    # v6's own promotion has nothing before it, so no further rollback is offered in staging
    lanes = {lane["environment"].name: lane for lane in page.context["timeline"]}
    assert lanes["staging"]["rollback_to"] is None
    assert rollback_url(owned, "staging") not in page.content.decode()


def test_infosec_may_roll_back(
    rollout: Rollout, owned: RegisteredModel, envs: Envs, people: People, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(people.infosec).post(rollback_url(owned, "staging"), {"reason": REASON},
                                                   follow=True)
    assert messages_of(response)[0].startswith("fraud-detector is rolled back in staging")
    live = live_in(owned, envs["staging"])
    assert live is not None and live.version == rollout.v6
    assert entry_of(rollout.v7_staging, "promotion.rolled_back").actor == actor_of(people.infosec)
    assert fake_registry.of("fraud-detector") == {"staging": 6}


@pytest.mark.parametrize("who", ["approver", "model_risk", "auditor"])
def test_someone_who_sees_the_model_but_may_not_roll_back_is_refused_and_nothing_changes(
    rollout: Rollout, owned: RegisteredModel, people: People, auditor: User, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Any, who: str,
) -> None:
    # given someone the model page is open to
    user = auditor if who == "auditor" else getattr(people, who)
    assert client_for(user).get(model_url(owned)).status_code == 200
    before = snapshot()
    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client_for(user).post(rollback_url(owned, "staging"), {"reason": REASON}, follow=True)
    # then
    assert messages_of(response) == [REFUSED]
    assert snapshot() == before
    assert callbacks == [] and fake_registry.of("fraud-detector") == {"staging": 7}


def test_an_outsider_gets_a_404_for_a_model_they_cannot_see_and_nothing_changes(
    rollout: Rollout, owned: RegisteredModel, people: People,
) -> None:
    client = client_for(people.outsider)
    assert client.get(model_url(owned)).status_code == 404
    before = snapshot()
    assert client.post(rollback_url(owned, "staging"), {"reason": REASON}).status_code == 404
    assert snapshot() == before


@pytest.mark.parametrize("data", [{"reason": ""}, {"reason": "   "}, {}])
def test_a_rollback_without_a_reason_is_refused_and_writes_nothing(
    rollout: Rollout, owned: RegisteredModel, people: People, data: dict[str, str],
) -> None:
    before = snapshot()
    response = client_for(people.requester).post(rollback_url(owned, "staging"), data, follow=True)
    assert messages_of(response) == ["a reason is required"]
    assert snapshot() == before


def test_an_unknown_environment_is_a_404_and_one_with_nothing_live_is_refused(
    rollout: Rollout, owned: RegisteredModel, people: People,
) -> None:
    client = client_for(people.requester)
    before = snapshot()
    assert client.post(rollback_url(owned, "moon"), {"reason": REASON}).status_code == 404
    response = client.post(rollback_url(owned, "production"), {"reason": REASON}, follow=True)
    assert messages_of(response) == ["no version of fraud-detector is live in production"]
    assert snapshot() == before


def test_a_model_that_does_not_exist_is_a_404(rollout: Rollout, people: People) -> None:
    response = client_for(people.infosec).post(reverse("console-model-rollback", args=[999999, "staging"]),
                                               {"reason": REASON})
    assert response.status_code == 404


def test_a_get_is_refused_and_changes_nothing(rollout: Rollout, owned: RegisteredModel, people: People) -> None:
    before = snapshot()
    assert client_for(people.requester).get(rollback_url(owned, "staging")).status_code == 405
    assert snapshot() == before


def test_an_anonymous_post_is_sent_to_the_login_page_and_writes_nothing(
    rollout: Rollout, owned: RegisteredModel,
) -> None:
    before = snapshot()
    response = Client().post(rollback_url(owned, "staging"), {"reason": REASON})
    assert response.status_code == 302 and response["Location"].startswith("/console/login/")
    assert snapshot() == before


def test_csrf_is_enforced(
    rollout: Rollout, owned: RegisteredModel, envs: Envs, people: People, django_capture_on_commit_callbacks: Any,
) -> None:
    client = client_for(people.requester, enforce_csrf_checks=True)
    before = snapshot()
    response = client.post(rollback_url(owned, "staging"), {"reason": REASON})
    assert response.status_code == 403
    assert snapshot() == before
    # with the token from the model page the same post goes through
    token = client.get(model_url(owned)).context["csrf_token"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(rollback_url(owned, "staging"), {"reason": REASON, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    live = live_in(owned, envs["staging"])
    assert live is not None and live.version == rollout.v6
    assert PendingEntry.objects.filter(event_type="promotion.rolled_back").count() == 1


# --- the form on the model page ---------------------------------------------------------------------------


@pytest.mark.parametrize("who, offered", [
    ("requester", True),  # the model's owner
    ("infosec", True),
    ("approver", False),
    ("model_risk", False),
    ("auditor", False),
])
def test_the_form_is_offered_only_to_those_who_may_roll_back_and_names_the_version(
    rollout: Rollout, owned: RegisteredModel, people: People, auditor: User, who: str, offered: bool,
) -> None:
    user = auditor if who == "auditor" else getattr(people, who)
    response = client_for(user).get(model_url(owned))
    assert response.status_code == 200
    assert response.context["can_roll_back"] is offered
    lanes = {lane["environment"].name: lane for lane in response.context["timeline"]}
    # what a rollback would restore is computed for everyone; only the form depends on the viewer
    assert lanes["staging"]["rollback_to"] == rollout.v6
    assert lanes["dev"]["rollback_to"] is None  # v7 in dev has no previous version on record
    assert lanes["production"]["rollback_to"] is None  # nothing live
    html = response.content.decode()
    assert (rollback_url(owned, "staging") in html) is offered
    assert ("Roll back to v6" in html) is offered
    assert rollback_url(owned, "dev") not in html and rollback_url(owned, "production") not in html
    if offered:
        assert 'name="reason" required' in html and 'name="csrfmiddlewaretoken"' in html


def test_a_model_owner_of_another_team_is_offered_the_form_only_where_the_service_allows(
    rollout: Rollout, owned: RegisteredModel, people: People,
) -> None:
    # given a model-owner who owns a model of their own: the role alone allows rollback (service rule)
    other = UserFactory(username="omar-owner", roles=[roles.MODEL_OWNER])
    theirs = RegisteredModelFactory(name="churn-predictor", owner=other)
    response = client_for(other).get(model_url(theirs))
    assert response.context["can_roll_back"] is True
    # fraud-detector is not visible to them: a 404, like any model they cannot see
    assert client_for(other).get(model_url(owned)).status_code == 404


def test_no_form_when_the_previous_version_has_no_deployed_promotion_to_return_to(
    rollout: Rollout, owned: RegisteredModel, people: People,
) -> None:
    # given v6's staging promotion was itself rolled back earlier: the service would refuse
    PromotionRequest.objects.filter(pk=rollout.v6_staging.pk).update(state=State.ROLLED_BACK)
    response = client_for(people.requester).get(model_url(owned))
    lanes = {lane["environment"].name: lane for lane in response.context["timeline"]}
    assert lanes["staging"]["rollback_to"] is None
    assert rollback_url(owned, "staging") not in response.content.decode()


def test_the_model_page_query_count_does_not_grow_with_environments_and_deployments(
    rollout: Rollout, owned: RegisteredModel, envs: Envs, people: People,
) -> None:
    def count() -> tuple[int, Any]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(model_url(owned))
        assert response.status_code == 200
        return len(queries), response

    client = client_for(people.requester)
    client.get(model_url(owned))  # the session and the viewer's roles, as on any later page
    small, response = count()
    assert sum(1 for lane in response.context["timeline"] if lane["rollback_to"]) == 1
    # given four more environments, each with a chain of deployments that can be rolled back
    for i in range(4):
        env = Environment.objects.create(name=f"region-{i}", order=10 + i, mlflow_alias=f"region-{i}")
        previous = None
        for number in range(20 + 10 * i, 25 + 10 * i):
            version = ModelVersionFactory(model=owned, version=number)
            make_deployed(version, env, requested_by=people.requester, hours_ago=100 - number,
                          previous_version=previous)
            previous = version
    # when
    large, response = count()
    # then
    assert sum(1 for lane in response.context["timeline"] if lane["rollback_to"]) == 5
    assert large == small
    assert small <= 15
