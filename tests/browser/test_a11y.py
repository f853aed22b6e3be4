"""Accessibility of the console (WCAG 2.1 AA): axe-core on every console page, keyboard use, charts' data.

Each persona's test signs in once and visits every page that persona reaches, with realistic data made
through the services (``seed``); axe-core (``tests/browser/helpers.assert_accessible``, every ``<details>``
opened so the inline action forms count) must find no serious or critical violation. The failure lists
every offending page, rule and element at once. Moderate and minor findings are printed (``-s``), not
failed. The pages are the GET routes of audit/, access/, governance/ and web/ console urls.py; the POST-only
routes render these same templates (the issued-token page is reached by issuing a token).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from access.models import Dataset, DatasetField, ServiceAccount
from access.services.access_requests import access_request_create
from access.services.grants import grant_create
from access.services.reviews import review_campaign_start
from access.services.service_accounts import service_account_create
from access.services.tokens import api_token_create
from audit.export.scope import parse_scope
from audit.export.service import export_create, export_run
from audit.ledger import integrate
from audit.services.checkpoints import checkpoint_create
from audit.services.retention import legal_hold_create
from governance.console.overview import SERIES_COLOURS
from governance.models import BreakGlassReview, Environment, PromotionRequest, RegisteredModel
from governance.services import break_glass, promotions
from governance.services.change_requests import change_request_create
from governance.services.identity_links import identity_link_create
from tests.browser.helpers import accessibility_problems, assert_accessible, login
from tests.console.helpers import make_violation, pii_entry, seed_ledger
from tests.factories import ModelVersionFactory
from tests.governance.helpers import TIGHTER, FakeRegistry, ensure_defaults, make_deployed
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
    access_request_id: int
    export_id: int
    entry_seq: int


def seed() -> Seeded:
    """One of everything the console lists: a ledger with a checkpoint, a violation, fraud-detector with a
    pending staging request and a break-glass review, datasets with a grant, an access request and a review
    campaign, a service account with a token, an MLflow identity link, a pending change to production's
    policy, a legal hold and an export."""
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
    asked = access_request_create(actor=people.requester, resource=dataset, permission="read_data", duration_days=14,
                                  justification="back-testing the Q3 model")
    campaign = review_campaign_start(actor=people.infosec, name="Q4 access review", deadline=soon)
    account = service_account_create(actor=people.requester, name="fraud-pipeline", description="nightly scoring")
    api_token_create(actor=people.requester, service_account=account, name="ci", scopes=["ledger:read"])
    identity_link_create(actor=people.infosec, mlflow_identity="omar@mlflow", account=people.requester,
                         reason="confirmed with the MLflow admins")
    Environment.objects.filter(name="production").update(protected=True)  # whatever the flush left
    change_request_create(actor=people.infosec, environment=envs["production"], kind="policy_set",
                          change={"rules": TIGHTER}, reason="INC-12")
    legal_hold_create(actor=people.infosec, data_subject="user:9001", reason="litigation hold LH-7",
                      reference="LH-7")
    with transaction.atomic():
        job = export_create(actor=people.auditor, scope=parse_scope(), fmt="bundle", enqueue=False)
    integrate()
    checkpoint_create()
    return Seeded(people=people, model=model, request=request, review=BreakGlassReview.objects.get(request=glass),
                  dataset=dataset, account=account, campaign_id=campaign.pk, access_request_id=asked.pk,
                  export_id=job.pk,
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
        "admission decisions": "/console/admission/",
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
        "unknown dataset (404)": "/console/access/datasets/999999/",
        "unknown address (404)": "/console/no-such-page/",
    } | _where_routed({
        # pages whose routes may not exist yet on this branch (added by parallel work): checked where they do
        "preferences": ("console-preferences", ()),
        "change password": ("console-password-change", ()),
        "access request": ("console-access-request", (s.access_request_id,)),
    })


def _where_routed(pages: dict[str, tuple[str, tuple[Any, ...]]]) -> dict[str, str]:
    out = {}
    for name, (route, args) in pages.items():
        try:
            out[name] = reverse(route, args=args)
        except NoReverseMatch:
            continue
    return out


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
    # the seeded rows were on the pages checked (a page checked empty would prove less)
    for path, text in (("/console/environments/", "INC-12"), ("/console/approvals/break-glass/", "merchant-scorer"),
                       ("/console/access/requests/", "card-transactions-2026q3"),
                       ("/console/identity-links/", "omar@mlflow"), ("/console/legal-holds/", "LH-7")):
        page.goto(f"{live_url}{path}")
        assert text in page.content(), f"{text!r} not on {path}"
    # the issued-token page (the answer to a POST): issue one through the form
    page.goto(f"{live_url}/console/access/service-accounts/{s.account.name}/")
    page.locator("details.action > summary", has_text="Issue a token").click()
    form = page.locator("form[action$='/tokens/new/']")
    form.locator("input[name=name]").fill("deploy")
    form.locator("input[name=scopes]").first.check()
    with page.expect_navigation():
        form.get_by_role("button", name="Issue token").click()
    blocking += accessibility_problems(page, "token issued")[0]
    # a refused form (400, with its error message) and a revealed entry (the answers to POSTs)
    page.goto(f"{live_url}/console/exports/")
    page.get_by_label("Format").select_option("report")
    with page.expect_navigation():
        page.get_by_role("button", name="Start export").click()
    assert page.get_by_text("The export was not started").is_visible()
    blocking += accessibility_problems(page, "exports, refused")[0]
    page.goto(f"{live_url}/console/ledger/{pii_entry().seq}/")
    page.get_by_label("Reason for revealing the personal data (recorded in the ledger)").fill("DSAR-12")
    with page.expect_navigation():
        page.get_by_role("button", name="Reveal personal data").click()
    assert page.get_by_role("heading", name="Revealed payload").is_visible()
    blocking += accessibility_problems(page, "ledger entry, revealed")[0]
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
    for _ in range(4):  # the fifth failure from this address locks it: the lockout page (429)
        page.get_by_label("Username").fill("nobody")
        page.get_by_label("Password").fill("wrong")
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("heading", name="Sign-in locked").is_visible()
    blocking += accessibility_problems(page, "sign-in locked")[0]
    page.goto(f"{live_url}/console/no-such-page/")
    assert page.get_by_role("heading", name=re.compile("not found", re.IGNORECASE)).is_visible()
    blocking += accessibility_problems(page, "unknown address (404)")[0]
    fail_on(blocking)




def test_the_check_fails_on_a_violation(live_url: str, page: Any) -> None:
    # The guard of every test above: an image without a text alternative and an unlabelled field, added to
    # the login page, are reported by rule, impact and element.
    page.goto(f"{live_url}/console/login/")
    page.evaluate("""() => {
        const img = document.createElement('img');
        img.src = '/static/console/none.png'; img.id = 'no-alt';
        const input = document.createElement('input');
        input.id = 'no-label';
        document.querySelector('main').append(img, input);
    }""")
    with pytest.raises(AssertionError) as failure:
        assert_accessible(page, "login, broken on purpose")
    report = str(failure.value)
    assert "[critical] image-alt" in report and "#no-alt" in report
    assert "label" in report and "#no-label" in report


# --- keyboard -------------------------------------------------------------------------------------------

FOCUSED = """() => {
    const e = document.activeElement, style = getComputedStyle(e);
    return {tag: e.tagName.toLowerCase(), id: e.id, text: (e.innerText || e.value || '').trim(),
            inNav: !!e.closest('nav'), outline: style.outlineStyle, outlineWidth: style.outlineWidth};
}"""


def tab(page: Any) -> dict[str, Any]:
    page.keyboard.press("Tab")
    focused: dict[str, Any] = page.evaluate(FOCUSED)
    return focused


def tab_to(page: Any, text: str, limit: int = 60) -> dict[str, Any]:
    """Tab until the focused element's text is ``text``; fail (with the path taken) if it never is."""
    path = []
    for _ in range(limit):
        focused = tab(page)
        path.append(focused["text"][:30])
        if focused["text"] == text:
            return focused
    raise AssertionError(f"{text!r} is not reachable by Tab; focus went through {path}")


