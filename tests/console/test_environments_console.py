"""The environments page (``console-environments``) and InfoSec's actions on it: editing a policy as JSON
(``console-environment-policy``) and declaring a freeze window (``console-environment-freeze``).

Setup: dev → staging → production with their migration policies (``ensure_defaults``). The services
(``policy_set``, ``freeze_window_create``) decide; a refusal is a message or a 403 page with nothing
written (``snapshot()`` covers every governance row and the ledger).
"""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from audit.ledger import integrate
from audit.models import Entry
from governance.models import Environment, EnvironmentNamespace, FreezeWindow, PromotionPolicy, RegisteredModel
from tests.console.helpers import client_for, messages_of
from tests.factories import RegisteredModelFactory
from tests.governance.helpers import DEFAULT_POLICIES, actor_of, snapshot
from tests.personas import People

pytestmark = pytest.mark.django_db

Envs = dict[str, Environment]
PAGE = "/console/environments/"
STAGING_RULES = {"approvals": [{"group": "approver", "count": 2}], "gates": [{"type": "model_card"}],
                 "approval_expiry_days": 3}


def policy_url(environment: str) -> str:
    return reverse("console-environment-policy", args=[environment])


def freeze_url(environment: str) -> str:
    return reverse("console-environment-freeze", args=[environment])


def entries(event_type: str) -> list[Entry]:
    integrate()
    return list(Entry.objects.filter(event_type=event_type).order_by("seq"))


