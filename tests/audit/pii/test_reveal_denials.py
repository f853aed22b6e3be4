"""Refused reveals go through the per-interval denial counter: polling a reveal cannot flood the ledger.

The attack: a reader without InfoSec calls reveal in a loop (on one entry, or walking the
ledger entry by entry); each refusal used to write an ``access.check_denied`` entry. Now the
first refusal of an interval writes one, the repeats only count, and the interval closes with
one ``access.check_denials_summarised`` carrying the count.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from access.models import DenialWindow
from access.roles import AUDITOR
from access.services.checks import check_denials_summarise
from audit import ledger, pii
from audit.models import Entry, PendingEntry
from tests.audit.pii.helpers import register_event
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

HOUR = 3600


@pytest.fixture(autouse=True)
def _an_hour(settings: object) -> None:
    settings.ACCESS_DENIAL_INTERVAL = HOUR  # type: ignore[attr-defined]


def _denials() -> list[Entry]:
    ledger.integrate()
    return list(Entry.objects.filter(event_type__startswith="access.check_den").order_by("seq"))


@pytest.mark.parametrize("walk", [False, True], ids=["same-entry", "entry-by-entry"])
def test_fifty_refused_reveals_write_one_entry_and_a_count(walk: bool) -> None:
    # given: 50 entries with personal data and a reader who is an auditor, not InfoSec
    for n in range(50):
        register_event(str(900000 + n))
    ledger.integrate()
    reader = UserFactory(roles=[AUDITOR])

    # when: 50 refused reveals
    for n in range(50):
        with pytest.raises(pii.PiiAccessDenied):
            pii.reveal(actor=reader, seq=n if walk else 0, reason="curious")

    # then: one access.check_denied, naming the first entry tried, and nothing else written
    [denied] = _denials()
    assert denied.event_type == "access.check_denied"
    assert denied.payload == {"principal": f"user:{reader.pk}", "resource": "ledger_entry:0",
                              "permission": "reveal_personal_data", "level": None}
    assert not Entry.objects.filter(event_type="privacy.pii_revealed").exists()
    window = DenialWindow.objects.get()
    assert (window.principal, window.count, window.resource) == (f"user:{reader.pk}", 50, "ledger:personal_data")

    # and: when the interval closes, one summary with the count
    assert check_denials_summarise(now=timezone.now() + timedelta(seconds=HOUR + 1)) == 1
    denials = _denials()
    summary = denials[-1]
    assert summary.event_type == "access.check_denials_summarised"
    assert summary.payload["count"] == 50
    assert summary.payload["resource"] == "ledger:personal_data"
    assert summary.payload["principal"] == f"user:{reader.pk}"
    assert (summary.subject_type, summary.subject_id) == ("ledger", "personal_data")
    assert PendingEntry.objects.count() == 0 and not DenialWindow.objects.exists()


def test_two_readers_are_counted_apart() -> None:
    register_event("900001")
    ledger.integrate()
    a, b = UserFactory(), UserFactory()
    for reader in (a, b, a, b, a):
        with pytest.raises(pii.PiiAccessDenied):
            pii.reveal(actor=reader, seq=0, reason="curious")
    assert [d.payload["principal"] for d in _denials()] == [f"user:{a.pk}", f"user:{b.pk}"]
    assert dict(DenialWindow.objects.values_list("principal", "count")) == {f"user:{a.pk}": 3, f"user:{b.pk}": 2}
