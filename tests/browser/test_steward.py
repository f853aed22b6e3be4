"""A data steward who owns a dataset revokes a grant on it in a real browser.

Who may revoke (``access.services.grants._may_revoke``): InfoSec, the resource's owner, or the granter;
here the steward is the dataset's owner and the granter.
"""
from __future__ import annotations

from typing import Any

import pytest

from access.models import Dataset, DatasetField, Grant
from access.services.grants import grant_create
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
