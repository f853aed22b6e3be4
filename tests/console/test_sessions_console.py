"""Console sessions: idle timeout, absolute lifetime, each end recorded once, a new id when roles change.

The session's clocks are set the way the code under test reads them (``_signed_in_at``, the last-seen
``_idle_refreshed_at``), in the server-side store: the browser holds only the session's key and cannot
set them (tests/api/test_step_up_api.py shows a forged cookie changes nothing).
"""
from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from access import roles
from access.services import sessions
from access.tasks import expire_sessions
from audit.ledger import integrate
from audit.models import Entry
from tests.console.helpers import client_for, messages_of
from tests.factories import UserFactory
from web.idle_session import SIGNED_IN_AT, stamp_login

pytestmark = pytest.mark.django_db

IDLE = 900
LIFETIME = 43200


def expired_entries() -> list[Entry]:
    integrate()
    return list(Entry.objects.filter(event_type="auth.session_expired").order_by("seq"))


def age(client: Client, *, signed_in_ago: int = 0, seen_ago: int = 0) -> str:
    """Set the clocks of ``client``'s session; returns its key."""
    store = client.session
    now = int(time.time())
    store[SIGNED_IN_AT] = now - signed_in_ago
    store[sessions.LAST_SEEN] = now - seen_ago
    store.save()
    return store.session_key


def test_the_defaults_are_15_minutes_idle_and_12_hours_in_all(settings: Any) -> None:
    assert (settings.CONSOLE_IDLE_TIMEOUT_SECONDS, settings.CONSOLE_SESSION_MAX_AGE_SECONDS) == (IDLE, LIFETIME)


def test_an_idle_session_ends_is_recorded_once_and_the_person_is_told_why(people: Any) -> None:
    # given: signed in an hour ago, nothing for 15 minutes
    client = client_for(people.approver)
    key = age(client, signed_in_ago=3600, seen_ago=IDLE)

    # when
    response = client.get(reverse("console-approvals"))

    # then: to the sign-in page, back here afterwards, with the reason
    assert response.status_code == 302
    assert response["Location"] == reverse("console-login") + "?next=%2Fconsole%2Fapprovals%2F"
    page = client.get(response["Location"])
    assert "You were signed out after 15 minutes without activity" in " ".join(messages_of(page))
    [entry] = expired_entries()
    assert (entry.subject_type, entry.subject_id) == ("user", str(people.approver.pk))
    assert (entry.actor_type, entry.actor_id) == ("system", "sessions")
    assert entry.payload["reason"] == "idle" and entry.payload["method"] == "password"
    assert not Session.objects.filter(pk=key).exists()
    # The same cookie again (a second tab, a replay): nobody signed in, nothing recorded twice.
    client.cookies["sessionid"] = key
    assert client.get(reverse("console-approvals")).status_code == 302
    assert len(expired_entries()) == 1


def test_a_busy_session_ends_at_its_lifetime(people: Any) -> None:
    client = client_for(people.approver)
    age(client, signed_in_ago=LIFETIME, seen_ago=5)
    response = client.get(reverse("console-approvals"))
    assert response.status_code == 302
    assert "maximum length of 12 hours" in " ".join(messages_of(client.get(response["Location"])))
    [entry] = expired_entries()
    assert entry.payload["reason"] == "lifetime"


def test_a_session_within_both_limits_goes_on(people: Any) -> None:
    client = client_for(people.approver)
    age(client, signed_in_ago=LIFETIME - 60, seen_ago=IDLE - 60)
    assert client.get(reverse("console-approvals")).status_code == 200
    assert expired_entries() == []


def test_an_api_request_on_an_ended_session_is_unauthenticated_and_recorded(people: Any) -> None:
    client = client_for(people.approver)
    age(client, seen_ago=IDLE + 1)
    assert client.get("/api/v1/whoami").status_code in (401, 403)
    assert [e.payload["reason"] for e in expired_entries()] == ["idle"]


def test_the_entry_holds_no_personal_data_and_not_the_session_key(people: Any) -> None:
    person = UserFactory(username="zq.personal.7f3a", email="zq.personal@example.org", first_name="Zebulon")
    client = client_for(person)
    key = age(client, signed_in_ago=60, seen_ago=IDLE)
    client.get(reverse("console-approvals"))
    [entry] = expired_entries()
    text = json.dumps(entry.payload) + entry.subject_id + (entry.idempotency_key or "")
    for secret in ("zq.personal", "example.org", "Zebulon", key):
        assert secret not in text
    assert set(entry.payload) == {"reason", "signed_in_at", "last_seen_at", "method"}


