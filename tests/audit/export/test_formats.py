"""The CSV and the HTML audit report of a model."""
from __future__ import annotations

import csv
import html
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from audit import ledger
from audit.export.spreadsheet import CSV_COLUMNS
from audit.ledger import Actor, Subject, record
from audit.models import Checkpoint, Entry, ExportJob
from tests.audit.export.helpers import Export

pytestmark = pytest.mark.django_db


def test_csv_has_one_row_per_entry_with_its_stored_fields(history: None, export: Export) -> None:
    out = export("--format", "csv", "--subject", "model_version:model/2", name="model2.csv")

    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS
    stored = list(Entry.objects.filter(subject_type="model_version", subject_id="model/2").order_by("seq"))
    assert len(rows) - 1 == len(stored)
    for row, entry in zip(rows[1:], stored, strict=True):
        assert row == [str(entry.seq), entry.timestamp, entry.event_type, entry.actor_type, entry.actor_id,
                       entry.subject_type, entry.subject_id, entry.payload_json, entry.prev_hash, entry.entry_hash,
                       entry.request_id or "", "" if entry.subject_prev is None else str(entry.subject_prev)]
        assert json.loads(row[7]) == entry.payload
    job = ExportJob.objects.get()
    assert job.format == "csv" and job.entries_done == len(stored)
    assert Entry.objects.get(seq=job.ledger_seq).payload["format"] == "csv"


def test_csv_of_a_time_range_and_event_types(history: None, export: Export) -> None:
    out = export("--format", "csv", "--event-type", "ledger.note_added", "--until", "2999-01-01", name="n.csv")
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == Entry.objects.filter(event_type="ledger.note_added").count()
    assert {r["event_type"] for r in rows} == {"ledger.note_added"}
    assert [int(r["seq"]) for r in rows] == sorted(int(r["seq"]) for r in rows)


def test_csv_neutralises_cells_a_spreadsheet_would_run_as_formulas(db: None, export: Export) -> None:
    # given entries whose user-chosen ids start like formulas, and a harmless one
    actor = Actor.service("-svc")
    for subject_id in ("=HYPERLINK(\"https://evil.example\",\"x\")", "+1", "@SUM(A1)", "fraud-detector"):
        record(event_type="ledger.note_added", actor=actor, subject=Subject("model", subject_id),
               payload={"text": "=1+1 in a payload stays as JSON"})
    ledger.integrate()

    # when
    out = export("--format", "csv", name="f.csv")

    # then the ids are shown as text; the payload column is the exact hashed JSON
    with out.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["event_type"] == "ledger.note_added"]
    assert [r["subject_id"] for r in rows] == [
        "'=HYPERLINK(\"https://evil.example\",\"x\")", "'+1", "'@SUM(A1)", "fraud-detector"]
    assert {r["actor_id"] for r in rows} == {"'-svc"}
    stored = Entry.objects.filter(event_type="ledger.note_added").order_by("seq")
    assert [r["payload"] for r in rows] == [e.payload_json for e in stored]
    assert stored[0].subject_id.startswith("=")  # the ledger itself is untouched


@pytest.fixture
def report_data(story: dict) -> dict:
    """Datasets and lineage behind v7, an access grant on the model, and an entry carrying personal data."""
    from access.models import Dataset, Grant
    from governance.models import Lineage, ModelVersion

    people = story["people"]
    v7 = ModelVersion.objects.get(model=story["model"], version=7)
    cards = Dataset.objects.create(name="card-transactions-2026q3", owner=people.steward, level="confidential",
                                   effective_level="confidential", pii_categories=["card_pan"])
    Lineage.objects.create(version=v7, dataset=cards, role="training", source="declared")
    Grant.objects.create(user=people.approver, resource_type="registered_model", resource_id=story["model"].pk,
                         permission="approve_promotion", expires_at=timezone.now() + timedelta(days=30),
                         justification="staging approvals for Q3", granted_by=people.infosec)
    record(event_type="model.changed", actor=Actor.system("mlflow-sync"),
           subject=Subject("registered_model", "fraud-detector"),
           payload={"model": "fraud-detector",
                    "changes": {"owner": {"pii": "ref-olivia", "commitment": "ab" * 32}, "team": "payments-risk"}})
    ledger.integrate()
    return story


def test_the_report_shows_the_models_audit_pack(report_data: dict, export: Export) -> None:
    out = export("--model", "fraud-detector", "--format", "report", name="fraud.html")

    page = html.unescape(out.read_text(encoding="utf-8"))
    approved, rejected = report_data["approved"], report_data["rejected"]
    people = report_data["people"]
    assert "Audit pack: fraud-detector" in page
    # promotion history with approvals and gate evidence
    assert f"Request #{approved.pk}: version 7 → staging — deployed" in page
    assert f"Request #{rejected.pk}: version 8 → staging — rejected" in page
    assert "Validation report MRV-2026-114 reviewed" in page and "the recall drop is not explained" in page
    assert "model card present" in page or "model_card" in page
    assert f"user:{people.approver.pk}" in page and f"user:{people.requester.pk}" in page
    # data behind each version
    assert "card-transactions-2026q3" in page and "confidential" in page and "card_pan" in page
    # access grants, violations
    assert "approve_promotion" in page and "staging approvals for Q3" in page
    assert "staging alias moved to 9 outside governance" in page
    # the checkpoint it is anchored to, as its signed note
    job = ExportJob.objects.get()
    checkpoint = Checkpoint.objects.filter(tree_size=job.checkpoint_size).order_by("-id").first()
    assert checkpoint is not None and checkpoint.note.strip() in page
    # personal data redacted: the reference object is not shown, usernames never appear
    assert "[personal data redacted]" in page and "ref-olivia" not in page
    for user in (people.approver, people.requester, people.infosec, people.creator):
        assert user.username not in page
    assert f"by user:{people.creator.pk}" in page  # MLflow's creator, as the account it belongs to
    # the other model's history is not in it
    assert "chargeback-risk" not in page
    assert job.entries_done == job.entries_total > 0


def test_the_report_respects_the_period(report_data: dict, export: Export) -> None:
    out = export("--model", "fraud-detector", "--format", "report", "--until", "2000-01-01", name="old.html")
    page = out.read_text(encoding="utf-8")
    assert "No promotion requests in the period." in page
    assert "No violations in the period." in page
