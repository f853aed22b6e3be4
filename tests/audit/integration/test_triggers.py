"""The database itself refuses changes to the ledger tables (SQLite and PostgreSQL)."""
from __future__ import annotations

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from audit import ledger, triggers
from audit.models import Checkpoint, Entry, MerkleNode, PendingEntry, SigningKey
from audit.services.checkpoints import checkpoint_create
from tests.audit.integration.helpers import fill, note, raw

pytestmark = pytest.mark.django_db

TABLES = {
    "audit_entry": ("payload_json", "'{\"text\":\"forged\"}'", Entry),
    "audit_merklenode": ("key", "key + 1000000", MerkleNode),
    "audit_checkpoint": ("note", "'forged'", Checkpoint),
    "audit_signingkey": ("name", "'forged'", SigningKey),
}


@pytest.fixture
def ledger_rows() -> None:
    fill(5)
    checkpoint_create()
    for model in (Entry, MerkleNode, Checkpoint, SigningKey):
        assert model.objects.exists()


def _refused(sql: str) -> DatabaseError:
    """Run ``sql`` in a savepoint and return the error the database raised."""
    with pytest.raises(DatabaseError, match="append-only") as excinfo, transaction.atomic():
        raw(sql)
    # SQLite's RAISE(ABORT) and PostgreSQL's restrict_violation are both integrity errors.
    assert isinstance(excinfo.value, IntegrityError)
    return excinfo.value


def _snapshot(model: type) -> list[tuple[object, ...]]:
    return list(model.objects.order_by("pk").values_list())  # type: ignore[attr-defined]


@pytest.mark.parametrize("table", list(TABLES))
def test_update_is_refused(ledger_rows: None, table: str) -> None:
    column, value, model = TABLES[table]
    before = _snapshot(model)

    _refused(f"UPDATE {table} SET {column} = {value}")

    assert _snapshot(model) == before


@pytest.mark.parametrize("table", list(TABLES))
def test_delete_is_refused(ledger_rows: None, table: str) -> None:
    model = TABLES[table][2]
    before = _snapshot(model)

    _refused(f"DELETE FROM {table}")

    assert _snapshot(model) == before


@pytest.mark.parametrize("table", [*TABLES, "audit_pendingentry"])
def test_truncate_is_refused_on_postgres(on_postgres: None, ledger_rows: None, table: str) -> None:
    note("pending")
    _refused(f"TRUNCATE {table} CASCADE")
    assert Entry.objects.count() == 6 and PendingEntry.objects.count() == 1


def test_orm_delete_and_update_are_refused_too(ledger_rows: None) -> None:
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Entry.objects.filter(seq=2).delete()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Entry.objects.filter(seq=2).update(actor_id="someone else")
    assert Entry.objects.get(seq=2).actor_id == "41"


def test_update_of_a_pending_entry_is_refused() -> None:
    note("original")

    _refused("UPDATE audit_pendingentry SET payload_json = '{\"text\":\"forged\"}'")

    assert PendingEntry.objects.get().payload_json == '{"text":"original"}'


def test_delete_of_a_pending_entry_not_yet_integrated_is_refused() -> None:
    note("waiting")

    _refused("DELETE FROM audit_pendingentry")

    assert PendingEntry.objects.count() == 1
    ledger.integrate()
    assert Entry.objects.get().payload == {"text": "waiting"}


def test_the_sequencer_removes_what_it_integrated() -> None:
    for i in range(3):
        note(f"n{i}")

    assert ledger.integrate() == 3

    assert PendingEntry.objects.count() == 0
    assert Entry.objects.count() == 3


def _pending_copy(**fields: object) -> PendingEntry:
    values = {
        "timestamp": "2026-01-01T00:00:00.000000Z", "event_type": "ledger.note_added", "actor_type": "user",
        "actor_id": "41", "subject_type": "model_version", "subject_id": "fraud-detector/1",
        "payload_json": '{"text":"x"}', **fields,
    }
    return PendingEntry.objects.create(**values)


def test_delete_of_a_row_whose_id_was_integrated_is_allowed() -> None:
    # given: a queue row carrying the id of an entry's source row (integrated)
    note("x")
    ledger.integrate()
    entry = Entry.objects.get()
    _pending_copy(id=entry.pending_id)

    # when / then: the guard lets it go
    assert raw("DELETE FROM audit_pendingentry WHERE id = %s", [entry.pending_id]) == 1
    assert PendingEntry.objects.count() == 0


def test_delete_of_a_row_whose_key_was_integrated_is_allowed() -> None:
    note("x", key="k-1")
    ledger.integrate()
    copy = _pending_copy(idempotency_key="k-1")

    assert raw("DELETE FROM audit_pendingentry WHERE id = %s", [copy.pk]) == 1


def test_one_unintegrated_row_blocks_the_whole_delete() -> None:
    note("x", key="k-1")
    ledger.integrate()
    _pending_copy(idempotency_key="k-1")
    note("not yet")

    _refused("DELETE FROM audit_pendingentry")

    assert PendingEntry.objects.count() == 2


def test_triggers_are_back_after_being_disabled(ledger_rows: None) -> None:
    # given: a database owner switched the triggers off and on again
    with triggers.disabled(connection):
        raw("UPDATE audit_entry SET actor_id = 'admin' WHERE seq = 0")

    # then: the change went through, and the next one is refused again
    assert Entry.objects.get(seq=0).actor_id == "admin"
    _refused("UPDATE audit_entry SET actor_id = 'admin' WHERE seq = 1")
    _refused("DELETE FROM audit_checkpoint")
    note("pending")
    _refused("DELETE FROM audit_pendingentry")
