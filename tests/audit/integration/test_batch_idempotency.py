"""Idempotency keys of a batch are looked up with one query per table, whatever the batch size."""
from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from audit import ledger
from audit.ledger import Event, IdempotencyConflict, LedgerError, Subject
from audit.models import Entry, PendingEntry
from tests.audit.integration.helpers import ALICE

pytestmark = pytest.mark.django_db


def batch(keys: range, text: str = "runtime event") -> list[Event]:
    return [Event("ledger.note_added", ALICE, Subject("model_version", f"m/{k % 7}"), {"text": f"{text} {k}"},
                  idempotency_key=f"evt-{k}") for k in keys]


def queries(events: list[Event]) -> tuple[int, list[ledger.Recorded]]:
    """The number of reads (SELECTs) a batch costs, and its outcome.

    Writes are one COPY on PostgreSQL; on SQLite Django splits a bulk INSERT by the
    backend's parameter limit, which is not the lookup this is about.
    """
    with CaptureQueriesContext(connection) as ctx, transaction.atomic():
        out = ledger.record_many(events)
    statements = [q["sql"].lstrip().upper() for q in ctx.captured_queries]
    if connection.vendor == "postgresql":
        return len(statements), out
    return sum(s.startswith("SELECT") for s in statements), out


def test_a_keyed_batch_of_1000_costs_a_constant_number_of_queries() -> None:
    # when: a fresh batch, then the same batch again (a client's retry), then a batch of 10
    fresh_count, fresh = queries(batch(range(1000)))
    replay_count, replay = queries(batch(range(1000)))
    small_count, _ = queries(batch(range(5000, 5010)))

    # then: the same statements for 1,000 events as for 10 (no per-event query)
    assert fresh_count == small_count <= 10, fresh_count
    assert replay_count <= 5, replay_count  # two lookups, nothing written
    assert all(r.created for r in fresh) and not any(r.created for r in replay)
    assert [r.pending_id for r in replay] == [r.pending_id for r in fresh]
    assert PendingEntry.objects.count() == 1010


def test_a_batch_mixing_queued_integrated_and_new_keys() -> None:
    # given: keys 0-9 integrated, 10-19 still queued
    ledger.record_many(batch(range(10)))
    ledger.integrate()
    queued = ledger.record_many(batch(range(10, 20)))

    # when: a batch re-sending both and adding 20-29, with a bounded number of queries
    count, out = queries(batch(range(30)))

    # then
    assert count <= 10
    assert [r.created for r in out] == [False] * 20 + [True] * 10
    assert [r.seq for r in out[:10]] == list(range(10))
    assert [r.pending_id for r in out[10:20]] == [r.pending_id for r in queued]
    ledger.integrate()
    assert Entry.objects.count() == 30


def test_a_reused_key_for_another_event_refuses_the_whole_batch() -> None:
    ledger.record_many(batch(range(3)))
    ledger.integrate()
    ledger.record_many(batch(range(3, 6)))
    for changed in (1, 4):  # integrated, queued
        events = batch(range(10, 13)) + batch(range(changed, changed + 1), text="something else")
        with pytest.raises(IdempotencyConflict, match=f"evt-{changed}"), transaction.atomic():
            ledger.record_many(events)
    assert PendingEntry.objects.count() == 3 and Entry.objects.count() == 3


def test_a_key_twice_in_one_batch_is_refused() -> None:
    with pytest.raises(LedgerError, match="appears twice"):
        ledger.record_many(batch(range(3)) + batch(range(1, 2)))
    assert not PendingEntry.objects.exists()


def test_batches_larger_than_one_in_list_are_looked_up_in_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger, "KEY_CHUNK", 7)
    first = ledger.record_many(batch(range(20)))
    ledger.integrate()
    ledger.record_many(batch(range(20, 30)))
    again = ledger.record_many(batch(range(40)))
    assert [r.created for r in again] == [False] * 30 + [True] * 10
    assert [r.seq for r in again[:20]] == [r.seq for r in ledger.record_many(batch(range(20)))]
    assert all(r.created for r in first)
    with pytest.raises(IdempotencyConflict):
        ledger.record_many(batch(range(25, 26), text="changed"))


def test_an_empty_batch_writes_nothing_and_schedules_nothing() -> None:
    with CaptureQueriesContext(connection) as ctx:
        assert ledger.record_many([]) == []
    assert ctx.captured_queries == []
    assert not connection.run_on_commit
