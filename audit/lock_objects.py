"""Every row lock the ledger takes (``SELECT ... FOR UPDATE``), in one place, with the order they are taken in.

Lock order (a transaction that takes several takes them in this order, so two never wait on each other):

1. ``ledger_head_lock`` — the one ``LedgerHead`` row: the sequencer (``ledger.integrate``), a checkpoint
   (``checkpoints.checkpoint_create``), a key rotation (``rotation.signing_key_rotate``) and an export's
   creation (``export.service.export_create``) hold it until commit; it makes them one at a time.
   Recording (``record``) does not take it: the intake queue needs no lock.
2. ``data_subject_keys_lock`` / ``data_subject_key_lock`` — data subjects' key rows, several at once in
   ``data_subject`` order (sealing personal values, inside ``record``: ``FOR NO KEY UPDATE``, which lets
   the values' foreign keys through), or one: erasure, retention, a legal hold's creation (so a hold and
   an erasure of the same subject never interleave). A KEK rotation locks batches in ``pk`` order
   (``data_subject_keys_to_rewrap_lock``); it runs alone in its own transactions, one per batch.
3. ``account_lock`` — the ``auth_user`` row of an erased person (anonymised after the key row is locked).
4. ``legal_hold_lock`` — a hold being released.
5. ``witness_quorum_stall_lock`` — the open stall of the witness quorum (one at a time).
"""
from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth.models import User
from django.db.models import QuerySet

from audit.models import DataSubjectKey, LedgerHead, LegalHold, WitnessQuorumStall


def ledger_head_lock() -> LedgerHead:
    return LedgerHead.objects.select_for_update().get(pk=1)


def data_subject_keys_lock(data_subjects: Sequence[str]) -> QuerySet[DataSubjectKey]:
    """The key rows of ``data_subjects`` (those that exist), locked in ``data_subject`` order, FOR NO KEY UPDATE."""
    return (DataSubjectKey.objects.select_for_update(no_key=True)
            .filter(data_subject__in=data_subjects).order_by("data_subject"))


def data_subject_key_lock(data_subject: str, *, no_key: bool = False) -> DataSubjectKey | None:
    return DataSubjectKey.objects.select_for_update(no_key=no_key).filter(data_subject=data_subject).first()


def live_data_subject_key_lock(key_id: int) -> DataSubjectKey | None:
    """A key row by id, None when it is gone or already erased."""
    return DataSubjectKey.objects.select_for_update().filter(pk=key_id, erased_at__isnull=True).first()


def data_subject_keys_to_rewrap_lock(kek_id: str, batch_size: int) -> list[DataSubjectKey]:
    """The next ``batch_size`` live key rows still wrapped with ``kek_id``, in ``pk`` order."""
    return list(DataSubjectKey.objects.select_for_update()
                .filter(erased_at__isnull=True, kek_id=kek_id).order_by("pk")[:batch_size])


def account_lock(user_id: int) -> User | None:
    return User.objects.select_for_update().filter(pk=user_id).first()


def legal_hold_lock(hold_id: int) -> LegalHold:
    return LegalHold.objects.select_for_update().get(pk=hold_id)


def witness_quorum_stall_lock() -> WitnessQuorumStall | None:
    """The open stall, if any."""
    return WitnessQuorumStall.objects.select_for_update().filter(is_open=True).first()