def assert_focus_visible(focused: dict[str, Any]) -> None:
    # console.css's :focus-visible outline (3px), not the browser's 1px default ring, nor none
    assert focused["outline"] != "none" and float(focused["outlineWidth"].removesuffix("px")) >= 2, (
        f"no visible focus style on {focused}")


def test_the_dashboard_by_keyboard(live_url: str, page: Any) -> None:
    make_people()
    seed_ledger(3)
    login(page, live_url, "ines")
    page.goto(f"{live_url}/console/")
    # the first Tab reaches the skip link, which becomes visible; then the brand, then the main navigation
    skip = tab(page)
    assert (skip["tag"], skip["text"]) == ("a", "Skip to content")
    assert_focus_visible(skip)
    assert page.locator("a.skip").bounding_box()["x"] >= 0
    assert tab(page)["text"] == "ML governance ledger"
    first_nav = tab(page)
    assert first_nav["inNav"] and first_nav["text"] == "Dashboard"
    assert_focus_visible(first_nav)
    # Enter on the skip link moves focus into the page's content: the next Tab is past the navigation
    page.goto(f"{live_url}/console/")
    tab(page)
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    after = tab(page)
    assert not after["inNav"] and after["text"] not in {"ML governance ledger", "Sign out"}
    assert_focus_visible(after)
    # Enter on a navigation link follows it
    page.goto(f"{live_url}/console/")
    tab_to(page, "Ledger")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("/console/ledger/")


