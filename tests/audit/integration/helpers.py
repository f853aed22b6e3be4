"""Helpers shared by the integration tests."""
from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connection, transaction

from audit import ledger, triggers
from audit.canonical import node_hash
from audit.ledger import Actor, Recorded, Subject
from audit.models import Entry

ALICE = Actor("user", "41")
SYSTEM = Actor.system("tests")


def note(
    text: str = "hello",
    *,
    subject: str = "fraud-detector/1",
    subject_type: str = "model_version",
    key: str | None = None,
    actor: Actor = ALICE,
    **extra: Any,
) -> Recorded:
    """Record one ``ledger.note_added`` event (in its own transaction when the caller has none)."""
    with transaction.atomic():
        return ledger.record(
            event_type="ledger.note_added",
            actor=actor,
            subject=Subject(subject_type, subject),
            payload={"text": text, **extra},
            idempotency_key=key,
        )


def fill(n: int, *, subjects: int = 3, prefix: str = "note") -> None:
    """Record ``n`` notes spread over a few subjects and integrate them."""
    for i in range(n):
        note(f"{prefix} {i}", subject=f"model/{i % subjects}")
    ledger.integrate()


def tamper(sql: str, params: Sequence[Any] = ()) -> int:
    """Run raw SQL with the append-only triggers off, as a database owner could."""
    with triggers.disabled(connection), connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.rowcount


def raw(sql: str, params: Sequence[Any] = ()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.rowcount


def reference_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 MTH by the textbook recursion, independent of audit.merkle."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


def leaves(size: int | None = None) -> list[bytes]:
    qs = Entry.objects.order_by("seq").values_list("entry_hash", flat=True)
    if size is not None:
        qs = qs[:size]
    return [bytes.fromhex(h) for h in qs]


def wait_for_lock_wait(pid: int, timeout: float = 10.0) -> None:
    """Block until the PostgreSQL backend ``pid`` is waiting on a lock."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
            row = cursor.fetchone()
            if row and row[0] == "Lock":
                return
            time.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited on a lock")


def race(*calls: Callable[[], object]) -> list[BaseException]:
    """Run the calls at once, each on its own connection; return what they raised."""
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        try:
            barrier.wait()
            call()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
