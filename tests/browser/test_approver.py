"""An approver works the approvals inbox in a real browser; a requester cannot approve their own request.

Data is set up through the ORM and the services before the page is opened; MLflow is the fake
registry (the approval's deploy task runs in the live server's thread after commit).
"""
from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User

from access import roles
from governance.models import PromotionRequest, RegisteredModel
from governance.services import promotions
from tests.browser.helpers import login, shot
from tests.factories import ModelVersionFactory
from tests.governance.helpers import FakeRegistry, actor_of, ensure_defaults, entry_of, make_deployed, snapshot
from tests.personas import make_user

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("celery_eager")]

COMMENT = "Validation report MRV-2026-114 reviewed; metrics within tolerance"


def staging_request(requester: User) -> PromotionRequest:
    """fraud-detector v7 (live in dev for three days, v6 in staging) asked for staging by ``requester``."""
    envs = ensure_defaults()
    model = RegisteredModel.objects.create(name="fraud-detector", owner=requester, description="Card fraud scoring")
    v6 = ModelVersionFactory(model=model, version=6, metrics={"auc": 0.91})
    make_deployed(v6, envs["dev"], requested_by=requester, hours_ago=200)
    make_deployed(v6, envs["staging"], requested_by=requester, hours_ago=150)
    v7 = ModelVersionFactory(model=model, version=7, metrics={"auc": 0.94, "precision": 0.83})
    make_deployed(v7, envs["dev"], requested_by=requester, hours_ago=72)
    return promotions.promotion_request(
        actor=requester, version=v7, environment=envs["staging"],
        reason="Quarterly retrain with the merchant-category features",
    )


def open_and_submit(page: Any, action: str, fid: str, text: str) -> None:
    """The two clicks: the button that opens the inline form, then submit (with the comment typed)."""
    page.locator("details.action > summary", has_text=re.compile(f"^{action}$")).click()
    page.locator(f"#f-{fid}").fill(text)
    with page.expect_navigation():
        page.locator(f"#f-{fid}").locator("xpath=ancestor::form").get_by_role("button", name=action).click()


def test_an_approver_approves_a_promotion(live_url: str, page: Any, fake_registry: FakeRegistry) -> None:
    # given
    requester = make_user("olivia", roles.MODEL_OWNER)
    make_user("adam", roles.APPROVER)
    request = staging_request(requester)
    # when adam opens his inbox and the request
    login(page, live_url, "adam")
    page.goto(f"{live_url}/console/approvals/")
    assert page.get_by_role("heading", name=re.compile("Awaiting your decision")).is_visible()
    shot(page, "approvals-inbox")
    page.get_by_role("link", name=f"#{request.pk}").first.click()
    page.wait_for_url(f"**/console/approvals/requests/{request.pk}/")
    assert page.get_by_text("model card present").is_visible()
    shot(page, "request-detail")
    open_and_submit(page, "Approve", "approve", COMMENT)
    # then
    assert page.get_by_text(f"Your approval of promotion #{request.pk} is recorded.").is_visible()
    entry = entry_of(request, "promotion.approval_given")
    assert entry.actor == actor_of(User.objects.get(username="adam")) and entry.payload["comment"] == COMMENT
    request.refresh_from_db()
    assert request.state in (PromotionRequest.State.APPROVED, PromotionRequest.State.DEPLOYED)
    # the models pages, for the record
    page.goto(f"{live_url}/console/models/")
    assert page.get_by_role("link", name="fraud-detector").is_visible()
    shot(page, "models-list")
    page.get_by_role("link", name="fraud-detector").click()
    page.wait_for_url("**/console/models/*/")
    assert page.get_by_role("heading", name=re.compile("^staging")).is_visible()
    shot(page, "model-detail")


def test_a_requester_cannot_approve_their_own_request(live_url: str, page: Any) -> None:
    # given olivia is a model owner and also an approver
    requester = make_user("olivia", roles.MODEL_OWNER, roles.APPROVER)
    request = staging_request(requester)
    login(page, live_url, "olivia")
    page.goto(f"{live_url}/console/approvals/requests/{request.pk}/")
    before = snapshot()
    # then the page offers her no decision, and says why (the service would refuse it: a forged POST is
    # tested in tests/console/test_decision_forms_console.py)
    assert page.get_by_text("you requested this promotion, so you cannot approve or reject it").is_visible()
    assert page.locator("details.action > summary").filter(has_text=re.compile(r"^Approve$")).count() == 0
    assert snapshot() == before
    request.refresh_from_db()
    assert request.state == PromotionRequest.State.PENDING
    shot(page, "request-self-approval-refused")