def test_signing_in_by_keyboard(live_url: str, page: Any) -> None:
    make_people()
    page.goto(f"{live_url}/console/login/")
    field = page.evaluate(FOCUSED)  # the username field has the focus from the start (autofocus)
    assert field["id"] == "id_username"
    assert_focus_visible(field)
    page.keyboard.type("ines")
    assert tab(page)["id"] == "id_password"
    page.keyboard.type("pw")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("/console/")


def test_an_owner_requests_a_promotion_by_keyboard(live_url: str, page: Any, no_mlflow: None) -> None:
    # given fraud-detector v7, live in dev for three days, owned by rita
    people = make_people()
    envs = ensure_defaults()
    model = RegisteredModel.objects.create(name="fraud-detector", owner=people.requester)
    v7 = ModelVersionFactory(model=model, version=7)
    make_deployed(v7, envs["dev"], requested_by=people.requester, hours_ago=72)
    login(page, live_url, people.requester.username)
    page.goto(f"{live_url}/console/models/{model.pk}/")
    # when, without the mouse: Tab to the action, open it with Enter, fill the form, submit with Space
    summary = tab_to(page, "Request promotion")
    assert_focus_visible(summary)
    page.keyboard.press("Enter")
    assert page.locator("#rq-version").is_visible()
    tab(page)  # version: v7 is the only one
    tab(page)
    page.keyboard.type("staging")  # the environment, chosen by typing its name
    tab_to(page, "")  # past strategy (full) to the canary steps, left blank
    reason = tab(page)
    assert reason["id"] == "rq-reason"
    page.keyboard.type("Quarterly retrain")
    submit = tab_to(page, "Request promotion")
    assert submit["tag"] == "button"
    assert_focus_visible(submit)
    with page.expect_navigation():
        page.keyboard.press("Space")
    # then
    request = PromotionRequest.objects.get(version=v7, environment__name="staging")
    assert (request.environment.name, request.reason) == ("staging", "Quarterly retrain")
    assert page.url.endswith(f"/console/approvals/requests/{request.pk}/")


# --- charts ---------------------------------------------------------------------------------------------

