"""record() keeps personal values out of the hashed body: references, commitments, encrypted values."""
from __future__ import annotations

import logging

import pytest
import rfc8785
from cryptography.exceptions import InvalidTag
from django.db import connection, transaction

from audit import ledger, pii
from audit.event_types import EventType, Field, registry
from audit.ledger import Event, IdempotencyConflict, LedgerError, Subject
from audit.models import DataSubjectKey, Entry, PendingEntry, PiiValue
from audit.verification import verify_ledger
from tests.audit.integration.helpers import note
from tests.audit.pii.helpers import (
    EMAIL,
    NAME,
    PLANTED,
    SYSTEM,
    USERNAME,
    all_rows_text,
    independent_commitment,
    independent_decrypt,
    register_event,
)

pytestmark = pytest.mark.django_db


def test_personal_values_are_replaced_by_references_in_the_body() -> None:
    # when
    register_event("900042")
    ledger.integrate()

    # then: the body holds reference objects, never the values
    entry = Entry.objects.get()
    payload = entry.payload
    assert set(payload) == {"username", "email", "full_name"}
    for field in payload:
        assert set(payload[field]) == {"pii", "commitment"}
        assert len(payload[field]["pii"]) == 32 and len(payload[field]["commitment"]) == 64
    assert len({payload[f]["pii"] for f in payload}) == 3
    body = entry.canonical_body()
    assert body == rfc8785.dumps(entry.body())
    for value in PLANTED:
        assert value.encode() not in body
    # and: one encrypted value per field under data subject user:42
    assert DataSubjectKey.objects.get().data_subject == "user:900042"
    assert PiiValue.objects.count() == 3
    assert verify_ledger().ok


def test_commitment_verifies_for_the_value_and_not_for_another() -> None:
    # given
    register_event("900042")
    ledger.integrate()
    payload = Entry.objects.get().payload
    key = pii.subject_key("user:900042")
    assert key is not None and len(key) == 32

    # then: recomputed from docs/pii.md with the subject's key
    for field, value in (("username", USERNAME), ("email", EMAIL), ("full_name", NAME)):
        ref, commitment = payload[field]["pii"], payload[field]["commitment"]
        assert independent_commitment(key, ref, value) == commitment
        assert independent_commitment(key, ref, value + " ") != commitment
        assert independent_commitment(key, ref, "someone else") != commitment
        assert pii.commitment(key, ref, value) == commitment
    # and: the commitment is bound to its ref (no swapping values between entries)
    assert independent_commitment(key, payload["email"]["pii"], USERNAME) != payload["username"]["commitment"]


def test_ciphertexts_decrypt_with_the_subject_key_and_the_bound_ref_only() -> None:
    register_event("900042")
    ledger.integrate()
    payload = Entry.objects.get().payload
    key = pii.subject_key("user:900042")
    assert key is not None
    value = PiiValue.objects.get(ref=payload["email"]["pii"])

    assert independent_decrypt(key, value.ref, "user:900042", bytes(value.nonce), bytes(value.ciphertext)) == EMAIL
    with pytest.raises(InvalidTag):  # another ref or another data subject: the associated data differs
        independent_decrypt(key, payload["username"]["pii"], "user:900042", bytes(value.nonce), bytes(value.ciphertext))
    with pytest.raises(InvalidTag):
        independent_decrypt(key, value.ref, "user:43", bytes(value.nonce), bytes(value.ciphertext))


def test_the_key_is_stored_wrapped_never_in_clear() -> None:
    register_event("900042")
    row = DataSubjectKey.objects.get()
    key = pii.subject_key("user:900042")
    assert key is not None
    assert key not in bytes(row.key) and len(bytes(row.key)) == 12 + 32 + 16
    assert row.kek_id == pii.kek_id(pii._kek())


def test_one_key_per_data_subject() -> None:
    register_event("900042", username="a1")
    register_event("900042", username="a2")
    register_event("43", username="b1")
    assert sorted(DataSubjectKey.objects.values_list("data_subject", flat=True)) == ["user:43", "user:900042"]
    assert PiiValue.objects.filter(subject_key__data_subject="user:900042").count() == 6


