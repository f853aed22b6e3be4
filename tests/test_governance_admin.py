"""The governance admin: InfoSec's and auditors' raw view; promotions and configuration change elsewhere."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from audit.models import Entry, PendingEntry
from governance.models import (
    Environment,
    FreezeWindow,
    ModelVersion,
    PromotionPolicy,
    PromotionRequest,
    RegisteredModel,
)

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


def _written() -> tuple[int, ...]:
    return (PromotionRequest.objects.count(), PromotionPolicy.objects.count(), Environment.objects.count(),
            FreezeWindow.objects.count(), PendingEntry.objects.count(), Entry.objects.count())


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


@pytest.mark.parametrize("roles", [(), ("approver",), ("model-owner",), ("data-steward",), ("break-glass",)])
def test_console_roles_cannot_open_the_governance_admin(staging_request: PromotionRequest,
                                                        roles: tuple[str, ...]) -> None:
    response = _client(_user("olivia", *roles)).get("/admin/governance/promotionrequest/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_infosec_sees_requests_but_cannot_edit_or_decide_them(staging_request: PromotionRequest) -> None:
    client = _client(_user("ines", "infosec", "approver"))
    assert client.get("/admin/governance/promotionrequest/").status_code == 200
    change = client.get(f"/admin/governance/promotionrequest/{staging_request.pk}/change/")
    assert change.status_code == 200
    assert b'name="_save"' not in change.content
    assert b"approval status" in change.content.lower()
    assert client.get("/admin/governance/promotionrequest/add/").status_code == 403
    # approving is the console's job: the old admin action is gone, and nothing changes
    before = _written()
    client.post("/admin/governance/promotionrequest/",
                {"action": "approve", "_selected_action": [staging_request.pk], "confirm": "yes", "text": "ok"})
    staging_request.refresh_from_db()
    assert staging_request.state == "pending" and not staging_request.approvals.exists()
    assert _written() == before


@pytest.mark.parametrize("page", ["promotionpolicy", "environment", "freezewindow"])
def test_policies_environments_and_freezes_are_read_only_even_for_infosec(
    staging_request: PromotionRequest, page: str
) -> None:
    # They are two-person changes (a change request approved by a second InfoSec), never a direct edit here.
    infosec = _client(_user("alice", "infosec"))
    dev = Environment.objects.get(name="dev")
    staging = Environment.objects.get(name="staging")
    before, environments = _written(), list(Environment.objects.order_by("pk").values())
    assert infosec.get(f"/admin/governance/{page}/").status_code == 200
    assert infosec.get(f"/admin/governance/{page}/add/").status_code == 403
    form = {"environment": dev.pk, "rules": '{"approvals": [], "gates": []}', "name": "pre-prod", "order": 5,
            "mlflow_alias": "pre-prod", "max_data_classification": "restricted", "description": "x",
            "starts_at_0": "2020-01-01", "starts_at_1": "00:00:00", "ends_at_0": "2099-01-01",
            "ends_at_1": "00:00:00", "reason": "peak season"}
    assert infosec.post(f"/admin/governance/{page}/add/", form).status_code == 403
    row = {"promotionpolicy": PromotionPolicy.objects.first(), "environment": staging,
           "freezewindow": None}[page]
    if row is not None:
        assert infosec.post(f"/admin/governance/{page}/{row.pk}/change/", form).status_code == 403
    assert _written() == before
    assert list(Environment.objects.order_by("pk").values()) == environments
