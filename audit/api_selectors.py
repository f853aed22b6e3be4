"""Reads behind the ledger and export API: who may read what, and the filtered querysets."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from access.roles import AUDITOR, INFOSEC
from audit.export import has_role
from audit.models import Checkpoint, Entry, ExportJob


def may_read_ledger(user: Any) -> bool:
    """People read the whole ledger as InfoSec or auditors (tokens need ``ledger:read`` instead)."""
    return has_role(user, (INFOSEC, AUDITOR))


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
    if has_role(user, (INFOSEC,)):
        return qs
    if has_role(user, (AUDITOR,)):
        return qs.filter(created_by_id=user.pk)
    return None