def test_plaintext_is_nowhere_in_the_database() -> None:
    # given: the events recorded and integrated (pending rows, entries, values)
    register_event("900042")
    ledger.integrate()
    register_event("900042", username="second7f3a")

    # then: a raw scan of every table of the database
    text = all_rows_text()
    for value in PLANTED:
        assert value not in text
    with connection.cursor() as cursor:
        cursor.execute("SELECT payload_json FROM audit_entry UNION ALL SELECT payload_json FROM audit_pendingentry")
        stored = " ".join(r[0] for r in cursor.fetchall())
    assert "second7f3a" not in stored and USERNAME not in stored
    assert stored.count('"pii":') == 6


def test_nothing_personal_is_logged_even_with_sql_logging(caplog: pytest.LogCaptureFixture, infosec: object) -> None:
    # given: every logger at DEBUG, and every SQL statement logged with its parameters
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    connection.force_debug_cursor = True
    try:
        # when: record, integrate, reveal, erase
        register_event("900042")
        ledger.integrate()
        revealed = pii.reveal(actor=infosec, seq=0, reason="ticket SEC-1")  # type: ignore[arg-type]
        pii.data_subject_erase(actor=SYSTEM, data_subject="user:900042", reason="GDPR request 17")
        ledger.integrate()
    finally:
        connection.force_debug_cursor = False

    # then: the values were revealed, yet not one log line carries them
    assert revealed["full_name"] == NAME
    assert "INSERT INTO" in caplog.text and "audit_piivalue" in caplog.text  # the SQL really was logged
    for value in PLANTED:
        assert value not in caplog.text
        for record in caplog.records:
            assert value not in repr(record.args)


def test_record_many_seals_each_event_with_its_own_subject() -> None:
    # when: a batch mixing personal and ordinary events, for two data subjects
    ledger.record_many([
        Event("auth.user_registered", SYSTEM, Subject("user", "1"), {"username": "one7f3a"}),
        Event("ledger.note_added", SYSTEM, Subject("m", "1"), {"text": "plain"}),
        Event("auth.user_registered", SYSTEM, Subject("user", "2"), {"username": "two7f3a", "email": EMAIL}),
    ])
    assert ledger.integrate() == 3

    # then
    entries = list(Entry.objects.order_by("seq"))
    assert entries[1].payload == {"text": "plain"}
    assert pii.is_reference(entries[0].payload["username"]) and pii.is_reference(entries[2].payload["email"])
    refs = dict(PiiValue.objects.values_list("ref", "subject_key__data_subject"))
    assert refs[entries[0].payload["username"]["pii"]] == "user:1"
    assert refs[entries[2].payload["email"]["pii"]] == "user:2"
    assert len(refs) == 3
    for value in ("one7f3a", "two7f3a", EMAIL):
        assert value not in all_rows_text()
    assert verify_ledger().ok


def test_record_many_refuses_the_whole_batch_when_one_event_lacks_a_data_subject(contacted_type: EventType) -> None:
    with pytest.raises(LedgerError, match="data_subject"):
        ledger.record_many([
            Event("auth.user_registered", SYSTEM, Subject("user", "1"), {"username": "one7f3a"}),
            Event("test.contacted", SYSTEM, Subject("model", "m"), {"model": "m", "contact": EMAIL}),
        ])
    assert PendingEntry.objects.count() == PiiValue.objects.count() == DataSubjectKey.objects.count() == 0


def test_an_event_with_personal_data_needs_a_data_subject(contacted_type: EventType) -> None:
    # when: the subject is not a person, and no data subject is named
    with pytest.raises(LedgerError, match="pass data_subject") as exc:
        ledger.record(event_type="test.contacted", actor=SYSTEM, subject=Subject("registered_model", "m"),
                      payload={"model": "m", "contact": EMAIL})

    # then: refused, nothing written, and the message does not repeat the value
    assert EMAIL not in str(exc.value) and "contact" in str(exc.value)
    assert PendingEntry.objects.count() == PiiValue.objects.count() == DataSubjectKey.objects.count() == 0


