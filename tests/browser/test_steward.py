"""A data steward who owns a dataset revokes a grant on it in a real browser.

Who may revoke (``access.services.grants._may_revoke``): InfoSec, the resource's owner, or the granter;
here the steward is the dataset's owner and the granter.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from access.models import AccessRequest, Dataset, DatasetField, Grant
from access.services.access_requests import access_request_create
from access.services.grants import grant_create
from access.services.reviews import review_campaign_start
from tests.access.helpers import ledger, soon
from tests.browser.helpers import login, shot
from tests.personas import make_user

pytestmark = pytest.mark.browser


def test_a_steward_revokes_a_grant(live_url: str, page: Any) -> None:
    # given
    steward = make_user("sam", "data-steward")
    rita = make_user("rita", "model-owner")
    dataset = Dataset.objects.create(name="card-transactions-2026q3", owner=steward, level="confidential",
                                     effective_level="confidential", pii_categories=["email"])
    DatasetField.objects.create(dataset=dataset, name="customer_email", level="confidential",
                                pii_categories=["email"])
    DatasetField.objects.create(dataset=dataset, name="pan_token", level="internal")
    g = grant_create(actor=steward, principal=rita, resource=dataset, permission="read_data",
                         expires_at=soon(30), justification="features for the Q3 fraud model")
    # when
    login(page, live_url, "sam")
    page.goto(f"{live_url}/console/access/")
    assert page.get_by_role("link", name="card-transactions-2026q3").is_visible()
    shot(page, "access")
    page.get_by_role("link", name="card-transactions-2026q3").click()
    page.wait_for_url(f"**/console/access/datasets/{dataset.pk}/")
    shot(page, "dataset-detail")
    page.locator("details.action > summary", has_text="Revoke").click()
    page.locator(f"#f-{g.pk}").fill("rita moved to the payments team")
    with page.expect_navigation():
        page.locator(f"#f-{g.pk}").locator("xpath=ancestor::form").get_by_role("button", name="Revoke").click()
    # then
    assert page.get_by_text(f"Grant #{g.pk} is revoked.").is_visible()
    g = Grant.objects.get(pk=g.pk)
    assert g.revoked_by == steward and g.revoke_reason == "rita moved to the payments team"
    assert [p["reason"] for p in ledger("access.grant_revoked")] == ["rita moved to the payments team"]
    shot(page, "grant-revoked")


def test_a_steward_raises_a_datasets_classification(live_url: str, page: Any) -> None:
    # given a dataset classified internal, and a steward
    steward = make_user("sam", "data-steward")
    dataset = Dataset.objects.create(name="merchant-profiles", owner=steward, level="internal",
                                     effective_level="internal", pii_categories=[])
    # when the steward classifies it confidential with the email category
    login(page, live_url, "sam")
    page.goto(f"{live_url}/console/access/datasets/{dataset.pk}/")
    page.locator("details.action > summary", has_text="Classify dataset").click()
    page.locator("#c-level").select_option("confidential")
    page.locator("input[name=pii_categories][value=email]").first.check()
    page.locator("#c-reason").fill("contact emails found in the merchant export")
    shot(page, "dataset-classify")
    with page.expect_navigation():
        page.get_by_role("button", name="Classify", exact=True).click()
    # then
    assert page.get_by_text("Dataset merchant-profiles is classified confidential").is_visible()
    dataset.refresh_from_db()
    assert (dataset.level, dataset.pii_categories) == ("confidential", ["email"])
    assert [p["reason"] for p in ledger("dataset.classified")] == ["contact emails found in the merchant export"]
    shot(page, "dataset-classified")


def test_a_steward_sees_their_review_work_and_decides_an_access_request_on_its_page(
    live_url: str, page: Any
) -> None:
    # given: sam owns a dataset rita reads (under an open access review), and rita asks for more access
    steward = make_user("sam", "data-steward")
    rita = make_user("rita", "model-owner")
    infosec = make_user("ines", "infosec")
    dataset = Dataset.objects.create(name="merchant-risk", owner=steward, level="confidential",
                                     effective_level="confidential", classified_at=timezone.now())
    grant_create(actor=steward, principal=rita, resource=dataset, permission="read_data",
                 expires_at=soon(30), justification="features for the Q3 fraud model")
    review_campaign_start(actor=infosec, name="Q4 access review", deadline=timezone.now() + timedelta(days=7))
    Dataset.objects.create(name="chargebacks-raw", owner=steward, level="internal", effective_level="internal")
    asked = access_request_create(actor=rita, resource=dataset, permission="train_on", duration_days=14,
                                  justification="backfill the merchant scores")
    # when sam opens his dashboard
    login(page, live_url, "sam")
    page.goto(f"{live_url}/console/")
    # then his review work is there
    assert page.get_by_role("heading", name="Access-review items for you (1)").is_visible()
    assert page.get_by_role("link", name="Q4 access review").is_visible()
    assert page.get_by_role("heading", name="Datasets awaiting classification (1)").is_visible()
    assert page.get_by_role("link", name="chargebacks-raw").is_visible()
    shot(page, "steward-dashboard")
    # and the access request opens on its own page, which says what is missing
    page.get_by_role("link", name=f"#{asked.pk} train_on on dataset:merchant-risk").click()
    page.wait_for_url(f"**/console/access/requests/{asked.pk}/")
    assert page.get_by_text("Still missing: the owner of dataset:merchant-risk.").is_visible()
    assert page.get_by_text("backfill the merchant scores").is_visible()
    shot(page, "access-request-detail")
    page.locator("details.action > summary", has_text="Approve").click()
    page.locator("#f-approve").fill("ok for the backfill")
    with page.expect_navigation():
        page.locator("#f-approve").locator("xpath=ancestor::form").get_by_role("button", name="Approve").click()
    assert page.get_by_text(f"Access request #{asked.pk}: your approval is recorded.").is_visible()
    assert page.locator("details.action > summary").count() == 0
    asked.refresh_from_db()
    assert asked.state == AccessRequest.State.APPROVED
    shot(page, "access-request-approved")
