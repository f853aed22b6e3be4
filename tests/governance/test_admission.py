"""The admission check follows the current truth: the training data's classification and the break-glass review
are re-checked at every call, not taken from the time the promotion was approved."""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from audit.models import Entry, PendingEntry
from governance import selectors, services
from governance.models import BreakGlassReview, Environment, ModelVersion, PromotionRequest
from governance.selectors import AdmissionStatus
from tests.governance.helpers import FakeRegistry, make_deployed
from tests.personas import People

pytestmark = pytest.mark.django_db

Capture = Callable[..., AbstractContextManager[list[Callable[[], Any]]]]
Envs = dict[str, Environment]
NAME = "fraud-detector"


def admission(number: int, environment: str) -> selectors.Admission:
    return selectors.admission_check(model_name=NAME, version=number, environment_name=environment)


def ledger_rows() -> tuple[int, int]:
    return PendingEntry.objects.count(), Entry.objects.count()


@pytest.fixture
def live_in_production(v7: ModelVersion, envs: Envs, people: People) -> PromotionRequest:
    """v7 (internal data) is live in production (ceiling confidential) under an approved promotion."""
    make_deployed(v7, envs["dev"], requested_by=people.requester, hours_ago=72)
    make_deployed(v7, envs["staging"], requested_by=people.requester, hours_ago=48)
    return make_deployed(v7, envs["production"], requested_by=people.requester, hours_ago=2)


@pytest.fixture
def canary_in_production(v7: ModelVersion, envs: Envs, people: People) -> PromotionRequest:
    """v7 rolling out to production as a canary (ORM setup: the deploy task is not under test)."""
    return PromotionRequest.objects.create(
        version=v7, environment=envs["production"], requested_by=people.requester, reason="canary",
        state=PromotionRequest.State.DEPLOYING, strategy="canary", canary_steps=[5, 100], traffic_percent=5,
    )


@pytest.fixture
def break_glass_live(
    v7: ModelVersion, envs: Envs, people: People, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture,
) -> BreakGlassReview:
    """v7 pushed to production by break-glass (deployed by the task); its review is open."""
    with django_capture_on_commit_callbacks(execute=True):
        request = services.promotion_break_glass(user=people.breakglass, version=v7, environment=envs["production"],
                                                 justification="INC-4711: fraud spike")
    request.refresh_from_db()
    assert request.state == PromotionRequest.State.DEPLOYED
    return request.break_glass_review


# --- classification ------------------------------------------------------------------------------------------


def test_a_live_version_reclassified_above_the_ceiling_is_refused_with_the_reason(
    live_in_production: PromotionRequest, v7: ModelVersion, people: People,
) -> None:
    before = admission(7, "production")
    assert (before.allowed, before.status, before.mode) == (True, AdmissionStatus.APPROVED, "live")

    services.model_version_declare_classification(user=people.steward, version=v7, level="restricted",
                                                  reason="the card data turned out to hold PANs")
    rows = ledger_rows()
    after = admission(7, "production")

    assert (after.allowed, after.status, after.mode, after.promotion_id) == (
        False, AdmissionStatus.ABOVE_CEILING, None, live_in_production.pk)
    assert after.reason == "trained on restricted data, above production's ceiling confidential"
    assert ledger_rows() == rows  # a read: nothing written


def test_a_rollout_candidate_reclassified_above_the_ceiling_is_refused(
    canary_in_production: PromotionRequest, v7: ModelVersion, people: People,
) -> None:
    assert admission(7, "production").mode == "canary"
    services.model_version_declare_classification(user=people.steward, version=v7, level="restricted",
                                                  reason="reclassified")

    refused = admission(7, "production")

    assert (refused.allowed, refused.status, refused.promotion_id) == (
        False, AdmissionStatus.ABOVE_CEILING, canary_in_production.pk)
    assert refused.reason == "trained on restricted data, above production's ceiling confidential"


def test_a_version_within_the_ceiling_after_reclassification_is_still_admitted(
    live_in_production: PromotionRequest, v7: ModelVersion, people: People,
) -> None:
    services.model_version_declare_classification(user=people.steward, version=v7, level="confidential",
                                                  reason="reclassified")
    assert admission(7, "production").allowed  # confidential is production's ceiling itself


@pytest.mark.parametrize("level", ["", "unknown", "Restricted"])
def test_unknown_classification_is_admitted_only_under_a_restricted_ceiling(
    live_in_production: PromotionRequest, v7: ModelVersion, level: str,
) -> None:
    ModelVersion.objects.filter(pk=v7.pk).update(data_classification=level)  # uncatalogued training data

    production = admission(7, "production")
    staging = admission(7, "staging")  # staging's ceiling is restricted

    assert (production.allowed, production.status) == (False, AdmissionStatus.ABOVE_CEILING)
    assert production.reason == "trained on data of unknown classification, above production's ceiling confidential"
    assert (staging.allowed, staging.status) == (True, AdmissionStatus.APPROVED)