def test_a_step_up_does_not_extend_the_lifetime(people: Any, rf: Any) -> None:
    """A re-authentication of the same person keeps the session's data (Django's login does), and with it
    the first sign-in's time; a new sign-in after a flush starts a new lifetime."""
    request = rf.get("/")
    request.session = SessionStore()
    long_ago = int(time.time()) - 3 * 3600
    request.session[SIGNED_IN_AT] = long_ago
    stamp_login(sender=User, request=request, user=people.approver)
    assert request.session[SIGNED_IN_AT] == long_ago
    request.session.flush()
    stamp_login(sender=User, request=request, user=people.approver)
    assert abs(request.session[SIGNED_IN_AT] - time.time()) < 5


# --- the sweep --------------------------------------------------------------------------------------------


def _stored(user: User | None, *, signed_in_ago: int, seen_ago: int) -> str:
    store = SessionStore()
    if user is not None:
        store["_auth_user_id"] = str(user.pk)
    now = int(time.time())
    store[SIGNED_IN_AT] = now - signed_in_ago
    store[sessions.LAST_SEEN] = now - seen_ago
    store.create()
    return store.session_key


def test_the_sweep_ends_each_ended_session_once_and_leaves_the_others(people: Any) -> None:
    idle = _stored(people.approver, signed_in_ago=3600, seen_ago=IDLE + 30)
    old = _stored(people.infosec, signed_in_ago=LIFETIME + 1, seen_ago=1)
    fresh = _stored(people.auditor, signed_in_ago=60, seen_ago=10)
    anonymous = _stored(None, signed_in_ago=LIFETIME * 2, seen_ago=LIFETIME * 2)

    assert expire_sessions() == 2
    assert expire_sessions() == 0  # idempotent
    entries = {(e.subject_id, e.payload["reason"]) for e in expired_entries()}
    assert entries == {(str(people.approver.pk), "idle"), (str(people.infosec.pk), "lifetime")}
    assert len(expired_entries()) == 2
    remaining = set(Session.objects.values_list("pk", flat=True))
    assert fresh in remaining and anonymous in remaining and idle not in remaining and old not in remaining


def test_a_session_past_the_rows_own_expiry_is_still_swept(people: Any) -> None:
    """Django no longer loads a row past its expire_date; the sweep still finds, records and deletes it."""
    from datetime import timedelta

    from django.utils import timezone

    key = _stored(people.approver, signed_in_ago=7200, seen_ago=7000)
    Session.objects.filter(pk=key).update(expire_date=timezone.now() - timedelta(minutes=5))
    assert expire_sessions() == 1
    assert not Session.objects.filter(pk=key).exists()


def test_the_request_and_the_sweep_racing_record_one_entry(people: Any) -> None:
    key = _stored(people.approver, signed_in_ago=60, seen_ago=IDLE + 1)
    why = sessions.Ended(sessions.IDLE, None, None)
    assert sessions.session_expire(session_key=key, user_id=people.approver.pk, why=why) is True
    assert sessions.session_expire(session_key=key, user_id=people.approver.pk, why=why) is False
    assert sessions.sessions_expire_sweep() == 0
    assert len(expired_entries()) == 1


def test_the_sweep_is_on_the_beat_schedule(settings: Any) -> None:
    from config.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["access-sessions-expire"]
    assert entry["task"] == "access.tasks.expire_sessions" and entry["task"] in app.tasks
    assert entry["schedule"].total_seconds() <= 60


# --- privilege changes ------------------------------------------------------------------------------------


def test_a_role_change_rotates_the_session_id_and_takes_effect_at_once(people: Any) -> None:
    client = client_for(people.auditor)
    assert client.get(reverse("console-ledger")).status_code == 200
    before = client.cookies["sessionid"].value

    # A role removed while signed in (ORM: the role services are not what is tested here).
    people.auditor.groups.remove(Group.objects.get(name=roles.AUDITOR))
    response = client.get(reverse("console-ledger"))

    assert response.status_code == 403  # read from the database at this very request
    after = client.cookies["sessionid"].value
    assert after != before
    assert not Session.objects.filter(pk=before).exists()  # the old id is worth nothing now
    # ... the person is still signed in under the new id, and nothing was recorded as an expiry
    assert client.get(reverse("console-approvals")).status_code == 200
    assert expired_entries() == []


def test_no_role_change_keeps_the_session_id(people: Any) -> None:
    client = client_for(people.auditor)
    client.get(reverse("console-ledger"))
    before = client.cookies["sessionid"].value
    client.get(reverse("console-ledger"))
    assert client.cookies["sessionid"].value == before
