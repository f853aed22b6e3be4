"""Two ends of one session at the same moment (a request and the sweep, two tabs) record one entry.

PostgreSQL, real commits (``committing_db``): the second end waits on the first's row lock, then finds the
session's row gone and records nothing.
"""
from __future__ import annotations

import threading
import time

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import transaction

from access.services import sessions
from audit.ledger import integrate
from audit.models import Entry
from tests.audit.integration.helpers import wait_for_lock_wait
from tests.audit.integration.test_concurrency import Worker, backend_pid
from tests.factories import UserFactory

pytestmark = pytest.mark.usefixtures("on_postgres", "committing_db")


def test_two_ends_of_one_session_at_the_same_moment_record_one_entry() -> None:
    # given: a signed-in session idle for longer than the timeout
    person = UserFactory(username="tab-ines")
    store = SessionStore()
    store["_auth_user_id"] = str(person.pk)
    store[sessions.SIGNED_IN_AT] = store[sessions.LAST_SEEN] = int(time.time()) - 3600
    store.create()
    key = store.session_key
    why = sessions.ended(store)
    assert why is not None and why.reason == sessions.IDLE
    ended_once, release = threading.Event(), threading.Event()

    def first() -> bool:
        with transaction.atomic():
            done = sessions.session_expire(session_key=key, user_id=person.pk, why=why)
            ended_once.set()
            assert release.wait(10)
        return done

    pid: list[int] = []

    def second() -> bool:
        pid.append(backend_pid())
        return sessions.session_expire(session_key=key, user_id=person.pk, why=why)

    # when: the second starts while the first holds the row
    a = Worker(first)
    a.start()
    assert ended_once.wait(10)
    b = Worker(second)
    b.start()
    while not pid:
        time.sleep(0.01)
    try:
        wait_for_lock_wait(pid[0])
    finally:
        release.set()

    # then
    assert (a.finish(), b.finish()) == (True, False)
    integrate()
    assert Entry.objects.filter(event_type="auth.session_expired").count() == 1
