"""Request ids in ledger entries: hashed when present, absent (byte-identical old bodies) when not."""
from __future__ import annotations

import json

import pytest
import rfc8785

from audit import ledger
from audit.canonical import leaf_hash
from audit.context import request_id_bound
from audit.ledger import Event, LedgerError, Subject
from audit.models import Entry, PendingEntry
from audit.verification import verify_ledger
from tests.audit.integration.helpers import ALICE, note, tamper

pytestmark = pytest.mark.django_db

RID = "req-0123456789abcdef"


def _body(entry: Entry) -> dict[str, object]:
    return json.loads(entry.canonical_body())  # type: ignore[no-any-return]


def test_an_entry_written_while_a_request_id_is_bound_carries_it_in_its_hashed_body() -> None:
    # given / when
    with request_id_bound(RID):
        note("inside a request")
    note("outside any request")
    ledger.integrate()

    # then
    inside, outside = Entry.objects.order_by("seq")
    assert inside.request_id == RID and outside.request_id is None
    assert _body(inside)["request_id"] == RID
    assert "request_id" not in _body(outside)
    for entry in (inside, outside):
        # the fast assembly is exactly RFC 8785 of the body, request_id sorted between prev_hash and seq
        assert entry.canonical_body() == rfc8785.dumps(_body(entry))
        assert entry.entry_hash == leaf_hash(entry.canonical_body()).hex()
    assert f'"prev_hash":"{inside.prev_hash}","request_id":"{RID}","seq":0,' in inside.canonical_body().decode()
    assert verify_ledger().ok


def test_record_many_and_an_explicit_request_id() -> None:
    # given
    events = [Event("ledger.note_added", ALICE, Subject("model_version", "m/1"), {"text": str(i)}) for i in range(3)]
    explicit = Event("ledger.note_added", ALICE, Subject("model_version", "m/1"), {"text": "x"},
                     request_id="celery-task:42")

    # when
    with request_id_bound(RID):
        ledger.record_many([*events, explicit])
    ledger.integrate()

    # then: the bound id by default, the explicit one overrides it
    assert list(Entry.objects.order_by("seq").values_list("request_id", flat=True)) == [RID, RID, RID,
                                                                                          "celery-task:42"]
    assert verify_ledger().ok


def test_a_retry_from_another_request_returns_the_first_event() -> None:
    # given
    with request_id_bound("first-request-1"):
        first = note("retried", key="evt-1")
    # when
    with request_id_bound("second-request-2"):
        again = note("retried", key="evt-1")
    # then
    assert again == ledger.Recorded(pending_id=first.pending_id, seq=None, created=False)
    assert PendingEntry.objects.get().request_id == "first-request-1"


@pytest.mark.parametrize("bad", ["", "x" * 65, "has space", "semi;colon", "new\nline", "ünï", 'quote"'])
def test_a_malformed_request_id_is_refused_before_anything_is_written(bad: str) -> None:
    with pytest.raises(LedgerError, match="request id"):
        ledger.record(event_type="ledger.note_added", actor=ALICE, subject=Subject("model_version", "m/1"),
                      payload={"text": "x"}, request_id=bad)
    assert not PendingEntry.objects.exists()


@pytest.mark.parametrize("bad", ["", "x" * 65, "has space", "semi;colon", "new\nline", "ünï", 'quote"'])
def test_a_malformed_bound_request_id_is_replaced_by_a_fresh_one(bad: str) -> None:
    # A task binding a bad id must not make every ledger write in it fail.
    with request_id_bound(bad):
        note("bound")
    stored = PendingEntry.objects.get().request_id
    assert stored != bad and stored is not None and len(stored) == 32


@pytest.mark.parametrize("good", ["a", "x" * 64, "0f8fad5b-d9cb-469f-a165-70867728950e", "A.b_c:d-e"])
def test_well_formed_request_ids_are_accepted(good: str) -> None:
    ledger.record(event_type="ledger.note_added", actor=ALICE, subject=Subject("model_version", "m/1"),
                  payload={"text": "x"}, request_id=good)
    ledger.integrate()
    assert Entry.objects.get().request_id == good
    assert verify_ledger().ok


@pytest.mark.parametrize(
    ("seq", "value"),
    [(1, "another-request"), (1, None), (2, "added-later")],
    ids=["changed", "removed", "added"],
)
def test_changing_a_stored_request_id_is_detected(seq: int, value: str | None) -> None:
    # given: entries 0 and 1 written in a request, entry 2 outside one
    with request_id_bound(RID):
        note("a")
        note("b")
    note("c")
    ledger.integrate()
    assert verify_ledger().ok

    # when
    tamper("UPDATE audit_entry SET request_id = %s WHERE seq = %s", [value, seq])

    # then
    result = verify_ledger()
    assert (result.ok, result.reason, result.first_bad_seq) == (False, "changed_entry", seq)
