"""Real commits: on-commit integration, and (PostgreSQL) racing writers and erasures of one data subject."""
from __future__ import annotations

import base64
import os
import threading

import pytest
from django.db import transaction

from access.roles import INFOSEC
from audit import ledger, pii
from audit.models import DataSubjectKey, Entry, PiiValue
from audit.verification import verify_ledger
from tests.audit.integration.helpers import wait_for_lock_wait
from tests.audit.integration.test_concurrency import Worker, backend_pid
from tests.audit.pii.helpers import SYSTEM, register_event
from tests.factories import UserFactory


def test_committed_personal_data_is_integrated_on_commit(
    committing_db: None, settings: object, infosec: object
) -> None:
    settings.LEDGER_INTEGRATE_ON_COMMIT = True  # type: ignore[attr-defined]
    with transaction.atomic():
        register_event("900042")
    assert Entry.objects.count() == 1  # integrated right after the commit
    assert pii.reveal(actor=infosec, seq=0, reason="r")["username"]  # type: ignore[arg-type]
    assert verify_ledger().ok


@pytest.mark.usefixtures("on_postgres", "committing_db")
def test_first_writers_of_one_data_subject_share_one_key() -> None:
    # given: writer A created user:42's key and has not committed; writer B records for user:42 too
    created, release = threading.Event(), threading.Event()

    def writer_a() -> None:
        with transaction.atomic():
            register_event("900042", username="a7f3a")
            created.set()
            assert release.wait(10)

    a = Worker(writer_a)
    a.start()
    assert created.wait(10)
    b_pid: list[int] = []

    def writer_b() -> None:
        b_pid.append(backend_pid())
        with transaction.atomic():
            register_event("900042", username="b7f3a")

    b = Worker(writer_b)
    b.start()
    while not b_pid:
        pass
    wait_for_lock_wait(b_pid[0])  # B waits on A's uncommitted key row
    release.set()
    a.finish()
    b.finish()

    # then: one key, both events sealed under it, both revealable
    assert DataSubjectKey.objects.count() == 1
    assert PiiValue.objects.filter(subject_key__data_subject="user:900042").count() == 6
    ledger.integrate()
    officer = UserFactory(roles=[INFOSEC])
    seqs = list(Entry.objects.order_by("seq").values_list("seq", flat=True))
    names = sorted(pii.reveal(actor=officer, seq=seq, reason="r")["username"] for seq in seqs)
    assert names == ["a7f3a", "b7f3a"]


@pytest.mark.usefixtures("on_postgres", "committing_db")
def test_an_erasure_waits_for_a_writer_of_the_same_subject() -> None:
    register_event("900042")
    recorded, release = threading.Event(), threading.Event()

    def writer() -> None:
        with transaction.atomic():
            register_event("900042", username="late7f3a")
            recorded.set()
            assert release.wait(10)

    w = Worker(writer)
    w.start()
    assert recorded.wait(10)
    pid: list[int] = []

    def erase() -> int:
        pid.append(backend_pid())
        return pii.data_subject_erase(actor=SYSTEM, data_subject="user:900042", reason="r")

    e = Worker(erase)
    e.start()
    while not pid:
        pass
    wait_for_lock_wait(pid[0])
    release.set()
    w.finish()

    # then: the erasure saw the writer's values too
    assert e.finish() == 6
    assert not PiiValue.objects.exclude(ciphertext=None).exists()


@pytest.mark.usefixtures("on_postgres", "committing_db")
def test_a_kek_rotation_waits_for_a_writer_of_a_subject_and_both_land(
    settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a subject's key wrapped with the old KEK, then the new KEK current with the old as previous
    old, new = base64.b64encode(os.urandom(32)).decode(), base64.b64encode(os.urandom(32)).decode()
    monkeypatch.delenv("LEDGER_PII_KEK", raising=False)
    monkeypatch.delenv("LEDGER_PII_KEK_PREVIOUS", raising=False)
    settings.LEDGER_PII_KEK = old  # type: ignore[attr-defined]
    register_event("900042")
    settings.LEDGER_PII_KEK, settings.LEDGER_PII_KEK_PREVIOUS = new, old  # type: ignore[attr-defined]
    # and: a writer recording for that subject holds its key row, uncommitted
    recorded, release = threading.Event(), threading.Event()

    def writer() -> None:
        with transaction.atomic():
            register_event("900042", username="late7f3a")
            recorded.set()
            assert release.wait(10)

    w = Worker(writer)
    w.start()
    assert recorded.wait(10)
    pid: list[int] = []

    def rotate() -> int:
        pid.append(backend_pid())
        return pii.pii_kek_rotate(actor=SYSTEM)

    # when: the rotation reaches the same key row
    r = Worker(rotate)
    r.start()
    while not pid:
        pass
    wait_for_lock_wait(pid[0])  # it waits for the writer instead of re-wrapping under it
    release.set()
    w.finish()

    # then: the key is re-wrapped once, and both events reveal with the old KEK gone
    assert r.finish() == 1
    settings.LEDGER_PII_KEK_PREVIOUS = None  # type: ignore[attr-defined]
    ledger.integrate()
    officer = UserFactory(roles=[INFOSEC])
    names = sorted(pii.reveal(actor=officer, seq=seq, reason="r")["username"]
                   for seq in Entry.objects.filter(event_type="auth.user_registered").values_list("seq", flat=True))
    assert len(names) == 2 and "late7f3a" in names
    assert verify_ledger().ok