def test_the_dashboard_charts_keep_their_data_tables(live_url: str, page: Any) -> None:
    people = make_people()
    seed_ledger(5, days=2)
    envs = ensure_defaults()
    model = RegisteredModel.objects.create(name="fraud-detector", owner=people.requester)
    make_deployed(ModelVersionFactory(model=model, version=7), envs["dev"], requested_by=people.requester)
    login(page, live_url, people.infosec.username)
    page.goto(f"{live_url}/console/")
    charts = page.locator("figure.chart")
    assert charts.count() == 2
    for i in range(2):
        chart = charts.nth(i)
        graphic = chart.locator("svg[role=img]").first
        summary = chart.locator("figcaption").inner_text()
        # the graphic is one image named by its summary
        assert page.evaluate("id => document.getElementById(id).textContent",
                             graphic.get_attribute("aria-labelledby")) == summary
        assert summary
        # the data table is behind a disclosure, opened by keyboard, captioned, with headers
        chart.locator("details > summary").focus()
        page.keyboard.press("Enter")
        table = chart.get_by_role("table")
        assert table.is_visible()
        assert summary in table.locator("caption").inner_text()
        assert table.locator("thead th[scope=col]").count() >= 2
        assert table.locator("tbody th[scope=row]").count() == table.locator("tbody tr").count() > 0
    # the activity chart's table has the figures: the five notes and the user registration, by day
    activity = charts.nth(0).get_by_role("table")
    totals = [int(t) for t in activity.locator("tbody tr td:last-child").all_inner_texts()]
    assert sum(totals) >= 6
    assert_accessible(page, "dashboard, data tables open")


# --- a running export updates in place ------------------------------------------------------------------

def test_a_running_export_updates_its_state_in_place(live_url: str, page: Any, tmp_path: Path) -> None:
    people = make_people()
    seed_ledger(3)
    with transaction.atomic():
        job = export_create(actor=people.auditor, scope=parse_scope(), fmt="bundle", enqueue=False)
    login(page, live_url, people.auditor.username)
    page.goto(f"{live_url}/console/exports/{job.pk}/")
    assert page.locator("#export-state .badge").inner_text() == "pending"
    page.get_by_role("link", name="← Exports").focus()  # where the reader is: the update must not move it
    export_run(export_id=job.pk, out=tmp_path / "export.zip")
    page.get_by_role("link", name=f"Download export #{job.pk}").wait_for()
    assert page.locator("#export-state .badge").inner_text() == "done"
    assert page.evaluate("() => document.activeElement.textContent") == "← Exports"
    assert page.locator("#export-state[data-running]").count() == 0


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_every_chart_colour_stands_out_from_the_card() -> None:
    # WCAG 1.4.11 (non-text contrast, 3:1) for each series' bars on the white card; axe checks text only.
    css = (Path(__file__).resolve().parents[2] / "web" / "static" / "console" / "console.css").read_text()
    fills = dict(re.findall(r"(?<!\.chart )\.series-(\d+) \{ fill:(#[0-9a-f]{6}); \}", css))
    fills |= dict(re.findall(r"\.chart \.series-(\d+) \{ fill:(#[0-9a-f]{6}); \}", css))  # charts' own, stronger
    assert len(fills) == SERIES_COLOURS
    for series, colour in fills.items():
        ratio = (1 + 0.05) / (_luminance(colour) + 0.05)
        assert ratio >= 3, f"series-{series} {colour} is {ratio:.2f}:1 on white"


def test_a_box_that_scrolls_sideways_is_reachable_by_keyboard(live_url: str, page: Any) -> None:
    # scroll-regions.js: a narrow box holding a long unbreakable token scrolls; it becomes a Tab stop
    make_people()
    login(page, live_url, "ines")
    page.goto(f"{live_url}/console/")
    page.evaluate("""() => {
        const box = document.createElement('div');
        box.id = 'wide'; box.className = 'card narrow mono';
        box.textContent = 'ab'.repeat(200);
        // CSSOM, not a style attribute: the Content-Security-Policy allows the one, refuses the other
        Object.assign(box.style, {overflowX: 'auto', wordBreak: 'normal', maxWidth: '200px'});
        document.querySelector('main').append(box);
    }""")
    page.evaluate("() => window.dispatchEvent(new Event('resize'))")
    page.wait_for_selector("#wide[tabindex='0']")
    assert_accessible(page, "dashboard with a scrolling box")
    page.locator("#wide").focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.getElementById('wide').scrollLeft > 0")
