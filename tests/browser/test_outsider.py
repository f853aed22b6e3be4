"""An outsider signs in and is refused the InfoSec pages: a readable "not permitted" page, no data."""
from __future__ import annotations

from typing import Any

import pytest

from audit.models import Entry
from tests.browser.helpers import assert_accessible, login, shot
from tests.console.helpers import make_violation, seed_ledger
from tests.personas import make_people

pytestmark = pytest.mark.browser


def test_outsider_is_refused_the_ledger_exports_and_violations(live_url: str, page: Any) -> None:
    # given
    people = make_people()
    make_violation("secret alias summary")
    entries = seed_ledger(2)
    entry = Entry.objects.get(seq=entries[0].seq)
    login(page, live_url, people.outsider.username)

    # the dashboard shows only their (empty) queues
    page.goto(f"{live_url}/console/")
    assert page.get_by_role("heading", name="Waiting on you").is_visible()
    assert page.get_by_role("heading", name="Ledger integrity").count() == 0

    for path in ("/console/ledger/", f"/console/ledger/{entry.seq}/?verify=1", "/console/exports/",
                 "/console/violations/"):
        response = page.goto(live_url + path)
        assert response is not None and response.status == 403, path
        assert page.get_by_role("heading", name="Not permitted").is_visible()
        text = page.content()
        assert "not permitted" in text and entry.entry_hash not in text and "secret alias summary" not in text
    shot(page, "outsider-refused")
    assert_accessible(page, "not permitted")


def test_anonymous_visitor_is_sent_to_sign_in(live_url: str, page: Any) -> None:
    page.goto(f"{live_url}/console/ledger/")
    assert "/console/login/" in page.url
    assert page.get_by_role("heading", name="Sign in").is_visible()
    assert_accessible(page, "sign in")