def local(moment: datetime) -> str:
    """A ``datetime-local`` input's value (read as UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


@pytest.fixture
def fraud_override(fraud: RegisteredModel) -> PromotionPolicy:
    """fraud-detector (owned by nobody in ``people``) has its own production policy."""
    return PromotionPolicy.objects.create(
        environment=Environment.objects.get(name="production"), model=fraud,
        rules={"approvals": [{"group": "model-risk", "count": 2}], "gates": [
            {"type": "metric", "metric": "auc", "op": ">=", "value": 0.9}]},
    )


# --- reading ---------------------------------------------------------------------------------------------


def test_page_shows_environments_in_order_with_policies_in_words(envs: Envs, people: People) -> None:
    response = client_for(people.infosec).get(PAGE)
    assert response.status_code == 200
    rows = response.context["rows"]
    assert [r["environment"].name for r in rows] == ["dev", "staging", "production"]
    staging = rows[1]
    assert staging["default"]["summary"][:3] == [
        "Approvals: 1 from approver",
        "Gates: model card present, training data classification allowed",
        "Approvals expire after 14 days; pending requests after 14 days",
    ]
    production = rows[2]["default"]["summary"]
    assert production[0] == "Approvals: 1 from model-risk and 1 from infosec"
    assert "soak 24h in previous environment" in production[1]
    assert "MLflow alias changes made outside governance are reverted" in production
    assert rows[0]["default"]["summary"][0] == "Approvals: none (approved as soon as the gates pass)"
    # The edit form starts from the stored rules, pretty-printed.
    assert json.loads(staging["default"]["text"]) == DEFAULT_POLICIES["staging"]
    assert '\n  "approvals"' in staging["default"]["text"]
    body = response.content.decode()
    assert "confidential" in body and "<code>production</code>" in body


def test_environment_without_a_stored_default_shows_the_built_in_policy(envs: Envs, people: People) -> None:
    PromotionPolicy.objects.filter(environment=envs["dev"], model=None).delete()
    row = client_for(people.infosec).get(PAGE).context["rows"][0]
    assert row["built_in"] is True
    assert row["default"]["summary"][0] == "Approvals: 1 from approver"


def test_active_and_upcoming_freezes_are_shown_but_not_past_ones(envs: Envs, people: People) -> None:
    now = timezone.now()
    FreezeWindow.objects.create(environment=envs["production"], starts_at=now - timedelta(hours=1),
                                ends_at=now + timedelta(hours=5), reason="incident 42", created_by=people.infosec)
    FreezeWindow.objects.create(environment=envs["production"], starts_at=now + timedelta(days=3),
                                ends_at=now + timedelta(days=4), reason="peak trading")
    FreezeWindow.objects.create(environment=envs["production"], starts_at=now - timedelta(days=4),
                                ends_at=now - timedelta(days=3), reason="long over")
    response = client_for(people.approver).get(PAGE)
    freezes = response.context["rows"][2]["freezes"]
    assert [(f["freeze"].reason, f["active"]) for f in freezes] == [("incident 42", True), ("peak trading", False)]
    assert response.context["rows"][1]["freezes"] == []
    body = response.content.decode()
    assert "long over" not in body and "incident 42" in body


def test_model_policies_follow_what_the_viewer_may_see(
    envs: Envs, people: People, fraud_override: PromotionPolicy
) -> None:
    # given: an approver sees every model; the owner persona neither owns fraud-detector nor holds a grant
    seen = client_for(people.approver).get(PAGE).context["rows"][2]["overrides"]
    hidden = client_for(people.requester).get(PAGE)
    # then
    assert [o["model"] for o in seen] == ["fraud-detector"]
    assert seen[0]["summary"][:2] == ["Approvals: 2 from model-risk", "Gates: metric auc >= 0.9"]
    assert hidden.context["rows"][2]["overrides"] == []
    assert "fraud-detector" not in hidden.content.decode()


def test_a_model_policy_is_visible_to_its_owner(envs: Envs, people: People, fraud_override: PromotionPolicy) -> None:
    RegisteredModel.objects.filter(pk=fraud_override.model_id).update(owner=people.requester)
    overrides = client_for(people.requester).get(PAGE).context["rows"][2]["overrides"]
    assert [o["model"] for o in overrides] == ["fraud-detector"]


@pytest.mark.parametrize("who", ["approver", "requester", "auditor", "steward"])
def test_other_roles_read_without_the_forms(envs: Envs, people: People, auditor: User, who: str) -> None:
    user = auditor if who == "auditor" else getattr(people, who)
    response = client_for(user).get(PAGE)
    assert response.status_code == 200
    assert response.context["may_edit"] is False
    body = response.content.decode()
    assert policy_url("staging") not in body and freeze_url("staging") not in body
    assert "Read-only" in body


def test_infosec_gets_the_forms(envs: Envs, people: People) -> None:
    body = client_for(people.infosec).get(PAGE).content.decode()
    assert policy_url("staging") in body and freeze_url("production") in body
    assert 'type="datetime-local"' in body


def test_user_without_a_role_is_refused(envs: Envs, people: People) -> None:
    response = client_for(people.outsider).get(PAGE)
    assert response.status_code == 403
    assert b"governance role" in response.content
    assert b"staging" not in response.content


def test_anonymous_is_sent_to_sign_in(envs: Envs) -> None:
    response = client_for(None).get(PAGE)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("console-login"))
    posted = client_for(None).post(policy_url("staging"), {"rules": "{}"})
    assert posted.status_code == 302 and posted["Location"].startswith(reverse("console-login"))


def test_page_queries_do_not_grow_with_environments_policies_and_freezes(
    envs: Envs, people: People, django_assert_max_num_queries: Any
) -> None:
    def make(first: int, n: int) -> None:
        now = timezone.now()
        for i in range(first, first + n):
            env = Environment.objects.create(name=f"env-{i}", order=10 + i, mlflow_alias=f"env-{i}")
            PromotionPolicy.objects.create(environment=env, model=None, rules=DEFAULT_POLICIES["staging"])
            model = RegisteredModelFactory(name=f"bulk-{i}", owner=people.requester)
            PromotionPolicy.objects.create(environment=env, model=model, rules=DEFAULT_POLICIES["production"])
            FreezeWindow.objects.create(environment=env, starts_at=now, ends_at=now + timedelta(days=1), reason="r")
            EnvironmentNamespace.objects.create(environment=env, namespace=f"ns-{i}")

    # Session, user, roles, environments, their Kubernetes namespaces, policies, freezes; and for InfoSec the
    # pending change requests (whose state digests read the namespaces too).
    for user in (people.infosec, people.requester):
        client = client_for(user)
        limit = 9 if user == people.infosec else 7
        make(100 if user == people.infosec else 200, 1)
        with django_assert_max_num_queries(limit):
            client.get(PAGE)
        make(300 if user == people.infosec else 400, 12)
        with django_assert_max_num_queries(limit):
            response = client.get(PAGE)
        assert sum(len(r["overrides"]) for r in response.context["rows"]) >= 12


# --- editing a policy ----------------------------------------------------------------------------------------


def test_infosec_replaces_a_default_policy(envs: Envs, people: People) -> None:
    # when
    response = client_for(people.infosec).post(policy_url("staging"), {"rules": json.dumps(STAGING_RULES)},
                                               follow=True)
    # then
    assert messages_of(response) == ["The default policy of staging is saved and recorded in the ledger."]
    assert PromotionPolicy.objects.get(environment=envs["staging"], model=None).rules == STAGING_RULES
    [entry] = entries("policy.updated")
    assert entry.actor == actor_of(people.infosec)
    assert entry.subject_id == "staging"
    assert entry.payload["rules"] == STAGING_RULES and entry.payload["model"] is None
    assert response.context["rows"][1]["default"]["summary"][0] == "Approvals: 2 from approver"


def test_infosec_sets_a_model_policy(envs: Envs, people: People, fraud: RegisteredModel) -> None:
    response = client_for(people.infosec).post(
        policy_url("staging"), {"model": "fraud-detector", "new": "1", "rules": json.dumps(STAGING_RULES)},
        follow=True)
    assert messages_of(response) == [
        "The policy of fraud-detector in staging is saved and recorded in the ledger."]
    assert PromotionPolicy.objects.get(environment=envs["staging"], model=fraud).rules == STAGING_RULES
    [entry] = entries("policy.updated")
    assert entry.payload["model"] == "fraud-detector"
    # The default is untouched.
    assert PromotionPolicy.objects.get(environment=envs["staging"], model=None).rules == \
        DEFAULT_POLICIES["staging"]


@pytest.mark.parametrize(("text", "expected"), [
    ('{"approvals": [}', "the policy is not valid JSON: "),
    ("", "the policy is empty"),
    ('{"gates": [{"type": "metric", "metric": "auc", "op": ">=", "value": NaN}]}', "the policy is not valid JSON"),
    ('{"gate": []}', "invalid policy: unknown policy key(s): gate"),
    ('[1, 2]', "invalid policy: a policy must be a JSON object"),
    ('{"approvals": [{"group": "approver", "count": 0}]}', "invalid policy: approvals[0]: 'count' must be"),
    ('{"gates": [{"type": "vibes"}]}', "invalid policy: gates[0]: unknown gate type 'vibes'"),
])
def test_bad_policies_are_refused_with_the_problem_named(
    envs: Envs, people: People, text: str, expected: str
) -> None:
    before = snapshot()
    client = client_for(people.infosec)
    response = client.post(policy_url("staging"), {"rules": text}, follow=True)
    assert response.status_code == 200
    [message] = messages_of(response)
    assert message.startswith(expected), message
    assert snapshot() == before
    # What was typed comes back in the open form, once.
    row = response.context["rows"][1]
    assert row["default"]["draft"] is True and row["default"]["text"] == text
    assert client.get(PAGE).context["rows"][1]["default"]["draft"] is False


def test_a_model_the_viewer_cannot_find_is_refused(envs: Envs, people: People) -> None:
    before = snapshot()
    response = client_for(people.infosec).post(
        policy_url("staging"), {"model": "no-such-model", "new": "1", "rules": json.dumps(STAGING_RULES)},
        follow=True)
    assert messages_of(response) == ["no model 'no-such-model', or you may not see it"]
    assert snapshot() == before
    assert response.context["rows"][1]["new_override"] == json.dumps(STAGING_RULES)


def test_unknown_environment_is_404(envs: Envs, people: People) -> None:
    before = snapshot()
    assert client_for(people.infosec).post(policy_url("nowhere"), {"rules": "{}"}).status_code == 404
    assert client_for(people.infosec).post(freeze_url("nowhere"), {"reason": "r"}).status_code == 404
    assert snapshot() == before


@pytest.mark.parametrize("who", ["approver", "requester", "auditor", "outsider", "steward", "model_risk"])
def test_only_infosec_may_post(envs: Envs, people: People, auditor: User, fraud: RegisteredModel, who: str) -> None:
    user = auditor if who == "auditor" else getattr(people, who)
    client = client_for(user)
    now = timezone.now()
    before = snapshot()
    edited = client.post(policy_url("staging"), {"rules": json.dumps(STAGING_RULES)})
    overridden = client.post(policy_url("staging"), {"model": "fraud-detector", "rules": json.dumps(STAGING_RULES)})
    frozen = client.post(freeze_url("production"), {
        "starts_at": local(now + timedelta(days=1)), "ends_at": local(now + timedelta(days=2)), "reason": "peak"})
    assert edited.status_code == overridden.status_code == frozen.status_code == 403
    assert b"Only InfoSec may change promotion policies" in edited.content
    assert b"Only InfoSec may declare freeze windows" in frozen.content
    assert snapshot() == before


# --- freeze windows --------------------------------------------------------------------------------------------


def test_infosec_declares_a_freeze_window(envs: Envs, people: People) -> None:
    # given: datetime-local values, read as UTC
    response = client_for(people.infosec).post(freeze_url("staging"), {
        "starts_at": "2099-12-20T00:00", "ends_at": "2100-01-02T06:30", "reason": "  peak trading "}, follow=True)
    # then
    assert messages_of(response) == [
        "Freeze window declared for staging: promotions to it are refused during the window."]
    freeze = FreezeWindow.objects.get()
    assert freeze.environment == envs["staging"] and freeze.created_by == people.infosec
    assert freeze.starts_at == datetime(2099, 12, 20, tzinfo=UTC)
    assert freeze.ends_at == datetime(2100, 1, 2, 6, 30, tzinfo=UTC)
    [entry] = entries("environment.freeze_declared")
    assert entry.actor == actor_of(people.infosec)
    assert entry.payload["reason"] == "peak trading" and entry.payload["starts_at"].startswith("2099-12-20T00:00")
    assert [f["freeze"].reason for f in response.context["rows"][1]["freezes"]] == ["peak trading"]


def test_a_freeze_starting_in_the_past_but_still_running_is_accepted(envs: Envs, people: People) -> None:
    now = timezone.now()
    client_for(people.infosec).post(freeze_url("staging"), {
        "starts_at": local(now - timedelta(hours=2)), "ends_at": local(now + timedelta(hours=2)), "reason": "incident"})
    assert FreezeWindow.objects.filter(environment=envs["staging"]).count() == 1


@pytest.mark.parametrize(("form", "expected"), [
    ({"starts_at": "2099-12-20T00:00", "ends_at": "2099-12-19T00:00", "reason": "r"},
     "a freeze window must end after it starts"),
    ({"starts_at": "2099-12-20T00:00", "ends_at": "2099-12-20T00:00", "reason": "r"},
     "a freeze window must end after it starts"),
    ({"starts_at": "2000-01-01T00:00", "ends_at": "2000-01-02T00:00", "reason": "r"},
     "this freeze window has already ended: its end must be in the future"),
    ({"starts_at": "2099-12-20T00:00", "ends_at": "2099-12-21T00:00", "reason": "   "}, "a reason is required"),
    ({"starts_at": "2099-12-20T00:00", "ends_at": "2099-12-21T00:00"}, "a reason is required"),
    ({"starts_at": "2099-12-20T00:00", "ends_at": "2099-12-21T00:00", "reason": "x" * 301},
     "the reason is longer than 300 characters"),
    ({"starts_at": "", "ends_at": "2099-12-21T00:00", "reason": "r"}, "give the freeze window's start (UTC)"),
    ({"starts_at": "next tuesday", "ends_at": "2099-12-21T00:00", "reason": "r"},
     "the start must be a date and time such as 2026-12-20T00:00 (UTC)"),
])
def test_bad_freeze_windows_are_refused(envs: Envs, people: People, form: dict[str, str], expected: str) -> None:
    before = snapshot()
    response = client_for(people.infosec).post(freeze_url("production"), form, follow=True)
    assert messages_of(response) == [expected]
    assert snapshot() == before


# --- methods and CSRF --------------------------------------------------------------------------------------------


def test_get_on_the_action_urls_is_405(envs: Envs, people: People) -> None:
    client = client_for(people.infosec)
    assert client.get(policy_url("staging")).status_code == 405
    assert client.get(freeze_url("staging")).status_code == 405


def test_post_on_the_page_is_405(envs: Envs, people: People) -> None:
    assert client_for(people.infosec).post(PAGE).status_code == 405


def test_csrf_is_enforced_on_the_actions(envs: Envs, people: People) -> None:
    client = client_for(people.infosec, csrf=True)
    before = snapshot()
    assert client.post(policy_url("staging"), {"rules": json.dumps(STAGING_RULES)}).status_code == 403
    assert client.post(freeze_url("staging"), {
        "starts_at": "2099-12-20T00:00", "ends_at": "2099-12-21T00:00", "reason": "r"}).status_code == 403
    assert snapshot() == before


def test_the_forms_carry_a_working_csrf_token(envs: Envs, people: People) -> None:
    # given: a browser-like client that gets the page (and its CSRF cookie) first
    client = client_for(people.infosec, csrf=True)
    client.get(PAGE)
    token = client.cookies["csrftoken"].value
    # when
    edited = client.post(policy_url("staging"), {"rules": json.dumps(STAGING_RULES), "csrfmiddlewaretoken": token})
    frozen = client.post(freeze_url("staging"), {"starts_at": "2099-12-20T00:00", "ends_at": "2099-12-21T00:00",
                                                 "reason": "r", "csrfmiddlewaretoken": token})
    # then
    assert edited.status_code == frozen.status_code == 302
    assert edited["Location"] == PAGE + "#env-staging"
    assert PromotionPolicy.objects.get(environment=envs["staging"], model=None).rules == STAGING_RULES
    assert FreezeWindow.objects.filter(environment=envs["staging"]).count() == 1


# --- JSON nested too deeply (the form's 20,000 characters hold 10,000 levels of brackets) ------------------


@pytest.mark.parametrize("depth", [480, 9_990])
def test_a_deeply_nested_policy_is_refused_with_a_message_not_a_500(envs: Envs, people: People, depth: int) -> None:
    before = snapshot()
    client = client_for(people.infosec)
    client.raise_request_exception = False
    text = '{"gates": ' + "[" * depth + "]" * depth + "}"
    response = client.post(policy_url("staging"), {"rules": text}, follow=True)
    assert response.status_code == 200
    [message] = messages_of(response)
    assert message == "the policy is not valid JSON: the JSON value nests arrays and objects deeper than 64 levels"
    assert snapshot() == before


def test_a_policy_nested_within_the_bound_is_judged_by_the_policy_rules(envs: Envs, people: People) -> None:
    before = snapshot()
    text = '{"gates": [' + "[" * 60 + "]" * 60 + "]}"
    response = client_for(people.infosec).post(policy_url("staging"), {"rules": text}, follow=True)
    [message] = messages_of(response)
    assert message.startswith("invalid policy: gates[0]"), message
    assert snapshot() == before
