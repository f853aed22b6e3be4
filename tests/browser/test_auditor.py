"""An auditor, in a real browser: dashboard, ledger explorer, "Verify this entry", an export downloaded."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from audit.models import Entry, ExportJob
from governance.models import RegisteredModel
from tests.browser.helpers import login, shot
from tests.console.helpers import make_violation, seed_ledger
from tests.personas import make_people

pytestmark = pytest.mark.browser


def test_auditor_verifies_an_entry_and_downloads_an_export(live_url: str, page: Any, tmp_path: Path) -> None:
    # given
    people = make_people()
    make_violation()
    seed_ledger(12, days=6)
    entry = Entry.objects.filter(event_type="ledger.note_added").order_by("seq")[3]
    with override_settings(VAR_DIR=tmp_path):
        login(page, live_url, people.auditor.username)

        # the dashboard
        page.goto(f"{live_url}/console/")
        assert page.get_by_role("heading", name="Ledger integrity").is_visible()
        shot(page, "dashboard")

        # the explorer, then one entry, verified on the server and in the browser
        page.get_by_role("link", name="Ledger", exact=True).click()
        assert page.get_by_role("heading", name="Ledger explorer").is_visible()
        shot(page, "ledger-explorer")
        page.get_by_role("link", name=f"Entry {entry.seq}", exact=True).click()
        page.get_by_role("button", name="Verify this entry").click()
        verdict = page.locator(".verdict")
        assert "every check passed" in verdict.inner_text()
        assert page.locator("ol.steps li .badge.ok").count() == 4
        page.get_by_role("button", name="Also check the leaf hash in this browser").click()
        page.get_by_text("Browser check passed").wait_for()
        shot(page, "ledger-entry-verified")

        # an export, started, then downloaded
        page.get_by_role("link", name="Exports").click()
        page.get_by_label("Format").select_option("bundle")
        page.get_by_role("button", name="Start export").click()
        page.get_by_role("link", name="Download export").wait_for()
        with page.expect_download() as info:
            page.get_by_role("link", name="Download export").click()
        download = info.value
        target = tmp_path / download.suggested_filename
        download.save_as(target)
        assert target.stat().st_size > 0 and download.suggested_filename.endswith(".zip")
        page.get_by_role("link", name="← Exports").click()
        shot(page, "exports")

        # violations are read-only for an auditor
        page.get_by_role("link", name="Violations").click()
        assert page.get_by_text("alias production moved outside governance").is_visible()
        assert page.get_by_role("button", name="Acknowledge").count() == 0
        shot(page, "violations")


def test_auditor_exports_two_models_picked_with_the_filter(live_url: str, page: Any, tmp_path: Path) -> None:
    # given three models in the registry
    people = make_people()
    for name in ("fraud-detector", "credit-scoring", "churn-predictor"):
        RegisteredModel.objects.create(name=name, owner=people.owner)
    seed_ledger(2)
    with override_settings(VAR_DIR=tmp_path):
        login(page, live_url, people.auditor.username)
        page.goto(f"{live_url}/console/exports/")
        models = page.get_by_role("group", name=re.compile("^Models"))
        # when the auditor filters the models' picker and ticks two of them (no Ctrl-click anywhere)
        models.get_by_role("searchbox").fill("fraud")
        assert models.get_by_role("checkbox", name="credit-scoring").is_hidden()
        models.get_by_role("checkbox", name="fraud-detector").check()
        models.get_by_role("searchbox").fill("credit")
        assert models.get_by_role("checkbox", name="fraud-detector").is_visible()  # ticked: stays in sight
        models.get_by_role("checkbox", name="credit-scoring").check()
        shot(page, "export-pickers")
        page.get_by_label("Format").select_option("csv")
        page.get_by_role("button", name="Start export").click()
        page.get_by_role("link", name="Download export").wait_for()
        # then the export covers both models' subjects, and nothing on the way spoke in command-line flags
        job = ExportJob.objects.get()
        subjects = {(t, i) for t, i, _ in job.scope["subjects"]}
        assert {("registered_model", "fraud-detector"), ("registered_model", "credit-scoring")} <= subjects
        assert ("registered_model", "churn-predictor") not in subjects
        assert not re.search(r"--[a-z]", page.content())


def test_long_hashes_stay_whole_on_one_line_and_the_page_does_not_spill(live_url: str, page: Any) -> None:
    # given an entry (64-hex hashes, and a checkpoint line longer than its card)
    people = make_people()
    seed_ledger(2)
    entry = Entry.objects.filter(event_type="ledger.note_added").order_by("seq").last()
    login(page, live_url, people.auditor.username)
    page.goto(f"{live_url}/console/ledger/{entry.seq}/")
    page.get_by_role("button", name="Verify this entry").click()
    page.locator(".verdict").wait_for()
    # then each hash is one line (its text makes one box: no break inside the word), whole when copied,
    # and the page itself is no wider than the window
    lines = page.evaluate("""id => { const r = document.createRange();
        r.selectNodeContents(document.getElementById(id)); return r.getClientRects().length; }""", "entry-hash")
    assert lines == 1
    assert page.locator("#entry-hash").inner_text() == entry.entry_hash
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
