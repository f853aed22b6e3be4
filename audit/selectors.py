"""Reads of the ledger: tree roots and proofs from stored nodes (O(log n) each), filtered entries,
checkpoints, and the exports a person may see."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from audit.canonical import parse_timestamp
from audit.ledger import fetch_nodes
from audit.merkle import (
    EMPTY_ROOT,
    ProofError,
    consistency_ranges,
    inclusion_ranges,
    resolve,
)
from audit.models import Checkpoint, Entry, ExportJob, LedgerHead
from audit.policy import Action, may


def ledger_size() -> int:
    return LedgerHead.objects.values_list("tree_size", flat=True).get(pk=1)


def _check_size(size: int) -> None:
    current = ledger_size()
    if not 0 <= size <= current:
        raise ProofError(f"tree size {size} is outside the ledger (0..{current})")


def _hashes(ranges: list[tuple[int, int]]) -> list[bytes]:
    """The subtree hash of every range, from one query for all the stored nodes they need."""
    return resolve(ranges, fetch_nodes)


def tree_root(size: int) -> bytes:
    """RFC 9162 root hash of the first ``size`` entries."""
    _check_size(size)
    if size == 0:
        return EMPTY_ROOT
    return _hashes([(0, size)])[0]


@dataclass(frozen=True)
class InclusionProof:
    seq: int
    tree_size: int
    leaf_hash: bytes
    path: list[bytes]
    root: bytes


def inclusion_proof(*, seq: int, tree_size: int) -> InclusionProof:
    """Two queries whatever the size: the head, then every node of the path, the leaf and the root."""
    _check_size(tree_size)
    ranges = inclusion_ranges(seq, tree_size)
    *path, leaf, root = _hashes([*ranges, (seq, seq + 1), (0, tree_size)])
    return InclusionProof(seq, tree_size, leaf, path, root)


@dataclass(frozen=True)
class ConsistencyProof:
    old_size: int
    new_size: int
    path: list[bytes]
    old_root: bytes
    new_root: bytes


def consistency_proof(*, old_size: int, new_size: int) -> ConsistencyProof:
    """Two queries whatever the sizes: the head, then every node of the proof and both roots."""
    _check_size(new_size)
    ranges = consistency_ranges(old_size, new_size)
    *path, old_root, new_root = _hashes([*ranges, (0, old_size), (0, new_size)])
    return ConsistencyProof(old_size, new_size, path, old_root, new_root)


def latest_checkpoint() -> Checkpoint | None:
    return Checkpoint.objects.order_by("-id").first()


def checkpoint_covering(seq: int) -> Checkpoint | None:
    """The earliest checkpoint whose tree contains entry ``seq``."""
    return Checkpoint.objects.filter(tree_size__gt=seq).order_by("tree_size", "id").first()


# Checkpoints later than this many intervals mean the signer (celery beat or the embedded scheduler) is not
# running: worth a warning, still not a sign of tampering.
OVERDUE_INTERVALS = 2


@dataclass(frozen=True)
class CheckpointPending:
    """An integrated entry no checkpoint covers *yet*: a state every entry passes through, not a failure.

    The checkpoint task signs every ``LEDGER_CHECKPOINT_INTERVAL`` seconds when the tree grew, so an entry is
    due to be covered one interval after the later of its own time and the last checkpoint's; ``overdue``
    once ``OVERDUE_INTERVALS`` intervals have gone by without it (the signer is not running).
    """

    due_in_seconds: int
    overdue_seconds: int
    interval_seconds: float

    @property
    def overdue(self) -> bool:
        return self.overdue_seconds > 0

    @property
    def summary(self) -> str:
        """When the entry will be covered, or why it is late (without the word "pending")."""
        if self.overdue:
            return (f"the checkpoint signer is late: no checkpoint for {self.overdue_seconds} s past the expected "
                    f"time (every {self.interval_seconds:g} s). Is the scheduler running (celery beat, or the "
                    "embedded one)? A late signer is not a sign of tampering.")
        if self.due_in_seconds > 0:
            return f"will be covered by the next checkpoint in {self.due_in_seconds} s"
        return "the next checkpoint is due now"

    @property
    def detail(self) -> str:
        return ("pending, and " if self.overdue else "pending: ") + self.summary


def checkpoint_pending(entry: Entry, *, now: datetime | None = None) -> CheckpointPending:
    """When the next checkpoint should cover ``entry`` (which no checkpoint covers yet), and whether it is late."""
    now = now or timezone.now()
    interval = float(settings.LEDGER_CHECKPOINT_INTERVAL)
    since = parse_timestamp(entry.timestamp)
    last = Checkpoint.objects.order_by("-id").values_list("created_at", flat=True).first()
    if last is not None:
        since = max(since, last)
    waited = (now - since).total_seconds()
    late = waited - OVERDUE_INTERVALS * interval
    return CheckpointPending(
        due_in_seconds=max(0, math.ceil(interval - waited)),
        overdue_seconds=max(0, math.floor(late)),
        interval_seconds=interval,
    )


# --- filtered reads behind the API and the console -------------------------------------------------


def may_read_ledger(user: Any) -> bool:
    """People read the whole ledger as InfoSec or auditors (tokens need ``ledger:read`` instead)."""
    return may(user, Action.READ_LEDGER)


@dataclass(frozen=True)
class EntryFilters:
    """Already validated; timestamps are in the ledger's own format, so they compare as strings."""

    since: str | None = None
    until: str | None = None
    event_types: tuple[str, ...] = ()
    actor: tuple[str, str] | None = None
    subject: tuple[str, str] | None = None
    subject_type: str | None = None
    seq_from: int | None = None
    seq_to: int | None = None
    request_id: str | None = None


def entries_list(filters: EntryFilters) -> QuerySet[Entry]:
    qs = Entry.objects.all()
    if filters.since:
        qs = qs.filter(timestamp__gte=filters.since)
    if filters.until:
        qs = qs.filter(timestamp__lte=filters.until)
    if filters.event_types:
        qs = qs.filter(event_type__in=filters.event_types)
    if filters.actor:
        qs = qs.filter(actor_type=filters.actor[0], actor_id=filters.actor[1])
    if filters.subject:
        qs = qs.filter(subject_type=filters.subject[0], subject_id=filters.subject[1])
    if filters.subject_type:
        qs = qs.filter(subject_type=filters.subject_type)
    if filters.seq_from is not None:
        qs = qs.filter(seq__gte=filters.seq_from)
    if filters.seq_to is not None:
        qs = qs.filter(seq__lte=filters.seq_to)
    if filters.request_id:
        # Not indexed (an index would cost every write): combine with since/until on a large ledger.
        qs = qs.filter(request_id=filters.request_id)
    return qs


def checkpoint_at(tree_size: int) -> Checkpoint | None:
    """The latest checkpoint signed at exactly this size (rotation may sign one twice)."""
    return Checkpoint.objects.filter(tree_size=tree_size).order_by("-id").first()


def exports_visible_to(user: Any) -> QuerySet[ExportJob] | None:
    """InfoSec sees every export, an auditor their own; None for everyone else (no export rights at all)."""
    qs = ExportJob.objects.select_related("created_by").order_by("-id")
    if may(user, Action.SEE_EVERY_EXPORT):
        return qs
    if may(user, Action.EXPORT):
        return qs.filter(created_by_id=user.pk)
    return None
