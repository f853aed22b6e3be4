"""Legal holds page: InfoSec places and releases holds (recorded); auditors read; everyone else is refused."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.ledger import integrate
from audit.models import Entry, LegalHold, PendingEntry
from audit.services.retention import legal_hold_create, legal_hold_release
from tests.console.helpers import client_for
from tests.personas import People

pytestmark = pytest.mark.django_db
HOLDS = reverse("console-legal-holds")
NEW = reverse("console-legal-hold-new")
OTHERS = ["owner", "approver", "steward", "outsider"]


def release_url(hold: LegalHold) -> str:
    return reverse("console-legal-hold-release", args=[hold.pk])


def _state() -> tuple[list[tuple[int, Any]], int, int]:
    return (list(LegalHold.objects.order_by("pk").values_list("pk", "released_at")),
            PendingEntry.objects.count(), Entry.objects.count())


@contextmanager
def nothing_written() -> Iterator[None]:
    before = _state()
    yield
    assert _state() == before


def _messages(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def _hold(people: People, subject: str = "user:900042", reason: str = "litigation LIT-7") -> LegalHold:
    return legal_hold_create(actor=people.infosec, data_subject=subject, reason=reason)


# --- who may --------------------------------------------------------------------------------------------------


def test_anonymous_is_sent_to_login() -> None:
    response = client_for(None).get(HOLDS)
    assert response.status_code == 302 and response["Location"].startswith("/console/login/")


@pytest.mark.parametrize("who", OTHERS)
def test_others_get_the_403_page_on_the_list_and_the_actions(people: People, who: str) -> None:
    hold = _hold(people)
    client = client_for(getattr(people, who))
    page = client.get(HOLDS)
    assert page.status_code == 403 and "not permitted" in page.content.decode()
    assert "user:900042" not in page.content.decode()
    with nothing_written():
        response = client.post(NEW, {"data_subject": "user:900043", "reason": "r"})
        assert response.status_code == 403 and "not permitted" in response.content.decode()
        assert client.post(release_url(hold), {"reason": "r"}).status_code == 403


def test_auditor_sees_the_holds_but_no_forms(people: People) -> None:
    hold = _hold(people)
    response = client_for(people.auditor).get(HOLDS)
    html = response.content.decode()
    assert response.status_code == 200
    assert "user:900042" in html and "litigation LIT-7" in html and "ines" in html
    assert NEW not in html and release_url(hold) not in html and "Place a legal hold" not in html


def test_auditor_posts_are_refused_with_a_message_and_nothing_written(people: People) -> None:
    hold = _hold(people)
    client = client_for(people.auditor)
    with nothing_written():
        placed = client.post(NEW, {"data_subject": "user:900043", "reason": "r"}, follow=True)
        released = client.post(release_url(hold), {"reason": "r"}, follow=True)
    assert placed.redirect_chain == [(HOLDS, 302)] and released.redirect_chain == [(HOLDS, 302)]
    assert _messages(placed) == ["only InfoSec may create a legal hold"]
    assert _messages(released) == ["only InfoSec may release a legal hold"]


# --- InfoSec places and releases --------------------------------------------------------------------------


def test_infosec_places_and_releases_a_hold(people: People) -> None:
    client = client_for(people.infosec)
    page = client.get(HOLDS).content.decode()
    assert "Place a legal hold" in page and f'action="{NEW}"' in page
    # when: placed from the page
    response = client.post(NEW, {"data_subject": " user:900042 ", "reason": "litigation LIT-7",
                                 "reference": "LIT-7", "next": HOLDS + "?show=active"}, follow=True)
    # then
    assert response.redirect_chain == [(HOLDS + "?show=active", 302)]
    hold = LegalHold.objects.get()
    assert (hold.data_subject, hold.reason, hold.reference, hold.created_by) == (
        "user:900042", "litigation LIT-7", "LIT-7", people.infosec)
    assert hold.active and any("Legal hold placed on user:900042" in m for m in _messages(response))
    html = response.content.decode()
    assert "LIT-7" in html and release_url(hold) in html
    # when: released
    response = client.post(release_url(hold), {"reason": "case closed", "next": HOLDS}, follow=True)
    # then
    hold.refresh_from_db()
    assert not hold.active and hold.released_by == people.infosec and hold.release_reason == "case closed"
    assert _messages(response) == [f"Legal hold #{hold.pk} on user:900042 is released."]
    html = response.content.decode()
    assert "case closed" in html and release_url(hold) not in html
    integrate()
    created = Entry.objects.get(event_type="privacy.legal_hold_created")
    released = Entry.objects.get(event_type="privacy.legal_hold_released")
    assert created.actor_id == released.actor_id == str(people.infosec.pk)
    assert created.payload == {"hold_id": hold.pk, "data_subject": "user:900042", "reason": "litigation LIT-7",
                               "reference": "LIT-7"}
    assert released.payload == {"hold_id": hold.pk, "data_subject": "user:900042", "reason": "case closed"}


def test_redirect_never_leaves_the_console(people: People) -> None:
    response = client_for(people.infosec).post(NEW, {"data_subject": "user:900042", "reason": "r",
                                                   "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == HOLDS


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"data_subject": "900042", "reason": "r"}, "data_subject must look like '<type>:<id>'"),
        ({"data_subject": "", "reason": "r"}, "data_subject must be a non-empty string"),
        ({"data_subject": "user:900042", "reason": "   "}, "a reason is required"),
        ({"data_subject": "user:900042"}, "a reason is required"),
        ({"data_subject": "user:900042", "reason": "x" * 2001}, "the reason is longer than 2000 characters"),
        ({"data_subject": "user:900042", "reason": "r", "reference": "x" * 201},
         "the reference is longer than 200 characters"),
    ],
)
def test_bad_hold_input_is_refused_with_a_message(people: People, data: dict[str, str], message: str) -> None:
    with nothing_written():
        response = client_for(people.infosec).post(NEW, data, follow=True)
    assert response.redirect_chain == [(HOLDS, 302)]
    [shown] = _messages(response)
    assert shown.startswith(message)


def test_a_second_active_hold_on_a_subject_is_refused(people: People) -> None:
    _hold(people)
    with nothing_written():
        response = client_for(people.infosec).post(NEW, {"data_subject": "user:900042", "reason": "again"},
                                                 follow=True)
    assert _messages(response) == ["user:900042 is already under an active legal hold"]


def test_releasing_twice_is_refused_with_a_message(people: People) -> None:
    hold = legal_hold_release(actor=people.infosec, hold=_hold(people), reason="first")
    client = client_for(people.infosec)
    with nothing_written():
        response = client.post(release_url(hold), {"reason": "second"}, follow=True)
    assert _messages(response) == [f"legal hold #{hold.pk} was already released"]
    hold.refresh_from_db()
    assert hold.release_reason == "first"


def test_release_needs_a_reason(people: People) -> None:
    hold = _hold(people)
    with nothing_written():
        response = client_for(people.infosec).post(release_url(hold), {"reason": " "}, follow=True)
    assert _messages(response) == ["a reason is required"]


def test_releasing_a_missing_hold_is_a_404(people: People) -> None:
    assert client_for(people.infosec).post(reverse("console-legal-hold-release", args=[999]),
                                         {"reason": "r"}).status_code == 404


# --- method and CSRF ------------------------------------------------------------------------------------------


def test_the_action_urls_accept_only_post(people: People) -> None:
    hold = _hold(people)
    client = client_for(people.infosec)
    with nothing_written():
        assert client.get(NEW).status_code == 405
        assert client.get(release_url(hold)).status_code == 405


def test_csrf_is_enforced_on_the_actions(people: People) -> None:
    hold = _hold(people)
    client = client_for(people.infosec, csrf=True)
    with nothing_written():
        assert client.post(NEW, {"data_subject": "user:900043", "reason": "r"}).status_code == 403
        assert client.post(release_url(hold), {"reason": "r"}).status_code == 403


def test_the_forms_carry_a_working_csrf_token(people: People) -> None:
    # given: a browser-like client that gets the page (and its CSRF cookie) first
    client = client_for(people.infosec, csrf=True)
    client.get(HOLDS)
    token = client.cookies["csrftoken"].value
    # when
    placed = client.post(NEW, {"data_subject": "user:900043", "reason": "r", "csrfmiddlewaretoken": token})
    hold = LegalHold.objects.get()
    released = client.post(release_url(hold), {"reason": "done", "csrfmiddlewaretoken": token})
    # then
    assert placed.status_code == released.status_code == 302
    hold.refresh_from_db()
    assert not hold.active


# --- the list ---------------------------------------------------------------------------------------------


def test_active_holds_come_first_and_the_filter_works(people: People) -> None:
    # given: an older active hold, a newer released one and a newer active one
    old_active = _hold(people, "user:900101", "oldest")
    released = legal_hold_release(actor=people.infosec, hold=_hold(people, "user:900102", "middle"), reason="over")
    new_active = _hold(people, "user:900103", "newest")
    client = client_for(people.auditor)

    def listed(show: str) -> list[int]:
        return [h.pk for h in client.get(HOLDS, {"show": show}).context["page"].object_list]

    assert listed("all") == [new_active.pk, old_active.pk, released.pk]
    assert listed("active") == [new_active.pk, old_active.pk]
    assert listed("released") == [released.pk]
    assert listed("nonsense") == listed("all")
    assert client.get(HOLDS, {"show": "released"}).context["show"] == "released"


def _make_holds(people: People, start: int, n: int) -> None:
    other = User.objects.create_user(username=f"ivan{start}", password="pw")
    other.groups.set(people.infosec.groups.all())
    for i in range(start, start + n):
        hold = legal_hold_create(actor=other if i % 2 else people.infosec, data_subject=f"user:{900200 + i}",
                                 reason=f"reason {i}", reference=f"REF-{i}")
        if i % 3 == 0:
            legal_hold_release(actor=people.infosec if i % 2 else other, hold=hold, reason=f"released {i}")


def test_the_list_is_paginated_and_its_query_count_does_not_grow(people: People) -> None:
    client = client_for(people.infosec)
    client.get(HOLDS)  # the session and the viewer's roles, as on any later page

    def count() -> tuple[int, Any]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(HOLDS)
        assert response.status_code == 200
        return len(queries), response

    _make_holds(people, 0, 2)
    small, _ = count()
    _make_holds(people, 2, 40)
    large, response = count()
    assert large == small and large <= 8
    assert len(response.context["page"].object_list) == 25
    html = response.content.decode()
    assert "Page 1 of 2" in html and "42 in all" in html and 'rel="next"' in html
    second = client.get(HOLDS, {"show": "all", "page": 2}).content.decode()
    assert "Page 2 of 2" in second and "?show=all&amp;page=1" in second
