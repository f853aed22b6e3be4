"""Accessibility of the console (WCAG 2.1 AA): axe-core on every console page, keyboard use, charts' data.

Each persona's test signs in once and visits every page that persona reaches, with realistic data made
through the services (``seed``); axe-core (``tests/browser/helpers.assert_accessible``, every ``<details>``
opened so the inline action forms count) must find no serious or critical violation. The failure lists
every offending page, rule and element at once. Moderate and minor findings are printed (``-s``), not
failed. The pages are the GET routes of audit/, access/, governance/ and web/ console urls.py; the POST-only
routes render these same templates (the issued-token page is reached by issuing a token).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from access.models import Dataset, DatasetField, ServiceAccount
from access.services.access_requests import access_request_create
from access.services.grants import grant_create
from access.services.reviews import review_campaign_start
from access.services.service_accounts import service_account_create
from access.services.tokens import api_token_create
from audit.export.scope import parse_scope
from audit.export.service import export_create
from audit.ledger import integrate
from audit.services.checkpoints import checkpoint_create
from audit.services.retention import legal_hold_create
from governance.models import BreakGlassReview, PromotionRequest, RegisteredModel
from governance.services import break_glass, promotions
from governance.services.identity_links import identity_link_create
from tests.browser.helpers import accessibility_problems, login
from tests.console.helpers import make_violation, seed_ledger
from tests.factories import ModelVersionFactory
from tests.governance.helpers import FakeRegistry, ensure_defaults, make_deployed
from tests.personas import People, make_people

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("celery_eager")]


@dataclass
class Seeded:
    people: People
    model: RegisteredModel
    request: PromotionRequest
    review: BreakGlassReview
    dataset: Dataset
    account: ServiceAccount
    campaign_id: int
    export_id: int
    entry_seq: int


def seed() -> Seeded:
    """One of everything the console lists: a ledger with a checkpoint, a violation, fraud-detector with a
    pending staging request and a break-glass review, datasets with a grant, an access request and a review
    campaign, a service account with a token, an MLflow identity link, a legal hold and an export."""
    people = make_people()
    entries = seed_ledger(12, days=6)
    make_violation()
    envs = ensure_defaults()
    model = RegisteredModel.objects.create(name="fraud-detector", owner=people.requester,
                                           description="Card fraud scoring")
    v6 = ModelVersionFactory(model=model, version=6, metrics={"auc": 0.91})
    make_deployed(v6, envs["dev"], requested_by=people.requester, hours_ago=200)
    make_deployed(v6, envs["staging"], requested_by=people.requester, hours_ago=150)
    v7 = ModelVersionFactory(model=model, version=7, metrics={"auc": 0.94, "precision": 0.83})
    make_deployed(v7, envs["dev"], requested_by=people.requester, hours_ago=72)
    request = promotions.promotion_request(actor=people.requester, version=v7, environment=envs["staging"],
                                           reason="Quarterly retrain with the merchant-category features")
    scorer = RegisteredModel.objects.create(name="merchant-scorer", owner=people.requester)
    s2 = ModelVersionFactory(model=scorer, version=2)
    make_deployed(s2, envs["dev"], requested_by=people.requester, hours_ago=72)
    glass = break_glass.promotion_break_glass(actor=people.breakglass, version=s2, environment=envs["staging"],
                                              justification="fraud spike, hotfix")
    dataset = Dataset.objects.create(name="card-transactions-2026q3", owner=people.owner, level="confidential",
                                     effective_level="confidential", pii_categories=["email"])
    DatasetField.objects.create(dataset=dataset, name="customer_email", level="confidential",
                                pii_categories=["email"])
    DatasetField.objects.create(dataset=dataset, name="pan_token", level="internal")
    Dataset.objects.create(name="fx-rates", owner=people.owner, level="public", effective_level="public")
    soon = timezone.now() + timedelta(days=30)
    grant_create(actor=people.owner, principal=people.requester, resource=dataset, permission="read_data",
                 expires_at=soon, justification="features for the Q3 fraud model")
    access_request_create(actor=people.requester, resource=dataset, permission="read_data", duration_days=14,
                          justification="back-testing the Q3 model")
    campaign = review_campaign_start(actor=people.infosec, name="Q4 access review", deadline=soon)
    account = service_account_create(actor=people.requester, name="fraud-pipeline", description="nightly scoring")
    api_token_create(actor=people.requester, service_account=account, name="ci", scopes=["ledger:read"])
    identity_link_create(actor=people.infosec, mlflow_identity="omar@mlflow", account=people.requester,
                         reason="confirmed with the MLflow admins")
    legal_hold_create(actor=people.infosec, data_subject="user:9001", reason="litigation hold LH-7",
                      reference="LH-7")
    with transaction.atomic():
        job = export_create(actor=people.auditor, scope=parse_scope(), fmt="bundle", enqueue=False)
    integrate()
    checkpoint_create()
    return Seeded(people=people, model=model, request=request, review=BreakGlassReview.objects.get(request=glass),
                  dataset=dataset, account=account, campaign_id=campaign.pk, export_id=job.pk,
                  entry_seq=entries[3].seq)


def pages_of_infosec(s: Seeded) -> dict[str, str]:
    return {
        "dashboard": "/console/",
        "violations": "/console/violations/",
        "models": "/console/models/",
        "model detail": f"/console/models/{s.model.pk}/",
        "approvals inbox": "/console/approvals/",
        "promotion request": f"/console/approvals/requests/{s.request.pk}/",
        "break-glass reviews": "/console/approvals/break-glass/",
        "environments": "/console/environments/",
        "identity links": "/console/identity-links/",
        "ledger explorer": "/console/ledger/",
        "ledger explorer, filtered": "/console/ledger/?type=ledger.note_added",
        "ledger entry": f"/console/ledger/{s.entry_seq}/",
        "ledger entry missing (404)": "/console/ledger/999999/",
        "exports": "/console/exports/",
        "export detail": f"/console/exports/{s.export_id}/",
        "export missing (404)": "/console/exports/999999/",
        "legal holds": "/console/legal-holds/",
        "access overview": "/console/access/",
        "dataset detail": f"/console/access/datasets/{s.dataset.pk}/",
        "grants": "/console/access/grants/",
        "access requests": "/console/access/requests/",
        "access reviews": "/console/access/reviews/",
        "access review detail": f"/console/access/reviews/{s.campaign_id}/",
        "service accounts": "/console/access/service-accounts/",
        "service account detail": f"/console/access/service-accounts/{s.account.name}/",
    }


def check_pages(page: Any, live_url: str, pages: dict[str, str]) -> list[str]:
    """Visit each page, run axe; return the blocking findings of all of them (others are printed)."""
    blocking: list[str] = []
    for name, path in pages.items():
        page.goto(f"{live_url}{path}")
        found, other = accessibility_problems(page, f"{name} ({path})")
        blocking += found
        for line in other:
            print("a11y (not blocking):", line)
    return blocking


def fail_on(blocking: list[str]) -> None:
    assert not blocking, "accessibility violations (WCAG 2.1 AA, axe-core):\n" + "\n".join(blocking)


def test_every_page_infosec_sees_is_accessible(live_url: str, page: Any, fake_registry: FakeRegistry) -> None:
    s = seed()
    login(page, live_url, s.people.infosec.username)
    blocking = check_pages(page, live_url, pages_of_infosec(s))
    # the issued-token page (the answer to a POST): issue one through the form
    page.goto(f"{live_url}/console/access/service-accounts/{s.account.name}/")
    page.locator("details.action > summary", has_text="Issue a token").click()
    form = page.locator("form[action$='/tokens/new/']")
    form.locator("input[name=name]").fill("deploy")
    form.locator("input[name=scopes]").first.check()
    with page.expect_navigation():
        form.get_by_role("button", name="Issue token").click()
    blocking += accessibility_problems(page, "token issued")[0]
    fail_on(blocking)


@pytest.mark.parametrize("persona", ["auditor", "owner", "requester", "approver", "steward", "outsider"])
def test_every_page_each_persona_sees_is_accessible(live_url: str, page: Any, fake_registry: FakeRegistry,
                                                     persona: str) -> None:
    s = seed()
    login(page, live_url, getattr(s.people, persona).username)
    # The same routes: each persona gets its own view of them (fewer actions, a denial, a 404 page).
    fail_on(check_pages(page, live_url, pages_of_infosec(s)))


def test_the_signed_out_pages_are_accessible(live_url: str, page: Any) -> None:
    blocking: list[str] = []
    page.goto(f"{live_url}/console/login/")
    blocking += accessibility_problems(page, "login")[0]
    page.get_by_label("Username").fill("nobody")
    page.get_by_label("Password").fill("wrong")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    blocking += accessibility_problems(page, "login, refused")[0]
    page.goto(f"{live_url}/console/no-such-page/")
    blocking += accessibility_problems(page, "unknown URL (404)")[0]
    fail_on(blocking)


