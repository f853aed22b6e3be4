"""The governance admin: visible by role, read-only, and its actions go through the services."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from audit.ledger import integrate
from audit.models import Entry
from governance.models import Environment, ModelVersion, PromotionRequest, RegisteredModel

pytestmark = pytest.mark.django_db


def _user(username: str, *groups: str) -> User:
    user = User.objects.create_user(username=username, password="pw")
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return user


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staging_request() -> PromotionRequest:
    owner = _user("omar", "model-owner")
    model = RegisteredModel.objects.create(name="fraud-detector", owner=owner)
    version = ModelVersion.objects.create(
        model=model, version=1, description="A model card long enough.", data_classification="confidential"
    )
    dev = Environment.objects.get(name="dev")
    PromotionRequest.objects.create(version=version, environment=dev, requested_by=owner, reason="x", state="deployed")
    return PromotionRequest.objects.create(
        version=version, environment=Environment.objects.get(name="staging"), requested_by=owner, reason="validate"
    )


def test_an_outsider_cannot_open_the_governance_admin(staging_request: PromotionRequest) -> None:
    response = _client(_user("olivia")).get("/admin/governance/promotionrequest/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_an_approver_sees_requests_but_cannot_edit_them(staging_request: PromotionRequest) -> None:
    client = _client(_user("priya", "approver"))
    assert client.get("/admin/governance/promotionrequest/").status_code == 200
    change = client.get(f"/admin/governance/promotionrequest/{staging_request.pk}/change/")
    assert change.status_code == 200
    assert b'name="_save"' not in change.content
    assert client.get("/admin/governance/promotionrequest/add/").status_code == 403
    # the ledger itself stays InfoSec/auditor only
    assert client.get("/admin/audit/entry/").status_code == 403


def test_the_approve_action_asks_for_a_comment_then_calls_the_service(staging_request: PromotionRequest) -> None:
    client = _client(_user("priya", "approver"))
    url = "/admin/governance/promotionrequest/"
    # given: the action without a comment shows the intermediate form and changes nothing
    page = client.post(url, {"action": "approve", "_selected_action": [staging_request.pk]})
    assert page.status_code == 200
    assert b"Approve" in page.content
    staging_request.refresh_from_db()
    assert staging_request.state == "pending"
    # when: confirmed with a comment
    done = client.post(
        url,
        {"action": "approve", "_selected_action": [staging_request.pk], "confirm": "yes", "text": "Reviewed."},
    )
    # then
    assert done.status_code == 302
    staging_request.refresh_from_db()
    assert staging_request.state in {"approved", "deploying", "deployed"}
    integrate()
    priya = User.objects.get(username="priya")
    assert Entry.objects.filter(event_type="promotion.approval_given", actor_id=str(priya.pk)).exists()


def test_a_refused_action_is_reported_and_changes_nothing(staging_request: PromotionRequest) -> None:
    # the requester tries to approve their own request
    client = _client(User.objects.get(username="omar"))
    response = client.post(
        "/admin/governance/promotionrequest/",
        {"action": "approve", "_selected_action": [staging_request.pk], "confirm": "yes", "text": "mine"},
        follow=True,
    )
    assert response.status_code == 200
    assert b"cannot approve" in response.content
    staging_request.refresh_from_db()
    assert staging_request.state == "pending"
    assert not staging_request.approvals.exists()


def test_only_infosec_may_edit_policies(staging_request: PromotionRequest) -> None:
    policy_url = "/admin/governance/promotionpolicy/"
    assert _client(_user("priya", "approver")).get(policy_url + "add/").status_code == 403
    infosec = _client(_user("alice", "infosec"))
    assert infosec.get(policy_url + "add/").status_code == 200
    dev = Environment.objects.get(name="dev")
    bad = infosec.post(policy_url + "add/", {"environment": dev.pk, "rules": '{"gates": [{"type": "x"}]}'})
    assert bad.status_code == 200
    assert b"unknown gate type" in bad.content


def test_break_glass_from_the_admin_goes_through_the_service(staging_request: PromotionRequest) -> None:
    version = staging_request.version
    production = Environment.objects.get(name="production")
    form = {"action": "break_glass", "_selected_action": [version.pk], "confirm": "yes",
            "environment": production.pk, "justification": "INC-1: losses rising"}
    # a model owner without break-glass is refused, with the reason shown
    refused = _client(User.objects.get(username="omar")).post("/admin/governance/modelversion/", form, follow=True)
    assert b"break-glass" in refused.content
    assert not PromotionRequest.objects.filter(is_break_glass=True).exists()
    # a break-glass member promotes
    _client(_user("bruno", "model-owner", "break-glass")).post("/admin/governance/modelversion/", form)
    emergency = PromotionRequest.objects.get(is_break_glass=True)
    assert emergency.environment == production and emergency.break_glass_review.state == "open"


def test_infosec_adds_environments_and_freezes_through_services(staging_request: PromotionRequest) -> None:
    new_env = {"name": "pre-prod", "order": 5, "mlflow_alias": "pre-prod", "max_data_classification": "confidential",
               "description": "final checks"}
    assert _client(_user("priya", "approver")).post("/admin/governance/environment/add/", new_env).status_code == 403
    infosec = _client(_user("alice", "infosec"))
    assert infosec.post("/admin/governance/environment/add/", new_env).status_code == 302
    assert Environment.objects.filter(name="pre-prod", order=5).exists()
    # a clash is refused with a message and nothing is created
    clash = infosec.post("/admin/governance/environment/add/", {**new_env, "name": "other"}, follow=True)
    assert b"already exists" in clash.content
    assert not Environment.objects.filter(name="other").exists()
    # a value the service refuses is shown as a message, nothing saved
    bad = infosec.post("/admin/governance/environment/add/", {**new_env, "name": "qa", "order": 6,
                                                               "mlflow_alias": "qa alias!"}, follow=True)
    assert b"MLflow alias is letters" in bad.content
    assert not Environment.objects.filter(name="qa").exists()

    freeze = {"environment": Environment.objects.get(name="staging").pk, "starts_at_0": "2020-01-01",
              "starts_at_1": "00:00:00", "ends_at_0": "2099-01-01", "ends_at_1": "00:00:00", "reason": "peak season"}
    assert infosec.post("/admin/governance/freezewindow/add/", freeze).status_code == 302
    integrate()
    assert Entry.objects.filter(event_type="environment.created").count() == 1
    assert Entry.objects.filter(event_type="environment.freeze_declared").count() == 1
    # the freeze now blocks approvals to staging
    response = _client(_user("priya2", "approver")).post(
        "/admin/governance/promotionrequest/",
        {"action": "approve", "_selected_action": [staging_request.pk], "confirm": "yes", "text": "ok"},
        follow=True,
    )
    assert b"frozen" in response.content
