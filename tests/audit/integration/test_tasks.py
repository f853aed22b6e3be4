"""The ledger's Celery tasks, run eagerly in-process (the embedded setup)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from audit.models import Checkpoint, Entry, PendingEntry, SigningKey
from audit.selectors import tree_root
from audit.tasks import integrate_pending, make_checkpoint
from audit.verification import verify_ledger
from config.celery import app
from tests.audit.integration.helpers import note

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def eager() -> Iterator[None]:
    """Eager mode even when the environment names a broker; restored afterwards."""
    saved = {k: app.conf[k] for k in ("task_always_eager", "task_eager_propagates")}
    app.conf.update(task_always_eager=True, task_eager_propagates=True)
    yield
    app.conf.update(saved)


def test_tasks_are_registered_under_their_beat_names(settings: pytest.FixtureRequest) -> None:
    scheduled = {job["task"] for job in settings.CELERY_BEAT_SCHEDULE.values()}  # type: ignore[attr-defined]
    ours = {"audit.tasks.integrate_pending", "audit.tasks.make_checkpoint"}
    assert ours <= scheduled
    assert ours <= set(app.tasks)


def test_integrate_pending_integrates_and_is_idempotent() -> None:
    for i in range(4):
        note(f"n{i}")

    first = integrate_pending.delay()
    second = integrate_pending.delay()

    assert first.get() == 4
    assert second.get() == 0
    assert PendingEntry.objects.count() == 0
    assert list(Entry.objects.values_list("seq", flat=True)) == [0, 1, 2, 3]


def test_make_checkpoint_signs_once_per_growth() -> None:
    note("a")
    note("b")

    # when: the schedule fires twice with nothing new in between
    first = make_checkpoint.delay().get()
    second = make_checkpoint.delay().get()

    # then: one checkpoint, covering the two notes and the key registration
    assert (first, second) == (3, None)
    checkpoint = Checkpoint.objects.get()
    assert checkpoint.tree_size == 3 and checkpoint.root_hash == tree_root(3).hex()
    assert SigningKey.objects.count() == 1

    # and after growth the next run signs again
    note("c")
    assert make_checkpoint.delay().get() == 4
    assert make_checkpoint.delay().get() is None
    assert list(Checkpoint.objects.values_list("tree_size", flat=True)) == [3, 4]
    assert verify_ledger().ok


def test_make_checkpoint_on_an_empty_ledger_signs_the_key_registration() -> None:
    assert make_checkpoint.delay().get() == 1
    assert Entry.objects.get().event_type == "ledger.signing_key_registered"
