"""InfoSec, in a real browser: sorts a table by clicking its header, downloads the view as CSV, pages with the
page numbers, and uses the ledger explorer's search box and "Jump to seq"."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from access.models import Dataset
from audit.models import Entry
from audit.services.retention import legal_hold_create
from tests.browser.helpers import login, shot
from tests.console.helpers import seed_ledger
from tests.personas import make_people

pytestmark = pytest.mark.browser


def _subjects(page: Any) -> list[str]:
    return [text.strip() for text in page.locator("table tbody tr td:nth-child(2)").all_inner_texts()]


def test_sort_by_header_download_csv_and_search_the_ledger(live_url: str, page: Any, tmp_path: Path) -> None:
    # given
    people = make_people()
    with transaction.atomic():
        for i in (2, 0, 1):
            legal_hold_create(actor=people.infosec, data_subject=f"user:90040{i}", reason=f"=cmd reason {i}")
    seed_ledger(8)
    login(page, live_url, people.infosec.username)

    # a header sorts the table, a second click reverses it; aria-sort tells which way
    page.goto(f"{live_url}/console/legal-holds/")
    page.get_by_role("link", name="Data subject").click()
    page.wait_for_url("**sort=subject**")
    assert _subjects(page) == ["user:900400", "user:900401", "user:900402"]
    assert page.locator("th[aria-sort=ascending]").inner_text().startswith("Data subject")
    page.get_by_role("link", name="Data subject").click()
    page.wait_for_url("**sort=-subject**")
    assert _subjects(page) == ["user:900402", "user:900401", "user:900400"]
    assert page.locator("th[aria-sort=descending]").count() == 1
    shot(page, "table-sorted")

    # the CSV of the view: same rows, same order, formulas defused
    with page.expect_download() as info:
        page.get_by_role("link", name="Download this view as CSV").click()
    download = info.value
    assert download.suggested_filename.startswith("legal-holds-") and download.suggested_filename.endswith(".csv")
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    with target.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert [r[1] for r in rows[1:]] == ["user:900402", "user:900401", "user:900400"]
    assert rows[1][3] == "'=cmd reason 2"

    # pages that jump: page numbers and "Go to page", keeping the filter and the sort
    Dataset.objects.bulk_create(Dataset(name=f"bulk-{i:02d}", owner=people.owner) for i in range(30))
    page.goto(f"{live_url}/console/access/?q=bulk&sort=-name")
    assert page.get_by_text("Page 1 of 2 · 30 in all").is_visible()
    page.get_by_label("Go to page").fill("2")
    page.get_by_role("button", name="Go", exact=True).click()
    page.wait_for_url("**page=2**")
    assert page.get_by_text("Page 2 of 2 · 30 in all").is_visible()
    assert page.locator("table tbody tr td:first-child").first.inner_text().strip() == "bulk-04"
    page.get_by_role("link", name="Page 1", exact=True).click()
    assert page.locator("table tbody tr td:first-child").first.inner_text().strip() == "bulk-29"
    shot(page, "table-pages")

    # the ledger: a subject in the search box, then a jump to a seq, then a seq opens the entry
    page.goto(f"{live_url}/console/ledger/")
    assert page.get_by_text(f"{Entry.objects.count()} entries in the ledger").is_visible()
    page.get_by_label("Search").fill("registered_model:model-1")
    page.get_by_role("button", name="Filter").click()
    page.get_by_text("Showing entries about registered_model:model-1").wait_for()
    assert page.locator("table tbody tr").count() == 4
    shot(page, "ledger-search")
    page.get_by_role("link", name="Clear").click()
    page.get_by_label("Jump to seq").fill("#3")
    page.get_by_role("button", name="Jump").click()
    page.wait_for_url("**jump=**")
    assert page.locator("table tbody tr td:first-child").first.inner_text().strip() == "#3"
    page.get_by_label("Search").fill("#5")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/console/ledger/5/")
    assert page.get_by_role("heading", name="Entry #5").is_visible()
    page.goto(f"{live_url}/console/ledger/?q=utter-nonsense")
    assert page.get_by_text("Nothing matches 'utter-nonsense'").is_visible()
