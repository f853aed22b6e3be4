"""export_audit on the command line: what it prints, and clear errors for bad input with nothing written."""
from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from audit.models import Entry, ExportJob, PendingEntry

pytestmark = pytest.mark.django_db


def test_the_command_exports_as_the_actor_and_says_how_to_verify(history: None, auditor: object,
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "audit.zip"
    stdout = StringIO()
    call_command("export_audit", "--out", str(out), "--actor", "audrey", "--subject", "model_version:model/0",
                 "model_version:model/1", "--since", "2020-01-01T00:00:00+02:00", stdout=stdout)

    job = ExportJob.objects.get()
    text = stdout.getvalue()
    assert f"export #{job.pk} (bundle) done: {job.entries_done:,} entries" in text
    assert f"written to {out}" in text and "python verify.py" in text
    assert job.created_by == auditor
    assert Entry.objects.get(seq=job.ledger_seq).actor == {"type": "user", "id": str(auditor.pk)}  # type: ignore[attr-defined]
    assert job.scope["since"] == "2019-12-31T22:00:00.000000Z"
    assert [s[:2] for s in job.scope["subjects"]] == [["model_version", "model/0"], ["model_version", "model/1"]]


def test_without_an_actor_the_export_is_recorded_as_the_command(history: None, tmp_path: Path) -> None:
    call_command("export_audit", "--out", str(tmp_path / "a.csv"), "--format", "csv", stdout=StringIO())
    job = ExportJob.objects.get()
    assert job.created_by is None
    assert Entry.objects.get(seq=job.ledger_seq).actor == {"type": "system", "id": "export_audit"}


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "last tuesday"], "--since 'last tuesday' is not an ISO 8601 date or time"),
    (["--since", "2026-03-01", "--until", "2026-02-01"], "is after --until"),
    (["--event-type", "promotion.teleported"], "unknown event type 'promotion.teleported'"),
    (["--subject", "fraud-detector"], "subject 'fraud-detector' must look like TYPE:ID"),
    (["--model", "no-such-model"], "no registered model named 'no-such-model'"),
    (["--dataset", "no-such-dataset"], "no dataset named 'no-such-dataset'"),
    (["--format", "report"], "the report format is about one model: give --model"),
    (["--actor", "nobody"], "--actor: no user named 'nobody'"),
    (["--actor", "otto"], "only InfoSec and auditors may export the ledger"),
])
def test_bad_input_is_a_clear_command_error_and_writes_nothing(history: None, tmp_path: Path, args: list[str],
                                                                message: str, outsider: object) -> None:
    before = (PendingEntry.objects.count(), Entry.objects.count(), ExportJob.objects.count())
    out = tmp_path / "x.zip"

    with pytest.raises(CommandError, match=message):
        call_command("export_audit", "--out", str(out), *args, stdout=StringIO())

    assert (PendingEntry.objects.count(), Entry.objects.count(), ExportJob.objects.count()) == before
    assert not out.exists()


def test_bad_output_paths_are_refused(history: None, tmp_path: Path) -> None:
    existing = tmp_path / "there.zip"
    existing.write_bytes(b"keep me")
    with pytest.raises(CommandError, match="already exists"):
        call_command("export_audit", "--out", str(existing), stdout=StringIO())
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(CommandError, match="does not exist"):
        call_command("export_audit", "--out", str(tmp_path / "missing-dir" / "x.zip"), stdout=StringIO())
    with pytest.raises(CommandError, match="invalid choice: 'docx'"):
        call_command("export_audit", "--out", str(tmp_path / "y"), "--format", "docx", stdout=StringIO())
    assert ExportJob.objects.count() == 0
