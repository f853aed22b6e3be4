"""The HTML audit report of one model: the ledger's entries (redacted) with an inclusion proof of the
export's own entry; the model's sections come from governance (``audit.export.sections``)."""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from django.template.loader import render_to_string

from audit.canonical import format_timestamp, parse_timestamp
from audit.compliance import scope_summary
from audit.export import sections
from audit.export.bundle import checkpoint_published
from audit.export.errors import ExportError
from audit.export.proofs import Proofs
from audit.export.scope import model_exclusions
from audit.export.selection import Checked, Plan, rows
from audit.models import Checkpoint, Entry, ExportJob


def redact(value: Any) -> Any:
    """A payload with every personal-data reference object shown as redacted."""
    if isinstance(value, dict):
        if set(value) == {"pii", "commitment"}:
            return "[personal data redacted]"
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def fmt(moment: datetime | None) -> str:
    return format_timestamp(moment) if moment else ""


def in_period(start: datetime | None, end: datetime | None, since: str | None, until: str | None) -> bool:
    if until and start and start > parse_timestamp(until):
        return False
    return not (since and end and end < parse_timestamp(since))


def compliance_rows(counts: Counter[str]) -> list[dict[str, Any]]:
    """The regulation mapping for the pack's scope (``audit.compliance.scope_summary``), each requirement with
    the event types found in it (``found``: non-zero counts only, most first) for the page."""
    frameworks: list[dict[str, Any]] = scope_summary(counts)["frameworks"]
    for f in frameworks:
        for r in f["requirements"]:
            r["found"] = sorted((e for e in r["events"] if e["entries"]), key=lambda e: (-e["entries"], e["type"]))
    return frameworks


def report_context(job: ExportJob, p: Plan, entry: Entry, checkpoint: Checkpoint) -> dict[str, Any]:
    """The audit report of one model: the ledger's entries and proofs here, the model's own sections
    (versions, promotions, violations, grants) from the builder governance registers (``sections``)."""
    scope = job.scope
    name = scope["model"]
    entries: list[dict[str, Any]] = []
    by_subject: dict[tuple[str, str], list[dict[str, Any]]] = {}
    check = Checked()
    for row in rows(p):
        check(row)
        seq, ts, et, at, aid, st, sid, pj, _ph, _sp, eh, rid = row
        item = {"seq": seq, "timestamp": ts, "event_type": et, "actor": f"{at}:{aid}", "subject": f"{st}:{sid}",
                "payload": json.dumps(redact(json.loads(pj)), ensure_ascii=False, sort_keys=True, indent=1),
                "entry_hash": eh, "request_id": rid}
        entries.append(item)
        by_subject.setdefault((st, sid), []).append(item)
    since, until = scope.get("since"), scope.get("until")
    return {
        **sections.model_report(name, scope, by_subject),
        "job": job, "scope": scope, "since": since or "the beginning",
        "until": until or "the export", "generated": format_timestamp(job.created_at),
        "exporter": f"{entry.actor_type}:{entry.actor_id}", "entries": entries,
        "model_entries": by_subject.get(("registered_model", name), []),
        "checkpoint": checkpoint, "checkpoint_note": checkpoint_published(checkpoint), "export_entry": entry,
        "completeness": p.kind, "excluded": model_exclusions(name, int(scope["ledger_size"])),
        "compliance": compliance_rows(Counter(e["event_type"] for e in entries)),
        "inclusion": Proofs(checkpoint.tree_size, bytes.fromhex(checkpoint.root_hash)).one(
            entry.seq, bytes.fromhex(entry.entry_hash)),
    }


def write_report(
    *, job: ExportJob, plan: Plan, entry: Entry, checkpoint: Checkpoint, path: Path, progress: Callable[[int], None]
) -> int:
    context = report_context(job, plan, entry, checkpoint)
    path.write_text(render_to_string("audit/report.html", context), encoding="utf-8")
    progress(len(context["entries"]))
    return len(context["entries"])


def write_report_pdf(
    *, job: ExportJob, plan: Plan, entry: Entry, checkpoint: Checkpoint, path: Path, progress: Callable[[int], None]
) -> int:
    """The same audit pack as ``write_report``, from the same template (its print styles: ``pdf``), as one PDF.

    Refused (ExportError ``pdf_too_large``, the job fails with the reason) above ``MAX_PDF_ENTRIES`` entries:
    rendering takes about 20 ms an entry, so a bigger pack is for the HTML report or the bundle."""
    from audit.export.pdf import MAX_PDF_ENTRIES, html_to_pdf  # xhtml2pdf (and reportlab) load only for the PDF

    context = report_context(job, plan, entry, checkpoint)
    if len(context["entries"]) > MAX_PDF_ENTRIES:
        raise ExportError(f"the PDF audit pack holds at most {MAX_PDF_ENTRIES:,} entries and this one has "
                          f"{len(context['entries']):,}: narrow the period, or export the report as HTML or a "
                          "bundle", code="pdf_too_large")
    path.write_bytes(html_to_pdf(render_to_string("audit/report.html", {**context, "pdf": True})))
    progress(len(context["entries"]))
    return len(context["entries"])
