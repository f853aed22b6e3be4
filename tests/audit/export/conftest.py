"""Fixtures of the export tests: a ledger with checkpoints and a model's promotion story.

Every test here exports under a temporary VAR_DIR and runs Celery tasks eagerly. The other
export fixtures (``export``, ``isolated_key``) are in tests/exports.py, the people in
tests/personas.py; plain helpers (bundles, verify.py runs) in tests/audit/export/helpers.py.
"""
from __future__ import annotations

from collections.abc import Callable

import pytest

from audit import ledger
from audit.ledger import Subject
from audit.services import checkpoints
from governance.models import Environment
from governance.services import compliance, promotions
from tests.audit.export.helpers import bulk
from tests.audit.integration.helpers import fill, note
from tests.factories import ModelVersionFactory, RegisteredModelFactory
from tests.governance.helpers import FakeRegistry, make_deployed
from tests.personas import People


@pytest.fixture(autouse=True)
def _exports_under_tmp(exports_under_tmp: None) -> None:
    """Every test here exports under a temporary VAR_DIR (tests/exports.py)."""


@pytest.fixture(autouse=True)
def _celery_eager(celery_eager: None) -> None:
    """Every test here runs tasks eagerly (tests/promotions.py)."""


@pytest.fixture
def history(db: None) -> None:
    """A ledger of ~2,600 entries over a few subjects, with three checkpoints along the way."""
    fill(40, subjects=4)
    checkpoints.checkpoint_create()
    bulk(2500, subjects=5)
    checkpoints.checkpoint_create()
    for i in range(30):
        note(f"late {i}", subject=f"model/{i % 3}")
    ledger.integrate()


# --- a model's promotion story, through the governance services -------------------------------------------------

REASON = "Quarterly retrain with the new merchant-category features"
COMMENT = "Validation report MRV-2026-114 reviewed; metrics within tolerance"


@pytest.fixture
def story(people: People, envs: dict[str, Environment], fake_registry: FakeRegistry,
          django_capture_on_commit_callbacks: Callable[..., object]) -> dict:
    """fraud-detector: v7 promoted to staging (approved, deployed), v8's request rejected, an out-of-band alias
    violation; plus another model's history and notes that a per-model export must leave out."""
    fill(25, subjects=3, prefix="before")
    fraud = RegisteredModelFactory(name="fraud-detector", description="Card fraud scoring")
    v7 = ModelVersionFactory(model=fraud, version=7, creator="ds-creator")
    v8 = ModelVersionFactory(model=fraud, version=8, creator="ds-creator")
    other = RegisteredModelFactory(name="chargeback-risk")
    other_v = ModelVersionFactory(model=other, version=1, creator="ds-creator")
    for version in (v7, v8, other_v):
        make_deployed(version, envs["dev"], requested_by=people.requester, hours_ago=72, live=False)
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        approved = promotions.promotion_request(actor=people.requester, version=v7, environment=envs["staging"],
                                                reason=REASON)
        promotions.promotion_approve(actor=people.approver, promotion=approved, comment=COMMENT)
    fill(10, subjects=2, prefix="between")
    rejected = promotions.promotion_request(actor=people.requester, version=v8, environment=envs["staging"],
                                            reason=REASON)
    promotions.promotion_reject(actor=people.approver, promotion=rejected, comment="the recall drop is not explained")
    unrelated = promotions.promotion_request(actor=people.requester, version=other_v, environment=envs["staging"],
                                             reason=REASON)
    compliance.violation_record(kind="out_of_band_alias", subject=Subject("registered_model", "fraud-detector"),
                                summary="staging alias moved to 9 outside governance", details={"alias": "staging"},
                                reverted=True)
    ledger.integrate()
    checkpoints.checkpoint_create()
    fill(5, subjects=2, prefix="after")
    return {"people": people, "envs": envs, "model": fraud, "approved": approved, "rejected": rejected,
            "unrelated": unrelated, "registry": fake_registry}
