"""record(), record_many() and the sequencer: chaining, hashing, validation, idempotency."""
from __future__ import annotations

import dataclasses
import itertools
import json
from datetime import UTC, datetime
from typing import Any

import pytest
import rfc8785

from audit import ledger
from audit.canonical import ZERO_HASH, leaf_hash
from audit.event_types import InvalidPayload, UnknownEventType
from audit.ledger import Actor, Event, IdempotencyConflict, LedgerError, Recorded, Subject
from audit.models import Entry, LedgerHead, MerkleNode, PendingEntry, SubjectHead
from audit.selectors import tree_root
from tests.audit.integration.helpers import ALICE, note, reference_root

pytestmark = pytest.mark.django_db

BODY_KEYS = {"seq", "timestamp", "event_type", "actor", "subject", "payload", "prev_hash", "subject_prev"}


def _nothing_written() -> None:
    assert PendingEntry.objects.count() == 0
    assert Entry.objects.count() == 0


# --- writing and sequencing ---------------------------------------------------------------


def test_record_writes_one_pending_row_and_no_entry() -> None:
    when = datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC)

    result = ledger.record(
        event_type="ledger.note_added",
        actor=ALICE,
        subject=Subject("model_version", "fraud-detector/7"),
        payload={"text": "looks fine", "reference": "TICKET-1"},
        timestamp=when,
    )

    assert result.created is True and result.seq is None
    row = PendingEntry.objects.get()
    assert row.pk == result.pending_id
    assert (row.event_type, row.actor_type, row.actor_id) == ("ledger.note_added", "user", "41")
    assert (row.subject_type, row.subject_id) == ("model_version", "fraud-detector/7")
    assert row.timestamp == "2026-03-01T12:30:05.123456Z"
    assert row.payload_json == '{"reference":"TICKET-1","text":"looks fine"}'
    assert Entry.objects.count() == 0


def test_integrate_sequences_chains_and_links_subjects() -> None:
    # given: five events on two subjects
    subjects = ["a", "b", "a", "a", "b"]
    for i, s in enumerate(subjects):
        note(f"n{i}", subject=s)

    # when
    integrated = ledger.integrate()

    # then
    assert integrated == 5
    entries = list(Entry.objects.order_by("seq"))
    assert [e.seq for e in entries] == [0, 1, 2, 3, 4]
    assert entries[0].prev_hash == ZERO_HASH == "0" * 64
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.entry_hash
    assert [e.subject_prev for e in entries] == [None, None, 0, 2, 1]
    assert [e.payload["text"] for e in entries] == ["n0", "n1", "n2", "n3", "n4"]
    assert PendingEntry.objects.count() == 0
    head = LedgerHead.objects.get(pk=1)
    assert (head.tree_size, head.last_hash) == (5, entries[-1].entry_hash)
    assert dict(SubjectHead.objects.values_list("subject_id", "last_seq")) == {"a": 3, "b": 4}


def test_entry_hash_is_the_leaf_hash_of_the_canonical_body() -> None:
    note("caf\u00e9 \u2603 \"quoted\" \\ tab\t", subject="m\u00fcnchen/1", reference="x")
    note("second", subject="m\u00fcnchen/1")
    ledger.integrate()

    for entry in Entry.objects.order_by("seq"):
        body = entry.canonical_body()
        assert entry.entry_hash == leaf_hash(body).hex()
        parsed = json.loads(body)
        assert set(parsed) == BODY_KEYS
        assert entry.body() == parsed
        # The fast assembly is exactly RFC 8785 of the same object.
        assert rfc8785.dumps(parsed) == body
        assert parsed["seq"] == entry.seq
        assert parsed["actor"] == {"type": "user", "id": "41"}
        assert parsed["subject"] == {"type": "model_version", "id": "m\u00fcnchen/1"}
        assert parsed["prev_hash"] == entry.prev_hash
        assert parsed["subject_prev"] == entry.subject_prev
        assert parsed["timestamp"] == entry.timestamp


def test_integration_in_small_batches_builds_the_same_tree() -> None:
    # given: 23 pending events
    for i in range(23):
        note(f"n{i}", subject=f"s{i % 4}")

    # when: the sequencer takes them five at a time
    assert ledger.integrate(limit=5) == 23

    # then: one contiguous chain, and stored nodes give the textbook root at every size
    hashes = [bytes.fromhex(h) for h in Entry.objects.values_list("entry_hash", flat=True)]
    assert len(hashes) == 23
    for size in range(24):
        assert tree_root(size) == reference_root(hashes[:size])
    assert MerkleNode.objects.count() == 23 + 11 + 5 + 2 + 1  # leaves + perfect subtrees of 2/4/8/16


def test_integrate_with_nothing_pending_changes_nothing() -> None:
    note("x")
    ledger.integrate()
    head_before = LedgerHead.objects.values_list("tree_size", "last_hash").get(pk=1)

    assert ledger.integrate() == 0

    assert LedgerHead.objects.values_list("tree_size", "last_hash").get(pk=1) == head_before
    assert Entry.objects.count() == 1


# --- refusals -------------------------------------------------------------------------