def test_an_environment_with_an_unknown_ceiling_admits_nothing(
    live_in_production: PromotionRequest, envs: Envs,
) -> None:
    Environment.objects.filter(pk=envs["production"].pk).update(max_data_classification="")

    refused = admission(7, "production")

    assert (refused.allowed, refused.status) == (False, AdmissionStatus.ABOVE_CEILING)
    assert refused.reason == "production's ceiling (none) is not a classification level"


# --- break-glass ---------------------------------------------------------------------------------------------


def test_a_break_glass_version_under_an_open_review_is_admitted_but_not_as_approved(
    break_glass_live: BreakGlassReview,
) -> None:
    answer = admission(7, "production")

    assert (answer.allowed, answer.mode, answer.promotion_id) == (True, "live", break_glass_live.request_id)
    assert answer.status == AdmissionStatus.BREAK_GLASS_REVIEW_OPEN != AdmissionStatus.APPROVED
    assert answer.review_due_at == break_glass_live.due_at
    assert answer.reason == f"live by break-glass; its review is due {break_glass_live.due_at:%Y-%m-%d %H:%M} UTC"
    assert "approved" not in answer.reason


def test_a_break_glass_version_past_its_review_deadline_is_refused_before_and_after_it_is_flagged(
    break_glass_live: BreakGlassReview,
) -> None:
    due = timezone.now() - timedelta(minutes=1)
    BreakGlassReview.objects.filter(pk=break_glass_live.pk).update(due_at=due)  # the beat task has not run yet
    rows = ledger_rows()

    unflagged = admission(7, "production")

    assert (unflagged.allowed, unflagged.status, unflagged.mode) == (
        False, AdmissionStatus.BREAK_GLASS_REVIEW_OVERDUE, None)
    assert unflagged.promotion_id == break_glass_live.request_id and unflagged.review_due_at == due
    assert unflagged.reason == f"live by break-glass, whose review was due {due:%Y-%m-%d %H:%M} UTC and is overdue"
    assert ledger_rows() == rows

    assert services.break_glass_reviews_flag_overdue() == 1
    flagged = admission(7, "production")
    assert (flagged.allowed, flagged.status) == (False, AdmissionStatus.BREAK_GLASS_REVIEW_OVERDUE)


def test_a_break_glass_version_flagged_overdue_stays_refused_even_if_the_deadline_moved(
    break_glass_live: BreakGlassReview,
) -> None:
    BreakGlassReview.objects.filter(pk=break_glass_live.pk).update(state=BreakGlassReview.State.OVERDUE)
    assert admission(7, "production").status == AdmissionStatus.BREAK_GLASS_REVIEW_OVERDUE


def test_a_late_review_admits_the_break_glass_version_again_as_approved(
    break_glass_live: BreakGlassReview, people: People,
) -> None:
    BreakGlassReview.objects.filter(pk=break_glass_live.pk).update(due_at=timezone.now() - timedelta(hours=1))
    services.break_glass_reviews_flag_overdue()
    services.break_glass_review_approve(user=people.infosec, review=break_glass_live, comment="justified by INC-4711")

    answer = admission(7, "production")

    assert (answer.allowed, answer.status, answer.review_due_at) == (True, AdmissionStatus.APPROVED, None)
    assert answer.reason == "live under an approved promotion"


def test_a_break_glass_promotion_without_a_review_is_refused(
    break_glass_live: BreakGlassReview,
) -> None:
    # Data drift: the review row is gone (it cannot be deleted through the product). Nothing vouches for it.
    BreakGlassReview.objects.filter(pk=break_glass_live.pk).delete()

    refused = admission(7, "production")

    assert (refused.allowed, refused.status) == (False, AdmissionStatus.BREAK_GLASS_REVIEW_OVERDUE)
    assert refused.reason == "live by break-glass, which has no review on record"


def test_reclassification_is_checked_before_the_break_glass_review(
    break_glass_live: BreakGlassReview, v7: ModelVersion, people: People,
) -> None:
    services.model_version_declare_classification(user=people.steward, version=v7, level="restricted",
                                                  reason="reclassified")
    assert admission(7, "production").status == AdmissionStatus.ABOVE_CEILING


# --- cost ----------------------------------------------------------------------------------------------------


def test_the_check_stays_within_two_queries(
    break_glass_live: BreakGlassReview, django_assert_num_queries: Any,
) -> None:
    with django_assert_num_queries(1):  # the live version, its classification, ceiling and review in one
        assert admission(7, "production").status == AdmissionStatus.BREAK_GLASS_REVIEW_OPEN
    with django_assert_num_queries(2):  # ... then the rollout lookup
        assert admission(8, "production").allowed is False
