"""The CSV export: one row per entry, with cells a spreadsheet cannot take for a formula."""
from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from audit.export.selection import PROGRESS_EVERY, Checked, Plan, rows
from audit.models import Checkpoint, Entry, ExportJob

CSV_COLUMNS = (
    "seq", "timestamp", "event_type", "actor_type", "actor_id", "subject_type", "subject_id", "payload",
    "prev_hash", "entry_hash", "request_id", "subject_prev",
)


# A spreadsheet runs a cell starting with one of these as a formula (CSV injection, OWASP). A value that
# starts with "'" gets one more, so that removing one leading "'" always gives the stored value back.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def spreadsheet_safe(value: str) -> str:
    """``value``, with a leading ``'`` when a spreadsheet would run it as a formula (or it starts with ``'``).

    Only for the free-text columns (actor and subject ids, request id) that a user can choose,
    say by naming a model ``=HYPERLINK(...)``; the bundle keeps every value exactly. The stored
    value is the cell without its first character when that is ``'`` (docs/export-format.md)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def write_csv(
    *, job: ExportJob, plan: Plan, entry: Entry, checkpoint: Checkpoint, path: Path, progress: Callable[[int], None]
) -> int:
    """One row per entry; ``payload`` is its canonical JSON as hashed (personal values as commitments).

    Every column of the entry body is there (``subject_prev`` empty for a subject's first entry), so each
    row's ``entry_hash`` can be recomputed (docs/export-format.md, "The CSV")."""
    count = 0
    check = Checked()
    safe = spreadsheet_safe
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for row in rows(plan):
            check(row)
            seq, ts, et, at, aid, st, sid, pj, ph, sp, eh, rid = row
            # payload is canonical JSON (starts with "{"); seq, timestamp, types and hashes are ours.
            writer.writerow((seq, ts, et, at, safe(aid), st, safe(sid), pj, ph, eh, safe(rid or ""),
                             "" if sp is None else sp))
            count += 1
            if count % PROGRESS_EVERY == 0:
                progress(count)
    return count
