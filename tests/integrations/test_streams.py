"""The outbound streams' write path (integrations/streams.py): in order, at least once, one deliverer at a time."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from audit.ledger import Actor, Subject, integrate, record
from audit.models import Entry
from integrations.models import StreamCursor
from integrations.streams import stream_cursor, stream_deliver, stream_rewind

pytestmark = pytest.mark.django_db


def _notes(n: int) -> list[int]:
    with transaction.atomic():
        for i in range(n):
            record(event_type="ledger.note_added", actor=Actor.system("test"), subject=Subject("registered_model", "m"),
                   payload={"text": f"note {i}", "reference": f"T-{i}"})
    integrate()
    return list(Entry.objects.order_by("seq").values_list("seq", flat=True))


class Receiver:
    def __init__(self, take: int | None = None, fail: Exception | None = None) -> None:
        self.got: list[int] = []
        self.take = take
        self.fail = fail

    def __call__(self, batch: Sequence[Entry]) -> int:
        if self.fail is not None:
            raise self.fail
        taken = batch if self.take is None else batch[: self.take]
        self.got.extend(e.seq for e in taken)
        return len(taken)


def test_entries_arrive_in_order_in_batches_and_the_cursor_follows() -> None:
    seqs = _notes(7)
    receiver = Receiver()
    first = stream_deliver(name="s", deliver=receiver, batch_size=3)
    assert (first.count, first.seq, first.claimed) == (3, seqs[2], True)
    while stream_deliver(name="s", deliver=receiver, batch_size=3).count:
        pass
    assert receiver.got == seqs
    cursor = stream_cursor("s")
    assert (cursor.seq, cursor.delivered_total, cursor.lease_token) == (seqs[-1], 7, "")


def test_a_receiver_taking_part_of_a_batch_gets_the_rest_next_time() -> None:
    seqs = _notes(4)
    partial = Receiver(take=1)
    assert stream_deliver(name="s", deliver=partial).count == 1
    rest = Receiver()
    stream_deliver(name="s", deliver=rest)
    assert partial.got + rest.got == seqs


def test_a_failed_delivery_advances_nothing_and_keeps_the_reason() -> None:
    seqs = _notes(2)
    with pytest.raises(ConnectionError):
        stream_deliver(name="s", deliver=Receiver(fail=ConnectionError("receiver down")))
    cursor = stream_cursor("s")
    assert cursor.seq == -1 and "receiver down" in cursor.last_error and cursor.lease_token == ""
    again = Receiver()
    stream_deliver(name="s", deliver=again)
    assert again.got == seqs and stream_cursor("s").last_error == ""


def test_a_second_worker_does_not_deliver_while_the_lease_runs() -> None:
    _notes(2)
    StreamCursor.objects.create(name="s", lease_token="other", leased_until=timezone.now() + timedelta(minutes=1))
    receiver = Receiver()
    result = stream_deliver(name="s", deliver=receiver)
    assert not result.claimed and receiver.got == []


def test_a_worker_that_lost_its_lease_advances_nothing_and_the_batch_is_delivered_again() -> None:
    seqs = _notes(3)

    def stalls_past_its_lease(batch: Sequence[Entry]) -> int:
        # Another worker took the stream over meanwhile (the lease expired): this one's advance must not count.
        StreamCursor.objects.filter(name="s").update(lease_token="someone-else")
        return len(batch)

    assert stream_deliver(name="s", deliver=stalls_past_its_lease).count == 0
    assert stream_cursor("s").seq == -1
    StreamCursor.objects.filter(name="s").update(lease_token="", leased_until=None)
    receiver = Receiver()
    stream_deliver(name="s", deliver=receiver)
    assert receiver.got == seqs


def test_rewind_replays_from_the_seq_asked() -> None:
    seqs = _notes(5)
    stream_deliver(name="s", deliver=Receiver())
    stream_rewind(name="s", to_seq=seqs[1])
    replay = Receiver()
    stream_deliver(name="s", deliver=replay)
    assert replay.got == seqs[2:]
    with pytest.raises(ValueError, match="seq -1"):
        stream_rewind(name="s", to_seq=-2)
