"""What an export covers: formats, the scope (times, event types, subjects, model, dataset) and the
subjects it resolves to, fixed at the ledger size of the moment the export is created."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from audit import offline_verify
from audit.canonical import format_timestamp
from audit.event_types import registry
from audit.export import sections
from audit.export.errors import ExportError
from audit.models import Entry

FORMATS = ("bundle", "csv", "report", "pdf")


EXTENSIONS = {"bundle": "zip", "csv": "csv", "report": "html", "pdf": "pdf"}

#: The formats about one model: the audit pack, as HTML (``report``) or as one PDF (``pdf``, the same template).
MODEL_FORMATS = ("report", "pdf")


MAX_SUBJECTS = 10_000

#: How ``parse_scope``'s messages name the fields unless told otherwise: the flags of ``export_audit``.
CLI_LABELS = {"since": "--since", "until": "--until", "model": "--model", "dataset": "--dataset",
              "since_checkpoint": "--since-checkpoint"}




@dataclass(frozen=True)
class ExportScope:
    """What to export. Timestamps are the ledger's own format (UTC, microseconds, ``Z``), inclusive."""

    since: str | None = None
    until: str | None = None
    subjects: tuple[tuple[str, str], ...] = ()
    event_types: tuple[str, ...] = ()
    model: str | None = None
    dataset: str | None = None
    # A checkpoint the recipient already holds (its tree size): the bundle then proves consistency with it.
    since_checkpoint: int | None = None

    @property
    def completeness(self) -> str:
        """``ledger`` (a range of the whole ledger), ``subjects`` or ``none`` (filtered by event type)."""
        return offline_verify.completeness_kind(
            {"event_types": list(self.event_types), "subjects": list(self.subjects), "model": self.model,
             "dataset": self.dataset}
        )


