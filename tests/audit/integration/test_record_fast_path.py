"""record()'s one-pass path for a single plain event agrees with the general path (record_many).

``record()`` without an idempotency key or a data subject validates, serialises and inserts in one
pass (``_record_plain``) instead of going through ``Event`` → ``record_many`` → ``_append``. These
tests hold it to the general path: the same rows, the same errors, the same hooks.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit import ledger
from audit.canonical import format_timestamp
from audit.context import request_id_bound
from audit.event_types import EventType
from audit.ledger import Actor, Event, Subject
from audit.models import PendingEntry
from tests.audit.integration.helpers import ALICE

pytestmark = pytest.mark.django_db

_COLUMNS = ("timestamp", "event_type", "actor_type", "actor_id", "subject_type", "subject_id", "payload_json",
            "idempotency_key", "request_id")

# JSON-ish values, with what canonicalisation must refuse or treat specially: NaN and infinities,
# integers past 2**53, floats whose repr is not their ECMAScript form, non-ASCII and non-string keys,
# lone surrogates, tuples, sets and other non-JSON objects.
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e16, 1e-7, 5.0, -0.0, 0.1, 2**53 + 0.5]),
    st.text(max_size=8), st.sampled_from(["\ud800", "caf\u00e9", "\x00\x1f", "\u2028", "\U0001f600"]),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.tuples(inner), st.dictionaries(st.text(max_size=4), inner, max_size=3),
        st.dictionaries(st.sampled_from([1, None, "\u00e9", "Z", "a"]), inner, max_size=2),
    ),
    max_leaves=8,
)
_texts = st.one_of(st.sampled_from(["41", "model_version", "fraud-detector/7", "", "x" * 301, "a\nb"]),
                   st.text(max_size=6))
_payloads = st.one_of(
    st.fixed_dictionaries({"text": _scalars}, optional={"reference": _scalars, "extra": _json}),
    st.fixed_dictionaries({"value": _json}, optional={"count": _json, "extra": _json}),
    st.dictionaries(st.text(max_size=5), _json, max_size=3),
    st.sampled_from([None, {}, [], "x", 0, [("text", "a")], {1: "a"}, {"text": "a", "extra": {1, 2}}]),
)
_timestamps = st.one_of(
    st.none(),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))])),
    st.datetimes(max_value=datetime(9999, 1, 1)),  # naive: refused
)
_events = st.builds(
    dict,
    event_type=st.sampled_from(["ledger.note_added", "test.measured", "no.such_type", "ledger.note_added"]),
    actor=st.builds(Actor, st.sampled_from(["user", "service", "system", "robot"]), _texts),
    subject=st.builds(Subject, _texts, _texts),
    payload=_payloads,
    timestamp=_timestamps,
    request_id=st.one_of(st.none(), st.sampled_from(["req-1", "a" * 65, "bad id", "r:1.2_3-4"])),
)


def _outcome(write: Callable[[], Any]) -> tuple[Any, ...]:
    """What one write leaves: its row (all columns but the id) or its error, then rolled back."""
    try:
        with transaction.atomic():
            recorded = write()
            row = PendingEntry.objects.filter(pk=recorded.pending_id).values_list(*_COLUMNS).get()
            assert (recorded.seq, recorded.created) == (None, True)
            transaction.set_rollback(True)
        return ("row", row)
    except Exception as exc:  # the error itself is the outcome compared
        return ("error", type(exc), str(exc))


def _general(e: dict[str, Any]) -> Any:
    event = Event(e["event_type"], e["actor"], e["subject"], e["payload"] or {}, None, e["timestamp"], None,
                  e["request_id"])
    return ledger.record_many([event])[0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(e=_events, bound=st.sampled_from([None, "bound-req"]))
def test_fast_path_writes_what_the_general_path_writes(measured_type: EventType, e: dict[str, Any],
                                                         bound: str | None) -> None:
    # Pin the time: the general path takes it once per batch, the fast path once per event.
    now = datetime(2026, 12, 7, 21, 0, 0, 123456, tzinfo=UTC)
    e = {**e, "timestamp": e["timestamp"] or now}
    with request_id_bound(bound):
        fast = _outcome(lambda: ledger.record(**e))
        general = _outcome(lambda: _general(e))

    assert fast == general


def test_fast_path_takes_the_time_of_recording() -> None:
    before = format_timestamp(datetime.now(UTC))
    with transaction.atomic():
        r = ledger.record(event_type="ledger.note_added", actor=ALICE, subject=Subject("model_version", "m/1"),
                          payload={"text": "t"})
    after = format_timestamp(datetime.now(UTC))
    assert before <= PendingEntry.objects.get(pk=r.pending_id).timestamp <= after


def test_plain_events_take_the_fast_path_and_personal_ones_do_not() -> None:
    with transaction.atomic():
        plain = ledger._record_plain("ledger.note_added", ALICE, Subject("model_version", "m/1"), {"text": "t"},
                                     None, None)
        personal = next(t for t in ledger.registry._types.values() if t.pii_fields)
        skipped = ledger._record_plain(personal.name, ALICE, Subject("user", "41"), {}, None, None)
    assert plain is not None and plain.created
    assert skipped is None


def test_a_refused_event_writes_nothing(measured_type: EventType) -> None:
    with transaction.atomic(), pytest.raises(ledger.LedgerError, match="canonical JSON"):
        ledger.record(event_type="test.measured", actor=ALICE, subject=Subject("model_version", "m/1"),
                      payload={"value": math.nan})
    assert PendingEntry.objects.count() == 0


def test_fast_path_canonicalises_nested_payloads(measured_type: EventType) -> None:
    with transaction.atomic():
        r = ledger.record(event_type="test.measured", actor=ALICE, subject=Subject("model_version", "m/1"),
                          payload={"value": 1.5, "extra": {"b": [1, "\u00e9"], "a": None}})
    assert PendingEntry.objects.get(pk=r.pending_id).payload_json == '{"extra":{"a":null,"b":[1,"\u00e9"]},"value":1.5}'


def test_captured_queries_see_the_insert() -> None:
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        ledger.record(event_type="ledger.note_added", actor=ALICE, subject=Subject("model_version", "m/1"),
                      payload={"text": "t"})
    assert any("audit_pendingentry" in q["sql"] for q in captured.captured_queries)


def test_a_broken_transaction_is_refused_as_by_a_django_cursor(on_postgres: None) -> None:
    with transaction.atomic():
        # The failure leaves an atomic block: Django marks the transaction as needing a rollback.
        with pytest.raises(IntegrityError), transaction.atomic(savepoint=False), connection.cursor() as cursor:
            cursor.execute("INSERT INTO audit_pendingentry (id, timestamp, event_type, actor_type, actor_id, "
                           "subject_type, subject_id, payload_json) VALUES (NULL, '', '', '', '', '', '', '')")
        with pytest.raises(TransactionManagementError):
            ledger.record(event_type="ledger.note_added", actor=ALICE, subject=Subject("model_version", "m/1"),
                          payload={"text": "t"})
        transaction.set_rollback(True)


def test_a_failed_insert_rolls_back_to_the_callers_savepoint(on_postgres: None,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # An error in the kept cursor's INSERT is translated like a Django cursor's and leaves the caller's
    # outer transaction usable once its inner atomic block has rolled back.
    monkeypatch.setattr(ledger, "_PENDING_INSERT", ledger._PENDING_INSERT.replace("RETURNING id", "RETURNING nope"))
    with transaction.atomic():
        with pytest.raises(Exception, match="nope"), transaction.atomic():
            ledger.record(event_type="ledger.note_added", actor=ALICE, subject=Subject("model_version", "m/1"),
                          payload={"text": "t"})
        monkeypatch.undo()
        r = ledger.record(event_type="ledger.note_added", actor=ALICE, subject=Subject("model_version", "m/2"),
                          payload={"text": "t"})
    assert list(PendingEntry.objects.values_list("pk", "subject_id")) == [(r.pending_id, "m/2")]


@pytest.mark.parametrize("value", [
    datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC),
    datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC),
    datetime(5, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    datetime(2026, 3, 1, 12, 30, 5, 1, tzinfo=timezone(timedelta(hours=-3))),
])
def test_format_timestamp_agrees_with_the_careful_conversion(value: datetime) -> None:
    careful = value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    assert format_timestamp(value) == careful