def test_unknown_event_type_is_refused_and_nothing_written() -> None:
    with pytest.raises(UnknownEventType):
        ledger.record(event_type="model.teleported", actor=ALICE, subject=Subject("model", "m"), payload={})
    _nothing_written()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "'text' is required"),
        ({"text": 5}, "'text' must be of type str"),
        ({"text": None}, "'text' must not be null"),
        ({"text": "ok", "colour": "red"}, "unknown field(s): 'colour'"),
    ],
    ids=["missing", "wrong-type", "null", "unknown-field"],
)
def test_invalid_payload_is_refused_and_nothing_written(payload: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidPayload) as excinfo:
        ledger.record(event_type="ledger.note_added", actor=ALICE, subject=Subject("model", "m"), payload=payload)
    assert message in str(excinfo.value)
    _nothing_written()


def test_bool_is_not_a_number(measured_type: object) -> None:
    with pytest.raises(InvalidPayload, match="'value' must be of type number"):
        ledger.record(event_type="test.measured", actor=ALICE, subject=Subject("m", "1"), payload={"value": True})
    _nothing_written()


@pytest.mark.parametrize(
    "bad",
    [float("nan"), float("inf"), {"nested": [1, float("-inf")]}, 2**60],
    ids=["nan", "inf", "nested-inf", "unsafe-int"],
)
def test_payload_without_canonical_json_is_refused(measured_type: object, bad: object) -> None:
    with pytest.raises(LedgerError, match="canonical JSON"):
        ledger.record(
            event_type="test.measured", actor=ALICE, subject=Subject("m", "1"), payload={"value": 1, "extra": bad}
        )
    _nothing_written()


def test_numbers_are_stored_canonically(measured_type: object) -> None:
    ledger.record(
        event_type="test.measured", actor=ALICE, subject=Subject("m", "1"),
        payload={"value": 1.0, "extra": {"b": 1e21, "a": [0.1, -0.0]}},
    )
    ledger.integrate()
    assert Entry.objects.get().payload_json == '{"extra":{"a":[0.1,0],"b":1e+21},"value":1}'


@pytest.mark.parametrize(
    ("actor", "subject", "message"),
    [
        (Actor("robot", "r2"), Subject("model", "m"), "actor type must be one of"),
        (Actor("user", ""), Subject("model", "m"), "actor id must be a non-empty string"),
        (Actor("user", "x" * 201), Subject("model", "m"), "actor id is longer than 200"),
        (ALICE, Subject("model", ""), "subject id must be a non-empty string"),
        (ALICE, Subject("model", "x" * 301), "subject id is longer than 300"),
        (ALICE, Subject("", "m"), "subject type must be a non-empty string"),
        (ALICE, Subject("model", "line\nbreak"), "control characters"),
    ],
    ids=["actor-type", "empty-actor", "long-actor", "empty-subject", "long-subject", "empty-subject-type", "ctrl"],
)
def test_bad_actor_or_subject_is_refused(actor: Actor, subject: Subject, message: str) -> None:
    with pytest.raises(LedgerError, match=message):
        ledger.record(event_type="ledger.note_added", actor=actor, subject=subject, payload={"text": "x"})
    _nothing_written()


def test_longest_allowed_ids_are_kept_intact() -> None:
    # given: ids exactly at their limits (PostgreSQL enforces the column lengths)
    subject_id, actor_id, key = "s" * 300, "a" * 200, "k" * 200

    ledger.record(
        event_type="ledger.note_added", actor=Actor("service", actor_id), subject=Subject("t" * 100, subject_id),
        payload={"text": "x"}, idempotency_key=key,
    )
    ledger.integrate()

    entry = Entry.objects.get()
    assert (entry.subject_id, entry.actor_id, entry.idempotency_key) == (subject_id, actor_id, key)
    assert entry.entry_hash == leaf_hash(entry.canonical_body()).hex()


def test_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ledger.record(
            event_type="ledger.note_added", actor=ALICE, subject=Subject("m", "1"), payload={"text": "x"},
            timestamp=datetime(2026, 1, 1),
        )
    _nothing_written()


def test_one_bad_event_in_a_batch_writes_nothing() -> None:
    events = [
        Event("ledger.note_added", ALICE, Subject("m", "1"), {"text": "fine"}),
        Event("ledger.note_added", ALICE, Subject("m", "1"), {"text": 1}),
    ]
    with pytest.raises(InvalidPayload):
        ledger.record_many(events)
    _nothing_written()


# --- idempotency ----------------------------------------------------------------------


def test_repeated_key_while_pending_returns_the_same_record() -> None:
    first = note("x", key="k-1")

    again = note("x", key="k-1")

    assert first.created is True
    assert again == dataclasses.replace(first, created=False)
    assert PendingEntry.objects.count() == 1


def test_repeated_key_after_integration_returns_the_entry() -> None:
    note("before")
    first = note("x", key="k-1")
    ledger.integrate()

    again = note("x", key="k-1")

    assert again == Recorded(pending_id=first.pending_id, seq=1, created=False)
    assert PendingEntry.objects.count() == 0
    assert ledger.integrate() == 0
    assert Entry.objects.count() == 2


