"""The README's first command loads this demo: it must run end to end on a fresh database."""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from access.models import AccessRequest, Dataset, Grant, ReviewCampaign
from audit.models import Checkpoint, Entry, ExportJob, PendingEntry
from audit.verification import verify_ledger
from governance import registry
from governance.models import (
    AdmissionDecision,
    BreakGlassReview,
    ComplianceViolation,
    DeploymentReceipt,
    EnvironmentNamespace,
    GovernanceChangeRequest,
    Lineage,
    LiveDeployment,
    PromotionRequest,
)


@pytest.fixture
def demo_mlflow(tmp_path: Path) -> object:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry._client.cache_clear()
    with override_settings(MLFLOW_TRACKING_URI=uri, MLFLOW_REGISTRY_URI=uri, VAR_DIR=tmp_path, DEBUG=True):
        yield
    registry._client.cache_clear()


def test_seed_demo_plays_the_whole_story_into_mlflow_and_the_ledger(committing_db: None, demo_mlflow: object) -> None:
    # when
    out = StringIO()
    real_clock, witnesses = timezone.now, settings.LEDGER_WITNESSES
    call_command("seed_demo", stdout=out)

    # then: the story's clock and its suspended witnesses are the real ones again
    assert timezone.now is real_clock and settings.LEDGER_WITNESSES is witnesses

    # then: logins printed, every state of the story present, MLflow aliases match governance
    assert "governance-demo" in out.getvalue()
    states = set(PromotionRequest.objects.values_list("state", flat=True))
    assert {"deployed", "rejected", "rolled_back", "pending"} <= states
    assert PromotionRequest.objects.filter(strategy="canary", state="deployed").exists()
    assert BreakGlassReview.objects.filter(state="open").exists()
    assert ComplianceViolation.objects.filter(kind="out_of_band_alias", reverted=True).exists()
    for name in ("fraud-detector", "chargeback-risk"):
        live = {ld.environment.mlflow_alias: ld.version.version for ld in LiveDeployment.objects.select_related(
            "environment", "version", "model") if ld.model.name == name}
        assert registry.aliases(name) == live
    # the out-of-band production alias of chargeback-risk was reverted; its break-glass staging release stands
    assert "production" not in registry.aliases("chargeback-risk")
    assert Dataset.objects.filter(effective_level="restricted").exists()  # the card-PAN vault
    assert Lineage.objects.filter(version__model__name="fraud-detector").exists()
    assert Grant.objects.filter(revoked_at__isnull=True).count() >= 4
    assert AccessRequest.objects.filter(state="pending", needs_infosec=True).exists()
    assert ReviewCampaign.objects.filter(state="open").exists()
    # Production's namespace came through a second InfoSec person; the webhook admitted the break-glass v4
    # (review open) and refused the old v3 manifest; every deployed promotion carries a signed receipt.
    assert dict(EnvironmentNamespace.objects.values_list("namespace", "environment__name")) == {
        "fraud-staging": "staging", "fraud-prod": "production"}
    assert GovernanceChangeRequest.objects.filter(state="applied", change__has_key="kubernetes_namespaces").exists()
    assert set(AdmissionDecision.objects.values_list("version", "allowed", "rule")) == {
        (4, True, "break_glass_review_open"), (3, False, "not_approved")}
    deployed = PromotionRequest.objects.filter(deployed_at__isnull=False)
    assert deployed.exists() and DeploymentReceipt.objects.filter(promotion__in=deployed).count() == deployed.count()
    assert verify_ledger().ok
    _the_history_reads_plausibly()


def _the_history_reads_plausibly() -> None:
    """What an auditor would check (issue #17 §1): causes before effects, deadlines before "overdue", two weeks."""
    now = timezone.now()
    # every promotion: requested, then decided (approved or rejected), then deployed; approvals in between
    decided = 0
    for promotion in PromotionRequest.objects.prefetch_related("approvals"):
        approvals = sorted(a.created_at for a in promotion.approvals.all())
        assert all(promotion.created_at < at for at in approvals), promotion
        if promotion.decided_at is not None and approvals:  # decided by people (dev is decided by policy at once)
            decided += 1
            assert promotion.created_at < approvals[0] and promotion.created_at < promotion.decided_at, promotion
        if promotion.deployed_at is not None:
            assert promotion.created_at < promotion.deployed_at, promotion
            assert promotion.decided_at is None or promotion.decided_at <= promotion.deployed_at, promotion
            assert all(at <= promotion.deployed_at for at in approvals), promotion
        assert promotion.created_at <= now
    assert decided >= 6
    # no staging deployment moved back in time (the soak gate is met by days elapsing in the story)
    assert not Entry.objects.filter(payload_json__contains="staging deployment time set").exists()
    # a break-glass review is overdue only after its due time, and flagged after it too; an open one is not yet due
    overdue = list(BreakGlassReview.objects.filter(state="overdue").select_related("request"))
    assert overdue
    for review in overdue:
        assert review.request.created_at < review.due_at < now
        flagged = ComplianceViolation.objects.get(kind="overdue_break_glass_review", subject_id=str(review.request.pk))
        assert flagged.detected_at > review.due_at
    assert all(review.due_at > now for review in BreakGlassReview.objects.filter(state="open"))
    # times spread over two weeks, rising with the sequence numbers
    stamps = list(Entry.objects.order_by("seq").values_list("timestamp", flat=True))
    assert stamps == sorted(stamps)
    first, last = (datetime.fromisoformat(s.rstrip("Z")).replace(tzinfo=UTC) for s in (stamps[0], stamps[-1]))
    assert last - first > timedelta(days=7) and last <= now
    story = PromotionRequest.objects.order_by("created_at").values_list("created_at", flat=True)
    assert story.last() - story.first() > timedelta(days=7)


