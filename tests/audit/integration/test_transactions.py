"""The ledger entry commits or rolls back with the change it describes; on_commit integration."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import connection, transaction

from access.roles import AUDITOR, INFOSEC
from access.services.roles import user_role_add
from audit import ledger
from audit.ledger import Actor
from audit.models import Entry, PendingEntry
from tests.audit.integration.helpers import ALICE, note
from tests.factories import UserFactory


class Boom(Exception):
    pass


def _callbacks() -> list[object]:
    return [func for _, func, _ in connection.run_on_commit if func is ledger._integrate_after_commit]


@pytest.mark.django_db
def test_a_service_that_raises_after_record_leaves_nothing() -> None:
    # given: a service that records its event and then fails
    def service() -> None:
        with transaction.atomic():
            note("about to fail")
            raise Boom

    # when
    with pytest.raises(Boom):
        service()

    # then
    assert PendingEntry.objects.count() == 0
    assert ledger.integrate() == 0
    assert Entry.objects.count() == 0


@pytest.mark.django_db
def test_role_change_and_its_entry_roll_back_together() -> None:
    user = UserFactory()
    admin = UserFactory(roles=[INFOSEC])

    with pytest.raises(Boom), transaction.atomic():
        assert user_role_add(actor=admin, target=user, role=AUDITOR, reason="SEC-1") is True
        assert user.groups.filter(name=AUDITOR).exists()  # visible inside the transaction
        raise Boom

    assert not user.groups.exists()
    assert PendingEntry.objects.count() == 0
    assert ledger.integrate() == 0
    assert Entry.objects.count() == 0
    assert Group.objects.get(name=AUDITOR).user_set.count() == 0


@pytest.mark.django_db
def test_a_rolled_back_savepoint_takes_only_its_own_event() -> None:
    with transaction.atomic():
        note("kept 1")
        with pytest.raises(Boom), transaction.atomic():
            note("rolled back")
            raise Boom
        note("kept 2")

    ledger.integrate()
    assert [e.payload["text"] for e in Entry.objects.order_by("seq")] == ["kept 1", "kept 2"]


@pytest.mark.django_db
def test_integration_runs_after_commit(settings: pytest.FixtureRequest, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    settings.LEDGER_INTEGRATE_ON_COMMIT = True  # type: ignore[attr-defined]

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            note("one")
        # still inside the (test's) outer transaction: nothing integrated yet
        assert Entry.objects.count() == 0
        assert PendingEntry.objects.count() == 1

    assert len(callbacks) == 1
    assert PendingEntry.objects.count() == 0
    assert list(Entry.objects.values_list("seq", flat=True)) == [0]


@pytest.mark.django_db
def test_many_records_in_one_transaction_register_one_callback(
    settings: pytest.FixtureRequest, django_capture_on_commit_callbacks  # type: ignore[no-untyped-def]
) -> None:
    settings.LEDGER_INTEGRATE_ON_COMMIT = True  # type: ignore[attr-defined]

    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        for i in range(25):
            note(f"n{i}")
        ledger.record_many(
            [ledger.Event("ledger.note_added", Actor.system("t"), ledger.Subject("m", "1"), {"text": "batch"})]
        )
        assert len(_callbacks()) == 1

    assert callbacks == [ledger._integrate_after_commit]
    assert Entry.objects.count() == 26
    assert PendingEntry.objects.count() == 0


@pytest.mark.django_db
def test_callback_of_a_rolled_back_savepoint_is_registered_again(
    settings: pytest.FixtureRequest, django_capture_on_commit_callbacks  # type: ignore[no-untyped-def]
) -> None:
    # given: the first record() of the transaction was in a savepoint that rolled back,
    # which discards the callback it registered
    settings.LEDGER_INTEGRATE_ON_COMMIT = True  # type: ignore[attr-defined]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            with pytest.raises(Boom), transaction.atomic():
                note("rolled back")
                raise Boom
            assert _callbacks() == []
            # when
            note("kept")

    # then
    assert len(callbacks) == 1
    assert [e.payload["text"] for e in Entry.objects.all()] == ["kept"]


@pytest.mark.django_db
def test_no_callback_when_integration_on_commit_is_off(django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    with django_capture_on_commit_callbacks() as callbacks:
        note("x")
    assert callbacks == []


def test_real_commit_integrates_once(committing_db: None, settings: pytest.FixtureRequest) -> None:
    settings.LEDGER_INTEGRATE_ON_COMMIT = True  # type: ignore[attr-defined]

    # when: one transaction records three events, another rolls back
    with transaction.atomic():
        for i in range(3):
            note(f"n{i}")
        assert len(_callbacks()) == 1
    with pytest.raises(Boom), transaction.atomic():
        note("rolled back")
        raise Boom

    # then: the committed three were integrated by the on_commit hook
    assert PendingEntry.objects.count() == 0
    assert [e.payload["text"] for e in Entry.objects.order_by("seq")] == ["n0", "n1", "n2"]


def test_record_in_autocommit_mode_integrates_at_once(committing_db: None, settings: pytest.FixtureRequest) -> None:
    settings.LEDGER_INTEGRATE_ON_COMMIT = True  # type: ignore[attr-defined]
    assert connection.get_autocommit()

    # record() refuses to run outside a transaction (tests/audit/integration/test_record.py): an autocommit caller
    # opens its own, and the entry is integrated as soon as that commits.
    with transaction.atomic():
        note("alone")

    assert Entry.objects.count() == 1
    assert PendingEntry.objects.count() == 0


# --- the write path enforces itself ---------------------------------------------------------------


def test_record_refuses_to_run_outside_a_transaction(committing_db: None) -> None:
    # given: no enclosing transaction.atomic() (autocommit, as a command or a task would be)
    # when: an event is recorded, alone or in a batch
    with pytest.raises(ledger.NotInTransaction, match=r"inside transaction\.atomic\(\)"):
        ledger.record(event_type="ledger.note_added", actor=ALICE, subject=ledger.Subject("m", "1"),
                      payload={"text": "outside"})
    with pytest.raises(ledger.NotInTransaction):
        ledger.record_many([ledger.Event("ledger.note_added", ALICE, ledger.Subject("m", "1"), {"text": "outside"})])
    # then: nothing was written, and inside a transaction the same call records
    assert PendingEntry.objects.count() == Entry.objects.count() == 0
    with transaction.atomic():
        note("inside")
    assert PendingEntry.objects.count() == 1
