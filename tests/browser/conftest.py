"""Browser tests: a real Chromium drives the console against a live server.

Interface (shared by every ``tests/browser/test_*.py``; keep it stable):

* Every test collected under ``tests/browser/`` is marked ``pytest.mark.browser``
  (added here; modules may also set ``pytestmark = pytest.mark.browser``) and is
  skipped, with the reason, when ``/usr/bin/chromium`` is missing
  (``apt-get install chromium``; ``.ci/run`` does).
* ``live_url`` (fixture, str): base URL (``http://127.0.0.1:<port>``, no trailing
  slash) of a live Django server running in a thread on the test database, with
  real commits (``committing_db``: the server and the test see each other's
  writes; the database is emptied after the test). Static files are served.
* ``page`` (fixture): a Playwright sync ``Page`` in a fresh browser context
  (1280x800 viewport, no network beyond the live server is needed). Chromium is
  ``/usr/bin/chromium``, headless, one per test module. A test fails when Chromium
  reports a Content-Security-Policy violation on the page's console (an inline
  script or style the policy blocked).
* (tests/browser/helpers.py) ``login(page, live_url, username, password="pw")``: sign in via
  ``/console/login/``; returns once the console answered.
* ``shot(page, name)``: full-page screenshot to
  ``var/test-artifacts/screenshots/<name>.png`` (the CI artifact folder); returns the path.
* Test data: create it in the test itself (ORM, factories, services) *before*
  navigating; call ``audit.ledger.integrate()`` / ``audit.services.checkpoints.checkpoint_create()``
  when a page needs integrated entries or a checkpoint (tests integrate explicitly).

Playwright's sync API runs an asyncio loop in the test thread, which makes Django
refuse ORM calls there; ``DJANGO_ALLOW_ASYNC_UNSAFE=true`` is set while a module's
browser is up (and restored afterwards) so the test can set up data.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from tests.browser.helpers import CSP_VIOLATION
from tests.live_server import serving

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
HERE = Path(__file__).resolve().parent
VIEWPORT = {"width": 1280, "height": 800}
SKIP_REASON = f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.browser)
            if not os.path.exists(CHROMIUM):
                item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


@pytest.fixture(scope="module")
def _browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(SKIP_REASON)
    from playwright.sync_api import sync_playwright

    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                yield browser
            finally:
                browser.close()
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def page(_browser: Any, live_url: str) -> Iterator[Any]:
    # Depends on live_url so the context (and its keep-alive connections) closes before the server stops.
    context = _browser.new_context(viewport=VIEWPORT, accept_downloads=True, locale="en-GB")
    context.set_default_timeout(15_000)
    violations: list[str] = []
    try:
        new_page = context.new_page()
        # Chromium reports every script or style the Content-Security-Policy blocked on the console
        # ("Refused to ... because it violates the following Content Security Policy directive ...").
        new_page.on("console", lambda message: violations.append(f"{new_page.url}: {message.text}")
                    if CSP_VIOLATION in message.text else None)
        yield new_page
    finally:
        context.close()
    if violations:
        pytest.fail("the Content-Security-Policy blocked something:\n" + "\n".join(violations), pytrace=False)


@pytest.fixture
def _close_connections_last() -> Iterator[None]:
    # Set up before committing_db, so torn down after its flush: with Playwright's loop running, that flush can
    # open a connection of its own, which must not outlive the test (PostgreSQL would refuse to drop the test DB).
    yield
    connections.close_all()


@pytest.fixture
def live_url(_close_connections_last: None, committing_db: None, settings: Any) -> Iterator[str]:
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "127.0.0.1", "localhost"]
    settings.DEBUG = False
    with serving() as server:
        yield f"http://127.0.0.1:{server.port}"
