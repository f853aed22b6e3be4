"""Helpers of the browser tests (plain functions; the fixtures are in tests/browser/conftest.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

SCREENSHOTS = Path(__file__).resolve().parent.parent.parent / "var" / "test-artifacts" / "screenshots"
CSP_VIOLATION = "Content Security Policy"


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