def test_a_named_data_subject_is_used(contacted_type: EventType) -> None:
    ledger.record(event_type="test.contacted", actor=SYSTEM, subject=Subject("registered_model", "m"),
                  payload={"model": "m", "contact": EMAIL, "note": "ordinary"}, data_subject="user:7")
    ledger.integrate()
    payload = Entry.objects.get().payload
    assert payload["model"] == "m" and payload["note"] == "ordinary" and pii.is_reference(payload["contact"])
    assert PiiValue.objects.get().subject_key.data_subject == "user:7"


@pytest.mark.parametrize("bad", ["", "user", ":42", "user:", "user:\n42", "x" * 301])
def test_a_malformed_data_subject_is_refused(bad: str) -> None:
    with pytest.raises(LedgerError, match="data_subject"):
        register_event("900042", data_subject=bad)
    assert PendingEntry.objects.count() == DataSubjectKey.objects.count() == 0


def test_a_null_or_absent_personal_field_needs_no_data_subject(monkeypatch: pytest.MonkeyPatch) -> None:
    # given: an event type whose only personal field is optional and nullable
    optional = EventType("test.optional", "test", {"who": Field(required=False, nullable=True, pii=True)})
    monkeypatch.setitem(registry._types, optional.name, optional)

    # when: it is null or absent, about a subject that is not a person
    ledger.record(event_type="test.optional", actor=SYSTEM, subject=Subject("m", "1"), payload={"who": None})
    ledger.record(event_type="test.optional", actor=SYSTEM, subject=Subject("m", "1"), payload={})

    # then: nothing to seal
    assert PendingEntry.objects.count() == 2 and DataSubjectKey.objects.count() == 0


def test_a_service_that_fails_after_recording_leaves_no_personal_rows() -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        register_event("900042")
        assert PiiValue.objects.count() == 3
        raise Boom

    assert PendingEntry.objects.count() == PiiValue.objects.count() == DataSubjectKey.objects.count() == 0


def test_a_refused_batch_takes_back_a_key_it_created() -> None:
    # given: a batch whose second event reuses the first one's idempotency key (refused after sealing)
    with pytest.raises(LedgerError, match="twice"):
        ledger.record_many([
            Event("auth.user_registered", SYSTEM, Subject("user", "1"), {"username": "a7f3a"}, "K"),
            Event("auth.user_registered", SYSTEM, Subject("user", "1"), {"username": "a7f3a"}, "K"),
        ])
    # then: the caller's transaction goes on, without the key the batch had created
    assert DataSubjectKey.objects.count() == PiiValue.objects.count() == PendingEntry.objects.count() == 0


def test_idempotent_repeat_returns_the_first_event_and_writes_nothing() -> None:
    first = register_event("900042", key="register:42")
    again = register_event("900042", key="register:42")
    assert again.created is False and again.pending_id == first.pending_id
    ledger.integrate()
    after = register_event("900042", key="register:42")
    assert after.created is False and after.seq == 0
    assert PiiValue.objects.count() == 3 and Entry.objects.count() == 1
    with pytest.raises(IdempotencyConflict):
        register_event("900042", key="register:42", email="other7f3a@example.org")
    assert PiiValue.objects.count() == 3


def test_the_sequencer_never_sees_plaintext() -> None:
    # given: the queue row as the sequencer will read it
    register_event("900042")
    pending = PendingEntry.objects.get()
    for value in PLANTED:
        assert value not in pending.payload_json

    # when: integrate() as it always was
    assert ledger.integrate() == 1

    # then: the entry's payload is the queue row's, byte for byte
    entry = Entry.objects.get()
    assert entry.payload_json == pending.payload_json
    assert verify_ledger().ok


def test_personal_data_of_an_erased_subject_cannot_be_recorded_again() -> None:
    register_event("900042")
    pii.data_subject_erase(actor=SYSTEM, data_subject="user:900042", reason="GDPR request")
    pending_before = PendingEntry.objects.count()

    with pytest.raises(pii.DataSubjectErased, match="erased"):
        register_event("900042", username="again7f3a")
    assert PendingEntry.objects.count() == pending_before
    assert PiiValue.objects.filter(subject_key__data_subject="user:900042").exclude(ciphertext=None).count() == 0


def test_events_without_personal_fields_are_untouched() -> None:
    note("no personal data here")
    ledger.integrate()
    assert Entry.objects.get().payload == {"text": "no personal data here"}
    assert DataSubjectKey.objects.count() == PiiValue.objects.count() == 0
