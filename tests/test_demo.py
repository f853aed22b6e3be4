"""The README's first command loads this demo: it must run end to end on a fresh database."""
from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

from access.models import AccessRequest, Dataset, Grant, Lineage, ReviewCampaign
from audit.verification import verify_ledger
from governance import registry
from governance.models import BreakGlassReview, ComplianceViolation, LiveDeployment, PromotionRequest


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
    call_command("seed_demo", stdout=out)

    # then: logins printed, every state of the story present, MLflow aliases match governance
    assert "governance-demo" in out.getvalue()
    states = set(PromotionRequest.objects.values_list("state", flat=True))
    assert {"deployed", "rejected", "rolled_back", "pending"} <= states
    assert PromotionRequest.objects.filter(strategy="canary", state="deployed").exists()
    assert BreakGlassReview.objects.filter(state="open").exists()
    assert ComplianceViolation.objects.filter(kind="out_of_band_alias", reverted=True).exists()
    live = {ld.environment.mlflow_alias: ld.version.version for ld in LiveDeployment.objects.select_related(
        "environment", "version") if ld.model.name == "fraud-detector"}
    assert registry.aliases("fraud-detector") == live
    assert registry.aliases("chargeback-risk") == {}
    assert Dataset.objects.filter(effective_level="restricted").exists()  # the card-PAN vault
    assert Lineage.objects.filter(version__model__name="fraud-detector").exists()
    assert Grant.objects.filter(revoked_at__isnull=True).count() >= 4
    assert AccessRequest.objects.filter(state="pending", needs_infosec=True).exists()
    assert ReviewCampaign.objects.filter(state="open").exists()
    assert verify_ledger().ok

    # and: running it again changes nothing
    before = PromotionRequest.objects.count()
    call_command("seed_demo", stdout=StringIO())
    assert PromotionRequest.objects.count() == before
