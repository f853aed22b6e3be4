"""Many writers, several sequencers and racing idempotency keys on PostgreSQL.

These tests commit for real (``committing_db``) and use one database connection
per thread; each thread closes its connection when it is done.
"""
from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction

from access.roles import AUDITOR, INFOSEC
from access.services.roles import user_role_add
from audit import ledger
from audit.canonical import ZERO_HASH
from audit.ledger import Event, IdempotencyConflict, Recorded, Subject
from audit.models import Checkpoint, Entry, LedgerHead, PendingEntry, SigningKey
from audit.selectors import tree_root
from audit.services.checkpoints import checkpoint_create
from audit.verification import verify_ledger
from tests.audit.integration.helpers import ALICE, leaves, note, reference_root, wait_for_lock_wait
from tests.factories import UserFactory

pytestmark = pytest.mark.usefixtures("on_postgres", "committing_db")

WRITERS = 16
TRANSACTIONS = 50


class Worker(threading.Thread):
    """A thread that runs ``target`` on its own connection, keeping its result or error."""

    def __init__(self, target: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self._target_fn = target
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._target_fn()
        except BaseException as exc:
            self.error = exc
        finally:
            connection.close()

    def finish(self, timeout: float = 30) -> Any:
        self.join(timeout)
        assert not self.is_alive(), "worker thread did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def test_concurrent_writers_and_sequencers_give_one_gapless_chain() -> None:
    started = time.monotonic()
    checkpoint_create()  # register the key up front; seq 0
    writers_done = threading.Event()
    go = threading.Barrier(WRITERS + 3, timeout=20)

    def write(t: int) -> None:
        go.wait()
        for i in range(TRANSACTIONS):
            with transaction.atomic():
                note(f"t{t} n{i}", subject=f"model/{(t + i) % 7}", key=f"w{t}-{i}" if i % 10 == 0 else None)

    def sequence() -> int:
        go.wait()
        total = 0
        while not writers_done.is_set():
            total += ledger.integrate(limit=37)
        return total

    def checkpoint() -> int:
        go.wait()
        made = 0
        while not writers_done.is_set():
            made += checkpoint_create(only_if_grown=True) is not None
            time.sleep(0.02)
        return made

    writers = [Worker(lambda t=t: write(t)) for t in range(WRITERS)]
    sequencers = [Worker(sequence), Worker(sequence)]
    checkpointer = Worker(checkpoint)
    for w in [*writers, *sequencers, checkpointer]:
        w.start()
    for w in writers:
        w.finish()
    writers_done.set()
    integrated = sum(s.finish() for s in sequencers)
    checkpointer.finish()
    ledger.integrate()
    checkpoint_create(only_if_grown=True)

    # then: exactly 0..N-1, every link holds, nothing is left behind
    n = 1 + WRITERS * TRANSACTIONS
    assert integrated > 0  # the sequencers did take part (the checkpointer integrates too)
    rows = list(Entry.objects.order_by("seq").values_list("seq", "prev_hash", "entry_hash", "payload_json"))
    assert [r[0] for r in rows] == list(range(n))
    assert rows[0][1] == ZERO_HASH
    assert all(after[1] == before[2] for before, after in itertools.pairwise(rows))
    assert PendingEntry.objects.count() == 0
    assert LedgerHead.objects.get(pk=1).tree_size == n
    # every event exactly once, and each writer's events in their commit order
    texts = [json.loads(payload)["text"] for *_, payload in rows[1:]]
    assert len(set(texts)) == WRITERS * TRANSACTIONS
    for t in range(WRITERS):
        assert [x for x in texts if x.startswith(f"t{t} ")] == [f"t{t} n{i}" for i in range(TRANSACTIONS)]
    assert tree_root(n) == reference_root(leaves())
    result = verify_ledger()
    assert result.ok, result.detail
    assert result.entries == n and result.checkpoints == Checkpoint.objects.count() >= 2
    assert time.monotonic() - started < 30


def test_racing_writers_of_one_key_make_one_entry() -> None:
    # given: writer A has inserted key K and not committed; writer B records K too
    inserted, release = threading.Event(), threading.Event()
    b_pid: list[int] = []

    def writer_a() -> Recorded:
        with transaction.atomic():
            result = note("same", key="K")
            inserted.set()
            assert release.wait(10)
        return result

    def writer_b() -> Recorded:
        b_pid.append(backend_pid())
        assert inserted.wait(10)
        with transaction.atomic():
            return note("same", key="K")

    a, b = Worker(writer_a), Worker(writer_b)
    a.start()
    b.start()

    # when: B is blocked on A's uncommitted key, then A commits
    assert inserted.wait(10)
    while not b_pid:
        time.sleep(0.01)
    wait_for_lock_wait(b_pid[0])
    release.set()
    first, second = a.finish(), b.finish()

    # then
    assert first.created is True
    assert second == Recorded(pending_id=first.pending_id, seq=None, created=False)
    assert PendingEntry.objects.count() == 1
    ledger.integrate()
    assert Entry.objects.filter(idempotency_key="K").count() == 1


def test_many_threads_racing_one_key_make_one_entry() -> None:
    threads = 8
    for round_ in range(3):
        barrier = threading.Barrier(threads, timeout=20)

        def racer(barrier: threading.Barrier = barrier, key: str = f"K{round_}") -> Recorded:
            with transaction.atomic():
                barrier.wait()
                return note("same", key=key)

        workers = [Worker(racer) for _ in range(threads)]
        for w in workers:
            w.start()
        results = [w.finish() for w in workers]

        assert sum(r.created for r in results) == 1
        assert len({r.pending_id for r in results}) == 1
    ledger.integrate()
    assert sorted(Entry.objects.values_list("idempotency_key", flat=True)) == ["K0", "K1", "K2"]
    assert verify_ledger().ok


def test_racing_writer_with_a_different_event_gets_a_conflict() -> None:
    inserted, release = threading.Event(), threading.Event()
    b_pid: list[int] = []

    def writer_a() -> Recorded:
        with transaction.atomic():
            result = note("first", key="K")
            inserted.set()
            assert release.wait(10)
        return result

    def writer_b() -> Recorded:
        b_pid.append(backend_pid())
        assert inserted.wait(10)
        with transaction.atomic():
            return note("second", key="K")

    a, b = Worker(writer_a), Worker(writer_b)
    a.start()
    b.start()
    assert inserted.wait(10)
    while not b_pid:
        time.sleep(0.01)
    wait_for_lock_wait(b_pid[0])
    release.set()
    a.finish()

    with pytest.raises(IdempotencyConflict):
        b.finish()
    assert list(PendingEntry.objects.values_list("payload_json", flat=True)) == ['{"text":"first"}']


def test_batch_that_loses_a_key_race_to_another_event_writes_nothing() -> None:
    # given: A holds key K uncommitted; B records a batch [plain event, K for another event]
    inserted, release = threading.Event(), threading.Event()
    b_pid: list[int] = []

    def writer_a() -> None:
        with transaction.atomic():
            note("first", key="K")
            inserted.set()
            assert release.wait(10)

    def writer_b() -> str:
        b_pid.append(backend_pid())
        assert inserted.wait(10)
        with transaction.atomic():
            try:
                ledger.record_many(
                    [
                        Event("ledger.note_added", ALICE, Subject("m", "1"), {"text": "plain"}),
                        Event("ledger.note_added", ALICE, Subject("m", "1"), {"text": "other"}, idempotency_key="K"),
                    ]
                )
            except IdempotencyConflict:
                return "conflict"  # a caller that reports the error and carries on
        return "no conflict"

    a, b = Worker(writer_a), Worker(writer_b)
    a.start()
    b.start()
    assert inserted.wait(10)
    while not b_pid:
        time.sleep(0.01)
    wait_for_lock_wait(b_pid[0])
    release.set()
    a.finish()

    # when / then: B was refused, and (as documented) nothing of its batch was written
    assert b.finish() == "conflict"
    assert list(PendingEntry.objects.values_list("payload_json", flat=True)) == ['{"text":"first"}']


def test_concurrent_first_checkpoints_both_succeed() -> None:
    # given: the sequencer's head is locked (as by a long integrate()), and two checkpointers start
    pids: list[int] = []

    def checkpointer() -> Checkpoint | None:
        pids.append(backend_pid())
        return checkpoint_create()

    with transaction.atomic():
        LedgerHead.objects.select_for_update().get(pk=1)
        workers = [Worker(checkpointer), Worker(checkpointer)]
        for w in workers:
            w.start()
        while len(pids) < 2:
            time.sleep(0.01)
        for pid in pids:
            wait_for_lock_wait(pid)
    # when: the head is released, both go on

    # then: both succeed with one checkpoint (the second finds the tree unchanged and does not re-sign it,
    # issue 14 section 3); the key is registered once
    errors: list[BaseException] = []
    signed: list[Checkpoint | None] = []
    for w in workers:
        try:
            signed.append(w.finish())
        except Exception as exc:
            errors.append(exc)
    assert errors == []
    assert SigningKey.objects.count() == 1
    assert Checkpoint.objects.count() == 1
    assert len({c.pk for c in signed if c is not None}) == 1 and None not in signed
    assert verify_ledger().ok


def test_concurrent_adds_of_one_role_record_one_entry() -> None:
    # given: admin A has given the role and not committed yet; admin B gives the same role
    admin_a, admin_b, user = UserFactory(roles=[INFOSEC]), UserFactory(roles=[INFOSEC]), UserFactory()
    added, release = threading.Event(), threading.Event()
    b_pid: list[int] = []

    def add_a() -> bool:
        with transaction.atomic():
            changed = user_role_add(actor=admin_a, target=user, role=AUDITOR, reason="SEC-1")
            added.set()
            assert release.wait(10)
        return changed

    def add_b() -> bool:
        b_pid.append(backend_pid())
        assert added.wait(10)
        return user_role_add(actor=admin_b, target=user, role=AUDITOR, reason="SEC-1")

    a, b = Worker(add_a), Worker(add_b)
    a.start()
    b.start()
    assert added.wait(10)
    while not b_pid:
        time.sleep(0.01)
    wait_for_lock_wait(b_pid[0])  # B waits on A's uncommitted membership row
    release.set()
    results = [a.finish(), b.finish()]

    # then: one membership, one ledger entry, and exactly one of them reported a change
    assert user.groups.count() == 1
    ledger.integrate()
    assert Entry.objects.filter(event_type="auth.role_added").count() == 1
    assert sorted(results) == [False, True]
