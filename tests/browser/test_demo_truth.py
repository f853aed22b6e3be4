"""The demo tells the truth (issue #17 §1), in a real browser: an entry awaiting its checkpoint is pending, not
"NOT verified"; once the embedded scheduler has signed the next checkpoint, the same entry verifies."""
from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction

from audit.ledger import Actor, Subject, integrate, record
from audit.models import Entry
from tests.browser.helpers import login, shot
from tests.console.helpers import seed_ledger
from tests.personas import make_people
from web.embedded_scheduler import EmbeddedScheduler

pytestmark = pytest.mark.browser


def test_a_fresh_entry_is_pending_then_verified_after_the_scheduler_signs(live_url: str, page: Any,
                                                                          tmp_path: Any) -> None:
    # given: a checkpointed ledger, then a promotion-like entry recorded after the checkpoint
    people = make_people()
    seed_ledger(2)
    with transaction.atomic():
        record(event_type="ledger.note_added", actor=Actor.system("demo"), subject=Subject("promotion_request", "1"),
               payload={"text": "approved a moment ago"})
    integrate()
    entry = Entry.objects.order_by("-seq").first()
    assert entry is not None
    login(page, live_url, people.auditor.username)

    # when the auditor verifies it before the next checkpoint
    page.goto(f"{live_url}/console/ledger/{entry.seq}/")
    page.get_by_role("button", name="Verify this entry").click()
    verdict = page.locator(".verdict").inner_text()

    # then: pending, with when; nothing reads like tampering
    assert "Pending" in verdict and "not a failure" in verdict and "NOT verified" not in verdict
    assert page.locator(".badge.bad").count() == 0
    assert page.locator("ol.steps li .badge.ok").count() == 2
    assert "will be covered by the next checkpoint in" in page.locator("ol.steps li").nth(2).inner_text()
    page.get_by_role("button", name="Also check the leaf hash in this browser").click()
    page.get_by_text("Browser check passed: the leaf hash matches; its checkpoint is pending.").wait_for()
    shot(page, "ledger-entry-pending")

    # when: the embedded scheduler signs the next checkpoint (nobody calls the task); the test stays off the
    # database meanwhile (SQLite's shared in-memory test database refuses a reader beside a writer)
    scheduler = EmbeddedScheduler(
        {"ledger-checkpoint": {"task": "audit.tasks.make_checkpoint", "schedule": timedelta(seconds=0.2)}},
        lock_path=tmp_path / "scheduler.lock",
    )
    scheduler.start()
    deadline = time.monotonic() + 4
    while scheduler.runs < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    scheduler.stop()
    assert scheduler.runs >= 1 and scheduler.failures == 0

    # then the same entry verifies
    page.goto(f"{live_url}/console/ledger/{entry.seq}/?verify=1")
    assert "every check passed" in page.locator(".verdict").inner_text()
    assert page.locator("ol.steps li .badge.ok").count() == 4
    shot(page, "ledger-entry-verified-after-checkpoint")
