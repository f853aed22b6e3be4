"""Helpers of the browser tests (plain functions; the fixtures are in tests/browser/conftest.py)."""
from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

SCREENSHOTS = Path(__file__).resolve().parent.parent.parent / "var" / "test-artifacts" / "screenshots"
CSP_VIOLATION = "Content Security Policy"
#: What the console promises: WCAG 2.1 level A and AA (axe-core's tags for them).
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
#: The impacts that fail a page; moderate and minor ones are returned, not raised.
BLOCKING = frozenset({"serious", "critical"})


def login(page: Any, live_url: str, username: str, password: str = "pw") -> None:
    page.goto(f"{live_url}/console/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    assert "/console/login/" not in page.url, f"login as {username} failed"


def shot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@cache
def _axe_source() -> str:
    # axe-core's axe.min.js as shipped inside the axe-playwright-python wheel (a dev dependency): nothing is
    # fetched at run time.
    try:
        package = files("axe_playwright_python")
    except ModuleNotFoundError as exc:
        raise RuntimeError("axe-playwright-python (axe-core) is not installed: it is in requirements-dev.lock; "
                           "run python3.11 dev.py setup") from exc
    return package.joinpath("axe.min.js").read_text(encoding="utf-8")


def axe_violations(page: Any, *, open_details: bool = True) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.1 A/AA violations of the page as it is now (every impact).

    axe is evaluated through DevTools (``page.evaluate``), which the Content-Security-Policy does not
    govern; a ``<script>`` tag would be refused. With ``open_details`` every ``<details>`` is opened
    first, so the console's inline action forms and the charts' data tables are checked too (axe skips
    what is not rendered).
    """
    if open_details:
        page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(_axe_source())
    result: list[dict[str, Any]] = page.evaluate(
        """tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})
                     .then(r => r.violations)""",
        WCAG_TAGS,
    )
    return result


def describe(violations: list[dict[str, Any]]) -> list[str]:
    """One line per violation: impact, rule id, what it asks, and the elements' selectors."""
    lines = []
    for v in violations:
        targets = ", ".join(" ".join(map(str, node["target"])) for node in v["nodes"][:6])
        more = f" (+{len(v['nodes']) - 6} more)" if len(v["nodes"]) > 6 else ""
        lines.append(f"[{v['impact']}] {v['id']}: {v['help']} — {targets}{more}")
    return lines


def accessibility_problems(page: Any, name: str) -> tuple[list[str], list[str]]:
    """(blocking, other): the page's serious/critical violations and its moderate/minor ones, described,
    each line prefixed with ``name``."""
    violations = axe_violations(page)
    blocking = [f"{name}: {line}" for line in describe([v for v in violations if v["impact"] in BLOCKING])]
    other = [f"{name}: {line}" for line in describe([v for v in violations if v["impact"] not in BLOCKING])]
    return blocking, other


def assert_accessible(page: Any, name: str) -> list[str]:
    """Fail, listing each one, when axe-core finds a serious or critical WCAG 2.1 AA violation on the page
    (rule id, what it asks, the offending elements' selectors). Returns the moderate and minor ones."""
    blocking, other = accessibility_problems(page, name)
    assert not blocking, "accessibility violations (WCAG 2.1 AA, axe-core):\n" + "\n".join(blocking)
    return other
