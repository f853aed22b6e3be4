"""A model owner requests a canary promotion to staging from the model page, in a real browser."""
from __future__ import annotations

from typing import Any

import pytest

from governance.models import PromotionRequest, RegisteredModel
from tests.browser.helpers import assert_accessible, login, shot
from tests.factories import ModelVersionFactory
from tests.governance.helpers import ensure_defaults, entry_of, make_deployed
from tests.personas import make_user

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("celery_eager")]


def test_an_owner_requests_a_canary_to_staging(live_url: str, page: Any, no_mlflow: None) -> None:
    # given fraud-detector v7, live in dev for three days, owned by omar
    omar = make_user("omar")
    envs = ensure_defaults()
    model = RegisteredModel.objects.create(name="fraud-detector", owner=omar, description="Card fraud scoring")
    v7 = ModelVersionFactory(model=model, version=7, metrics={"auc": 0.94, "precision": 0.83})
    make_deployed(v7, envs["dev"], requested_by=omar, hours_ago=72)

    # when omar asks for a canary to staging
    login(page, live_url, "omar")
    page.goto(f"{live_url}/console/models/{model.pk}/")
    page.locator("details.action > summary", has_text="Request promotion").click()
    page.locator("#rq-version").select_option(label="v7")
    page.locator("#rq-environment").select_option("staging")
    page.locator("#rq-strategy").select_option("canary")
    page.locator("#rq-steps").fill("10, 50, 100")
    page.locator("#rq-reason").fill("Quarterly retrain with the merchant-category features")
    shot(page, "request-promotion")
    with page.expect_navigation():
        page.get_by_role("button", name="Request promotion", exact=True).last.click()

    # then the request page shows it pending an approver, and the ledger has the request
    request = PromotionRequest.objects.get(version=v7, environment=envs["staging"])
    assert page.url.endswith(f"/console/approvals/requests/{request.pk}/")
    assert page.get_by_text(f"Promotion #{request.pk} of fraud-detector v7 to staging").is_visible()
    assert (request.state, request.strategy, request.canary_steps) == ("pending", "canary", [10, 50, 100])
    assert entry_of(request, "promotion.requested").payload["reason"] == (
        "Quarterly retrain with the merchant-category features")
    shot(page, "promotion-requested")
    assert_accessible(page, "promotion requested")
