"""The Content-Security-Policy in a real browser: the console's own scripts run (the entry page verifies
its leaf hash), the API docs render from their split init script, and an inline script is blocked
(the attack the policy exists for), reported as a violation by the ``page`` fixture's console listener."""
from __future__ import annotations

from typing import Any

import pytest

from tests.browser.helpers import CSP_VIOLATION, login
from tests.console.helpers import seed_ledger
from tests.personas import make_people


def test_the_api_docs_render_under_the_policy(live_url: str, page: Any) -> None:
    page.goto(f"{live_url}/api/v1/docs/")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "ML governance ledger API" in page.inner_text(".swagger-ui .info .title")


def test_the_console_scripts_run_under_the_policy(live_url: str, page: Any) -> None:
    people = make_people()
    entries = seed_ledger(3)
    login(page, live_url, people.infosec.username)
    page.goto(f"{live_url}/console/ledger/{entries[0].seq}/")
    # entry-verify.js (a static file) recomputes the leaf hash with WebCrypto and says so.
    page.get_by_role("button", name="Also check the leaf hash in this browser").click()
    page.wait_for_selector("#browser-verify-result.ok")
    assert "leaf hash matches" in page.inner_text("#browser-verify-result")
    for path in ("/console/", "/console/environments/", "/console/models/", "/console/access/"):
        page.goto(f"{live_url}{path}")


def test_an_injected_inline_script_is_blocked_and_reported(live_url: str, _browser: Any) -> None:
    # Uses its own context: the violation is the expected outcome here, not a failure.
    context = _browser.new_context()
    try:
        page = context.new_page()
        messages: list[str] = []
        page.on("console", lambda message: messages.append(message.text))
        page.goto(f"{live_url}/console/login/")
        page.evaluate("""() => {
            const s = document.createElement('script');
            s.textContent = 'window.injected = true';
            document.body.appendChild(s);
            const d = document.createElement('div');
            d.setAttribute('style', 'color: red');
            document.body.appendChild(d);
        }""")
        page.wait_for_timeout(200)
        assert page.evaluate("() => window.injected === undefined")
        assert any(CSP_VIOLATION in m and "script-src" in m for m in messages), messages
    finally:
        context.close()


pytestmark = pytest.mark.browser