def _dashboard_of(username: str) -> str:
    from django.test import Client

    client = Client()
    client.force_login(User.objects.get(username=username))
    response = client.get("/console/")
    assert response.status_code == 200
    return response.content.decode()


def test_seed_demo_plays_the_story_with_mfa_required(committing_db: None, demo_mlflow: object) -> None:
    """``dev.py demo --sso`` turns MFA_REQUIRED on: the story's personas still approve, reject, break glass,
    grant restricted data and export (the seed plays them as freshly signed in with a second factor)."""
    with override_settings(MFA_REQUIRED=True):
        call_command("seed_demo", stdout=StringIO())
    assert {"deployed", "rejected", "pending"} <= set(PromotionRequest.objects.values_list("state", flat=True))
    assert BreakGlassReview.objects.exists()
    assert ExportJob.objects.filter(created_by__username="arthur").exists()


def test_seed_demo_fills_the_console_dashboard(committing_db: None, demo_mlflow: object) -> None:
    # when
    started = time.perf_counter()
    call_command("seed_demo", stdout=StringIO())
    took = time.perf_counter() - started

    # then: activity over two weeks, with timestamps that never go backwards in the ledger
    days = {ts[:10] for ts in Entry.objects.values_list("timestamp", flat=True)}
    assert len(days) >= 12
    stamps = list(Entry.objects.order_by("seq").values_list("timestamp", flat=True))
    assert stamps == sorted(stamps)
    kinds = {t.split(".")[0] for t in Entry.objects.values_list("event_type", flat=True).distinct()}
    assert {"deployment", "monitoring", "incident", "promotion", "access", "ledger"} <= kinds
    assert Checkpoint.objects.count() >= 3
    assert ExportJob.objects.filter(state="done", created_by__username="arthur").exists()
    from audit.models import LegalHold

    assert LegalHold.objects.filter(released_at__isnull=True, reference="LEGAL-2026-031").count() == 1
    assert BreakGlassReview.objects.filter(state="overdue").exists()
    assert ComplianceViolation.objects.filter(kind="overdue_break_glass_review").exists()
    assert verify_ledger().ok
    # and: every persona's dashboard has something waiting
    assert "never verified" not in _dashboard_of("alice") and "badge ok\">passed" in _dashboard_of("alice")
    assert "Promotions awaiting your approval (0)" not in _dashboard_of("priya")
    assert "Access requests awaiting you (0)" not in _dashboard_of("dana")
    assert "Grants expiring within 7 days (0)" not in _dashboard_of("omar")
    assert "Overdue break-glass reviews (0)" not in _dashboard_of("arthur")
    assert took < 60  # generous for a loaded CI machine; about 20 s on a laptop

    # and: running it again changes nothing
    before = (PromotionRequest.objects.count(), PendingEntry.objects.count() + Entry.objects.count())
    call_command("seed_demo", stdout=StringIO())
    assert (PromotionRequest.objects.count(), PendingEntry.objects.count() + Entry.objects.count()) == before
    assert ExportJob.objects.count() == 1


@pytest.mark.django_db
def test_seed_demo_refuses_without_debug_and_creates_nobody() -> None:
    # The demo's people share a published password: never in a deployment (DEBUG off).
    from django.core.management.base import CommandError

    with override_settings(DEBUG=False), pytest.raises(CommandError, match="only runs with DEBUG on"):
        call_command("seed_demo", stdout=StringIO())
    assert not User.objects.filter(username__in=["alice", "arthur", "omar"]).exists()
    assert not Entry.objects.exists() and not PendingEntry.objects.exists()
