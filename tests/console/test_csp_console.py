"""Every page a signed-in InfoSec user can reach (console, admin, API docs) carries a strict
Content-Security-Policy and has nothing inline for it to block.

The attack the policy answers: markup injected into a page (a stored value rendered unescaped by some
future bug) that runs script or restyles the page to phish. With ``script-src 'self'`` and
``style-src 'self'`` the browser runs and applies only the static files; these tests keep the pages
free of inline ``<script>``, ``on*=`` handlers, ``style=`` attributes and ``<style>`` blocks, so the
policy never needs an ``'unsafe-inline'`` exception. The browser tests (``tests/browser/conftest.py``)
additionally fail on any violation Chromium reports.
"""
from __future__ import annotations

import re
from collections import deque
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest
from django.test import Client

from governance import registry
from tests.api.seed import seed

pytestmark = pytest.mark.django_db

MAX_PAGES = 400
# Links that are not pages to check: sign-out, file downloads.
SKIP = re.compile(r"/logout/?$|/download/?$|\.(zip|json|csv|jsonl|pem|txt)$")
UNSAFE = ("'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*", "data:", "http:", "https:")


class InlineFinder(HTMLParser):
    """Collects the inline code and style of a page, and its same-site links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...> (inline event handler)")
            if name == "style":
                self.problems.append(f"<{tag} style={value!r}> (inline style)")
            if name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                    "javascript:"):
                self.problems.append(f"<{tag} {name}={value!r}> (javascript: URL)")
        if tag == "script" and not named.get("src") and named.get("type") != "application/json":
            self.problems.append("<script> without src (inline script)")
        if tag == "style":
            self.problems.append("<style> block (inline style)")
        if tag == "a" and named.get("href"):
            self.links.append(str(named["href"]))


def directives(header: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def assert_strict_policy(url: str, response: Any) -> None:
    header = response.get("Content-Security-Policy")
    assert header, f"{url}: no Content-Security-Policy header"
    policy = directives(header)
    for name in ("script-src", "style-src"):
        assert name in policy, f"{url}: CSP has no {name}: {header}"
        loose = [s for s in policy[name] if s in UNSAFE]
        assert not loose, f"{url}: {name} allows {loose}"
    assert policy.get("default-src") == ["'self'"], header
    assert policy.get("object-src") == ["'none'"] and policy.get("base-uri") == ["'none'"], header
    assert policy.get("frame-ancestors") == ["'none'"] and policy.get("form-action") == ["'self'"], header


def crawl(client: Client, starts: list[str], prefixes: tuple[str, ...], *, per_shape: int = 2,
          skip: re.Pattern[str] = SKIP) -> tuple[list[str], dict[str, list[str]]]:
    """GET every same-site page under ``prefixes`` reachable from ``starts`` (at most ``per_shape`` per URL
    shape, ids folded), checking each; returns the HTML pages checked and ``{url: problems}`` for those with
    problems."""
    queue, seen, found = deque(starts), set(starts), {}
    shapes: dict[str, int] = {}
    checked: list[str] = []
    while queue and len(seen) < MAX_PAGES:
        url = queue.popleft()
        response = client.get(url)
        assert response.status_code < 500, f"{url}: {response.status_code}"
        if response.status_code != 200 or not response["Content-Type"].startswith("text/html"):
            continue
        assert_strict_policy(url, response)
        checked.append(url)
        finder = InlineFinder()
        finder.feed(response.content.decode())
        if finder.problems:
            found[url] = sorted(set(finder.problems))
        for href in finder.links:
            target, _ = urldefrag(urljoin(url, href))
            parts = urlsplit(target)
            if parts.netloc not in ("", "testserver") or not parts.path.startswith(prefixes):
                continue
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            shape = re.sub(r"\d+", "N", parts.path) + ("?" if parts.query else "")
            if target in seen or skip.search(target) or shapes.get(shape, 0) >= per_shape:
                continue
            seen.add(target)
            shapes[shape] = shapes.get(shape, 0) + 1
            queue.append(target)
    return checked, found


@pytest.fixture
def infosec_client(no_mlflow: None) -> tuple[Client, int]:
    seeded = seed(versions=3, pending=2, approvers=1, events=3)
    client = Client()
    client.force_login(seeded.people["infosec"])
    return client, seeded.pending_promotions[0]


@pytest.fixture
def no_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> None:
        raise AssertionError("this test must not contact MLflow")

    monkeypatch.setattr(registry, "client", refuse)


def test_every_console_page_has_a_strict_policy_and_nothing_inline(infosec_client: tuple[Client, int]) -> None:
    client, promotion = infosec_client
    starts = ["/console/", f"/console/approvals/requests/{promotion}/"]
    checked, problems = crawl(client, starts, ("/console/",))
    assert problems == {}
    shapes = {re.sub(r"\d+", "N", urlsplit(u).path) for u in checked}
    # The crawl reached the pages of every area (a broken link walk would pass vacuously).
    for page in ("/console/models/N/", "/console/approvals/requests/N/", "/console/ledger/N/",
                 "/console/environments/", "/console/access/", "/console/exports/", "/console/legal-holds/",
                 "/console/violations/", "/console/approvals/break-glass/", "/console/identity-links/",
                 "/console/access/requests/N/"):
        assert page in shapes, (page, sorted(shapes))


def test_the_login_page_has_a_strict_policy_for_anonymous_visitors(db: None) -> None:
    checked, problems = crawl(Client(), ["/console/login/"], ("/console/login/",))
    assert checked == ["/console/login/"] and problems == {}


def test_every_admin_page_has_a_strict_policy_and_nothing_inline(infosec_client: tuple[Client, int]) -> None:
    client, _ = infosec_client
    # One page per shape, no history pages and no sorted or filtered lists: Django's admin templates are
    # the same for every row; what differs is each ModelAdmin's list, forms and custom templates.
    checked, problems = crawl(client, ["/admin/"], ("/admin/",), per_shape=1,
                              skip=re.compile(SKIP.pattern + r"|/history/$|\?"))
    assert problems == {}
    assert len(checked) > 10 and "/admin/audit/entry/" in checked, checked


def test_the_api_docs_page_runs_its_init_script_from_a_file(db: None) -> None:
    client = Client()
    page = client.get("/api/v1/docs/")
    assert page.status_code == 200
    assert_strict_policy("/api/v1/docs/", page)
    finder = InlineFinder()
    finder.feed(page.content.decode())
    assert finder.problems == []
    script = client.get("/api/v1/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in script.content


def test_the_policy_is_sent_on_errors_and_api_answers_too(db: None) -> None:
    for url in ("/console/no-such-page/", "/api/v1/nope", "/healthz"):
        response = Client().get(url)
        assert "'unsafe-inline'" not in response["Content-Security-Policy"], url
        assert response["Content-Security-Policy"].count("frame-ancestors 'none'") == 1, url
