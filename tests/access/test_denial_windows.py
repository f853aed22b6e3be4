"""Issue 8g: a denied access check is recorded once per (principal, resource, permission) per interval.

100 polls of a denied, sensitive resource made 100 ledger entries; now the first
denial writes ``access.check_denied``, the repeats only count (no ledger write), and
the interval closes with ``access.check_denials_summarised`` carrying the count:
from the beat task, or lazily at the next denial when no beat runs.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from access.models import DenialWindow
from access.services.checks import check, check_denials_summarise
from access.tasks import summarise_denials
from audit.models import Entry, PendingEntry
from tests.access.helpers import ledger
from tests.audit.integration.helpers import race
from tests.catalog import Resources
from tests.personas import People, fresh, make_user

# fixtures (they need the ``db`` fixture; the concurrency test uses ``committing_db`` instead)

HOUR = 3600.0


@pytest.fixture(autouse=True)
def _interval(settings: Any) -> None:
    settings.ACCESS_DENIAL_INTERVAL = HOUR


def _ledger_rows() -> int:
    return PendingEntry.objects.count() + Entry.objects.count()


def _age(seconds: float) -> None:
    """Move every open window's clock back, as if its first denial was that long ago."""
    for window in DenialWindow.objects.all():
        DenialWindow.objects.filter(pk=window.pk).update(
            first_at=window.first_at - timedelta(seconds=seconds), last_at=window.last_at - timedelta(seconds=seconds))


def test_a_hundred_polls_make_one_entry_and_a_count(people: People, res: Resources) -> None:
    # given
    before = _ledger_rows()
    user = fresh(people.outsider)
    # when: the outsider polls a confidential dataset 100 times
    for _ in range(100):
        assert not check(user, "read_data", res.confidential)
    # then: one entry, and the window counts all 100
    assert _ledger_rows() == before + 1
    [denied] = ledger("access.check_denied")
    assert denied == {"principal": f"user:{people.outsider.pk}", "resource": "dataset:customers",
                      "permission": "read_data", "level": "confidential"}
    window = DenialWindow.objects.get()
    assert (window.principal, window.count) == (f"user:{people.outsider.pk}", 100)


def test_a_repeated_denial_is_one_update_and_no_ledger_write(people: People, res: Resources) -> None:
    user = fresh(people.outsider)
    check(user, "read_data", res.confidential)
    with CaptureQueriesContext(connection) as ctx:
        check(user, "read_data", res.confidential)
    statements = [q["sql"] for q in ctx.captured_queries]
    assert len(statements) == 2, statements  # the grant lookup, the counter
    assert not any("audit_" in sql for sql in statements)


def test_each_principal_resource_and_permission_has_its_own_window(people: People, res: Resources) -> None:
    other = make_user("olaf")
    for who, permission, resource in [
        (people.outsider, "read_data", res.confidential), (people.outsider, "train_on", res.confidential),
        (people.outsider, "read_data", res.restricted), (other, "read_data", res.confidential),
        (people.team, "read_data", res.confidential),
    ]:
        for _ in range(3):
            check(fresh(who) if who is not people.team else who, permission, resource)
    assert len(ledger("access.check_denied")) == 5
    assert sorted(DenialWindow.objects.values_list("count", flat=True)) == [3] * 5
    # and a non-sensitive resource records and counts nothing
    check(fresh(people.outsider), "read_data", res.internal)
    assert DenialWindow.objects.count() == 5


def test_the_next_denial_after_the_interval_summarises_and_opens_a_new_window(people: People,
                                                                                 res: Resources) -> None:
    # given: 7 denials an hour and a bit ago, and no beat
    user = fresh(people.outsider)
    for _ in range(7):
        check(user, "read_data", res.confidential)
    _age(HOUR + 5)
    old = DenialWindow.objects.get()
    # when
    check(user, "read_data", res.confidential)
    # then: the closed interval is summarised, and this denial is recorded as the first of a new one
    [summary] = ledger("access.check_denials_summarised")
    assert summary["count"] == 7 and summary["principal"] == f"user:{people.outsider.pk}"
    assert summary["resource"] == "dataset:customers" and summary["permission"] == "read_data"
    assert summary["first_at"] < summary["last_at"]
    assert len(ledger("access.check_denied")) == 2
    window = DenialWindow.objects.get()
    assert window.count == 1 and window.first_at > old.first_at + timedelta(seconds=HOUR)


def test_the_beat_task_closes_due_windows_once(people: People, res: Resources) -> None:
    # given: one window with repeats, one with a single denial, both due; one still open
    user = fresh(people.outsider)
    for _ in range(4):
        check(user, "read_data", res.confidential)
    check(user, "read_data", res.restricted)
    _age(HOUR + 1)
    check(user, "train_on", res.confidential)
    # when
    assert summarise_denials.run() == 2
    # then: a summary for the one with repeats only, both rows gone, the open one kept
    [summary] = ledger("access.check_denials_summarised")
    assert summary["count"] == 4
    assert list(DenialWindow.objects.values_list("permission", flat=True)) == ["train_on"]
    # and running it again writes nothing
    before = _ledger_rows()
    assert check_denials_summarise() == 0
    assert _ledger_rows() == before


def test_the_summary_carries_no_personal_data(people: People, res: Resources) -> None:
    user = fresh(people.outsider)
    for _ in range(3):
        check(user, "read_data", res.confidential)
    assert check_denials_summarise(now=timezone.now() + timedelta(seconds=HOUR + 1)) == 1
    ledger("access.check_denials_summarised")  # integrates the intake
    bodies = list(Entry.objects.filter(event_type__startswith="access.check_den").values_list("payload_json",
                                                                                             flat=True))
    assert len(bodies) == 2
    assert all(f'"user:{people.outsider.pk}"' in body and "otto" not in body for body in bodies)


def test_concurrent_first_denials_write_one_entry(on_postgres: None, committing_db: None) -> None:
    """Two processes denied at once: the window's unique key lets one write the entry; the other counts."""
    from django.contrib.auth.models import Group

    from access.models import Dataset

    Group.objects.get_or_create(name="model-owner")
    owner = make_user("olga", "model-owner")
    dataset = Dataset.objects.create(name="customers", owner=owner, level="confidential",
                                     effective_level="confidential")
    for i in range(5):
        prober = make_user(f"prober{i}")
        errors = race(*[lambda p=prober: check(fresh(p), "read_data", dataset) for _ in range(4)])
        assert errors == []
        assert DenialWindow.objects.get(principal=f"user:{prober.pk}").count == 4
        assert PendingEntry.objects.filter(event_type="access.check_denied",
                                           payload_json__contains=f'"user:{prober.pk}"').count() == 1