def parse_time(value: str | datetime, *, end_of_day: bool = False, label: str = "time") -> str:
    """An ISO 8601 date or date-time as a ledger timestamp. Naive times are UTC.

    A bare date means the start of that day, or its last microsecond with ``end_of_day``
    (so ``--until 2026-11-30`` includes the whole 30th).
    """
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return format_timestamp(moment)
    text = str(value).strip()
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
            if end_of_day:
                day = datetime.combine(day.date(), time.max, tzinfo=UTC)
            return format_timestamp(day)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ExportError(
            f"{label} {text!r} is not an ISO 8601 date or time (e.g. 2026-11-01 or 2026-11-01T09:30:00Z)",
            code="invalid_time",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if not 1 <= moment.astimezone(UTC).year <= 9999:
        raise ExportError(f"{label} {text!r} is out of range", code="invalid_time")
    return format_timestamp(moment)


def _subject(text: str) -> tuple[str, str]:
    kind, sep, ident = str(text).partition(":")
    if not sep or not kind or not ident:
        raise ExportError(f"subject {text!r} must look like TYPE:ID, e.g. model_version:fraud-detector/7",
                          code="invalid_subject")
    if len(kind) > 100 or len(ident) > 300 or any(ord(c) < 0x20 for c in text):
        raise ExportError(f"subject {text[:80]!r} is too long or has control characters", code="invalid_subject")
    return kind, ident


def parse_scope(
    *,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    subjects: Iterable[str] = (),
    event_types: Iterable[str] = (),
    model: str | None = None,
    dataset: str | None = None,
    since_checkpoint: int | str | None = None,
    labels: Mapping[str, str] | None = None,
) -> ExportScope:
    """Validate and normalise an export scope; raises ExportError naming what is wrong.

    ``labels`` names the fields in the caller's language (``since``, ``until``, ``model``, ``dataset``,
    ``since_checkpoint``): the console's form words, say; by default the command's flags (``--since``)."""
    label = {**CLI_LABELS, **(labels or {})}
    known: int | None = None
    if since_checkpoint not in (None, ""):
        text = str(since_checkpoint).strip()
        if not (text.isascii() and text.isdigit()) or int(text) < 1 or len(text) > 18:
            raise ExportError(f"{label['since_checkpoint']} {text[:40]!r} must be a tree size (a positive integer)",
                              code="invalid_checkpoint")
        known = int(text)
    since_ts = parse_time(since, label=label["since"]) if since not in (None, "") else None
    until_ts = parse_time(until, end_of_day=True, label=label["until"]) if until not in (None, "") else None
    if since_ts and until_ts and since_ts > until_ts:
        raise ExportError(f"{label['since']} {since_ts} is after {label['until']} {until_ts}", code="invalid_time")
    types = sorted(set(event_types))
    for name in types:
        if name not in registry:
            raise ExportError(f"unknown event type {name!r} (docs/event-types.md lists them)",
                              code="unknown_event_type")
    parsed = sorted({_subject(s) for s in subjects})
    for key, value in (("model", model), ("dataset", dataset)):
        if value is not None and (not str(value).strip() or len(str(value)) > 300):
            raise ExportError(f"{label[key]} must be a non-empty name", code="invalid_scope")
    return ExportScope(
        since=since_ts, until=until_ts, subjects=tuple(parsed), event_types=tuple(types),
        model=model.strip() if model else None, dataset=dataset.strip() if dataset else None,
        since_checkpoint=known,
    )


# Runtime events (governance/services/runtime_events.py) that name a model without a version are recorded
# about these shared subjects, which also hold other models' events: a model's export cannot include them
# and says so.
SHARED_RUNTIME_SUBJECTS = ("environment", "runtime_source")


def names_model(payload_json: str, name: str) -> bool:
    try:
        payload = json.loads(payload_json)
    except ValueError:
        return False
    return isinstance(payload, dict) and payload.get("model") == name


def payload_mentions(name: str) -> str:
    """A substring every canonical payload with top-level ``"model": name`` contains (a prefilter only)."""
    return '"model":' + json.dumps(name, ensure_ascii=False)


def model_exclusions(name: str, size: int) -> list[dict[str, Any]]:
    """What a ``--model`` export leaves out although it is about the model, with how many entries (seq < size).

    Runtime events naming the model without a version are about ``environment:`` or ``runtime_source:``
    subjects shared with other models; exporting those subjects would export the other models' events too.
    """
    candidates = Entry.objects.filter(
        seq__lt=size, subject_type__in=SHARED_RUNTIME_SUBJECTS, event_type__in=registry.runtime_names(),
        payload_json__contains=payload_mentions(name),
    ).values_list("subject_type", "subject_id", "payload_json")
    counts: dict[tuple[str, str], int] = {}
    for st, sid, pj in candidates.iterator(chunk_size=2000):
        if names_model(pj, name):
            counts[(st, sid)] = counts.get((st, sid), 0) + 1
    if not counts:
        return []
    return [{
        "what": f"runtime events naming model {name} without a version",
        "why": "they are recorded about environment or reporting-system subjects that also hold other models' "
               "events; completeness is not claimed for them",
        "subjects": [{"type": t, "id": i, "entries": n} for (t, i), n in sorted(counts.items())],
        "entries": sum(counts.values()),
        "how_to_export": "export_audit --subject TYPE:ID for each subject listed",
    }]


def resolve_subjects(scope: ExportScope, size: int | None = None) -> list[tuple[str, str]]:
    subjects = set(scope.subjects)
    if scope.model:
        subjects.update(sections.subjects_of("model", scope.model, size=size))
    if scope.dataset:
        subjects.update(sections.subjects_of("dataset", scope.dataset))
    if len(subjects) > MAX_SUBJECTS:
        raise ExportError(f"the scope has {len(subjects):,} subjects (at most {MAX_SUBJECTS:,}); narrow it",
                          code="too_many_subjects")
    return sorted(subjects)


def subject_head(subject_type: str, subject_id: str, size: int) -> int | None:
    last: int | None = (
        Entry.objects.filter(subject_type=subject_type, subject_id=subject_id, seq__lt=size)
        .order_by("-seq").values_list("seq", flat=True).first()
    )
    return last