def test_repeated_key_ignores_actor_and_timestamp() -> None:
    # A retry by another worker at another time is still the same event.
    first = note("x", key="k-1")
    again = ledger.record(
        event_type="ledger.note_added", actor=Actor.service("retrier"),
        subject=Subject("model_version", "fraud-detector/1"), payload={"text": "x"}, idempotency_key="k-1",
        timestamp=datetime(2030, 1, 1, tzinfo=UTC),
    )
    assert again.pending_id == first.pending_id and again.created is False
    assert PendingEntry.objects.count() == 1


@pytest.mark.parametrize("integrated", [False, True], ids=["pending", "integrated"])
@pytest.mark.parametrize(
    "changes",
    [{"text": "different"}, {"subject": "other"}, {"subject_type": "dataset"}],
    ids=["payload", "subject", "subject-type"],
)
def test_same_key_for_a_different_event_is_a_conflict(integrated: bool, changes: dict[str, str]) -> None:
    note("x", key="k-1")
    if integrated:
        ledger.integrate()
    before = (PendingEntry.objects.count(), Entry.objects.count())

    kwargs = {"text": "x", **changes}
    with pytest.raises(IdempotencyConflict):
        note(kwargs.pop("text"), key="k-1", **kwargs)

    assert (PendingEntry.objects.count(), Entry.objects.count()) == before


def test_conflicting_event_with_different_type_is_a_conflict(measured_type: object) -> None:
    note("x", key="k-1")
    with pytest.raises(IdempotencyConflict):
        ledger.record(
            event_type="test.measured", actor=ALICE, subject=Subject("model_version", "fraud-detector/1"),
            payload={"value": 1}, idempotency_key="k-1",
        )
    assert PendingEntry.objects.count() == 1


def test_duplicate_key_inside_one_batch_is_refused() -> None:
    events = [
        Event("ledger.note_added", ALICE, Subject("m", "1"), {"text": "a"}, idempotency_key="dup"),
        Event("ledger.note_added", ALICE, Subject("m", "2"), {"text": "b"}),
        Event("ledger.note_added", ALICE, Subject("m", "1"), {"text": "a"}, idempotency_key="dup"),
    ]
    with pytest.raises(LedgerError, match="appears twice in one batch"):
        ledger.record_many(events)
    _nothing_written()


def test_record_many_mixes_new_and_known_keys_in_order() -> None:
    known = note("a", subject="1", key="a")
    events = [
        Event("ledger.note_added", ALICE, Subject("model_version", "0"), {"text": "new"}, idempotency_key="n"),
        Event("ledger.note_added", ALICE, Subject("model_version", "1"), {"text": "a"}, idempotency_key="a"),
        Event("ledger.note_added", ALICE, Subject("model_version", "2"), {"text": "plain"}),
    ]

    results = ledger.record_many(events)

    assert [r.created for r in results] == [True, False, True]
    assert results[1].pending_id == known.pending_id
    assert PendingEntry.objects.count() == 3
    ledger.integrate()
    assert list(Entry.objects.values_list("subject_id", flat=True)) == ["1", "0", "2"]


def test_copy_of_an_integrated_key_is_dropped_by_the_sequencer() -> None:
    # given: a key already integrated, and a second pending row with that key, as left by a
    # writer that checked for the key just before the first writer's row was integrated
    note("x", key="k-1")
    ledger.integrate()
    PendingEntry.objects.create(
        timestamp="2026-01-01T00:00:00.000000Z", event_type="ledger.note_added", actor_type="user",
        actor_id="41", subject_type="model_version", subject_id="fraud-detector/1",
        payload_json='{"text":"x"}', idempotency_key="k-1",
    )
    note("y")

    # when
    ledger.integrate()

    # then: the copy is gone and the chain has no hole
    assert PendingEntry.objects.count() == 0
    assert list(Entry.objects.values_list("seq", "idempotency_key")) == [(0, "k-1"), (1, None)]
    assert Entry.objects.get(seq=1).prev_hash == Entry.objects.get(seq=0).entry_hash


def test_event_whose_key_was_integrated_meanwhile_is_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    # given: between writer B's key check and its insert, writer A records the same key for
    # another event, commits, and the sequencer integrates it (simulated on one connection)
    real_existing = ledger._existing_many

    def key_check_then_race(rows: dict[str, Any]) -> dict[str, Recorded]:
        found = real_existing(rows)
        monkeypatch.setattr(ledger, "_existing_many", real_existing)
        for key in rows:
            note("A's event", key=key)
        ledger.integrate()
        return found

    monkeypatch.setattr(ledger, "_existing_many", key_check_then_race)

    # when: B records its (different) event under the key
    try:
        result: Recorded | None = note("B's event", key="K")
    except IdempotencyConflict:
        result = None  # an acceptable outcome: B is told
    ledger.integrate()

    # then: either B was refused, or B's event is in the ledger as it was told
    texts = [e.payload["text"] for e in Entry.objects.all()]
    assert result is None or "B's event" in texts, (result, texts)

