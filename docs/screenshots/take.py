"""Refresh the README's screenshots from a running demo (``python3.11 dev.py demo``).

    .venv/bin/python docs/screenshots/take.py [--url http://127.0.0.1:8000]

Signs in as the demo's people (password ``governance-demo``) in Debian's Chromium and saves each page
the README shows into this folder, at the console's usual 1280-pixel width. Nothing is changed in the
demo: every page is a read.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
PASSWORD = "governance-demo"  # noqa: S105 - the demo's published password
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def sign_in(page: Any, url: str, username: str) -> None:
    page.goto(f"{url}/console/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()


def save(page: Any, name: str) -> None:
    page.screenshot(path=str(HERE / f"{name}.png"), full_page=True)
    print(f"docs/screenshots/{name}.png  {page.url}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    url = parser.parse_args().url.rstrip("/")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()

        sign_in(page, url, "alice")  # InfoSec
        save(page, "dashboard")
        page.goto(f"{url}/console/ledger/?q=model_version:fraud-detector/3")
        save(page, "ledger-search")
        first = page.locator("table a[href*='/console/ledger/']").first
        first.click()
        page.get_by_role("button", name="Verify this entry").click()
        page.wait_for_selector("text=/verified|pending/i")
        save(page, "ledger-entry-verified")
        page.goto(f"{url}/console/exports/")
        save(page, "exports")
        page.goto(f"{url}/console/access/requests/")
        link = page.locator("a[href^='/console/access/requests/']").filter(has_text=re.compile(r"^#\d+$")).first
        link.click()
        save(page, "access-request-detail")

        page.context.clear_cookies()
        sign_in(page, url, "mira")  # model-risk approver
        page.goto(f"{url}/console/approvals/")
        page.locator("a[href^='/console/approvals/requests/']").first.click()
        save(page, "promotion-requested")

        page.context.clear_cookies()
        sign_in(page, url, "dana")  # data steward
        save(page, "steward-dashboard")
        page.goto(f"{url}/console/access/")
        page.locator("a[href^='/console/access/datasets/']").first.click()
        save(page, "dataset-classify")

        page.context.clear_cookies()
        sign_in(page, url, "omar")  # model owner
        page.goto(f"{url}/console/models/")
        page.locator("a[href^='/console/models/']").filter(has_text="fraud-detector").first.click()
        page.locator("details.action > summary", has_text="Request promotion").click()
        page.locator("#rq-environment").select_option("staging")
        page.locator("#rq-reason").fill("Quarterly retrain with the merchant-category features")
        save(page, "request-promotion")  # filled in, not sent
        browser.close()


if __name__ == "__main__":
    main()
