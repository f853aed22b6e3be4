"""``GET /api/v1/admission`` answers with the current truth: reclassified training data and break-glass reviews
are re-checked at every call; the answer keeps ``allowed``/``reason`` and adds ``status`` and ``review_due_at``."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from audit.models import PendingEntry
from governance.models import BreakGlassReview, ModelVersion, PromotionRequest
from tests.access.helpers import grant
from tests.catalog import Resources
from tests.governance.helpers import make_deployed
from tests.personas import People
from tests.promotions import Gov

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_registry", "celery_eager")]

URL = "/api/v1/admission"
IN_PRODUCTION = {"model": "fraud-detector", "version": 1, "environment": "production"}


@pytest.fixture
def client(token_for: Any, people: People, gov: Gov) -> Any:
    """A serving runtime's token (promotions:read) whose service account may see the model."""
    client = token_for(["promotions:read"])
    grant(people.owner, client.service_account.user, gov.model, "deploy_to")
    return client


@pytest.fixture
def v1_live_in_production(gov: Gov, people: People) -> PromotionRequest:
    """v1 (confidential data) live in production (ceiling confidential) under an approved promotion."""
    return make_deployed(gov.v1, gov.production, requested_by=people.owner, hours_ago=2)


def break_glass(request: PromotionRequest, due_in: timedelta) -> BreakGlassReview:
    """Turn ``request`` into a break-glass promotion with an open review due ``due_in`` from now (ORM setup)."""
    PromotionRequest.objects.filter(pk=request.pk).update(is_break_glass=True)
    return BreakGlassReview.objects.create(request=request, due_at=timezone.now() + due_in)


def test_an_approved_live_version_answers_approved(client: Any, v1_live_in_production: PromotionRequest) -> None:
    body = client.get(URL, IN_PRODUCTION).json()
    assert body == {"allowed": True, "reason": "live under an approved promotion", "mode": "live",
                    "promotion_id": v1_live_in_production.pk, "status": "approved", "review_due_at": None}


def test_a_version_reclassified_above_the_ceiling_is_refused_with_the_reason(
    client: Any, gov: Gov, v1_live_in_production: PromotionRequest,
) -> None:
    ModelVersion.objects.filter(pk=gov.v1.pk).update(data_classification="restricted")  # lineage raised it
    before = PendingEntry.objects.count()

    response = client.get(URL, IN_PRODUCTION)

    assert response.status_code == 200
    assert response.json() == {
        "allowed": False, "reason": "trained on restricted data, above production's ceiling confidential",
        "mode": None, "promotion_id": v1_live_in_production.pk, "status": "classification_above_ceiling",
        "review_due_at": None}
    assert PendingEntry.objects.count() == before


def test_a_break_glass_version_under_open_review_is_admitted_with_its_deadline_not_as_approved(
    client: Any, v1_live_in_production: PromotionRequest,
) -> None:
    review = break_glass(v1_live_in_production, timedelta(hours=20))

    body = client.get(URL, IN_PRODUCTION).json()

    assert (body["allowed"], body["mode"], body["status"]) == (True, "live", "break_glass_review_open")
    assert body["review_due_at"] == review.due_at.isoformat().replace("+00:00", "Z")
    assert body["reason"].startswith("live by break-glass; its review is due ")


def test_a_break_glass_version_whose_review_is_overdue_is_refused(
    client: Any, v1_live_in_production: PromotionRequest,
) -> None:
    break_glass(v1_live_in_production, -timedelta(minutes=5))  # past due, not flagged by the beat task yet

    body = client.get(URL, IN_PRODUCTION).json()

    assert (body["allowed"], body["mode"], body["status"]) == (False, None, "break_glass_review_overdue")
    assert body["promotion_id"] == v1_live_in_production.pk and body["reason"].endswith("and is overdue")


def test_the_re_checks_cost_no_extra_query(
    client: Any, v1_live_in_production: PromotionRequest, django_assert_num_queries: Any,
) -> None:
    break_glass(v1_live_in_production, timedelta(hours=20))
    client.get(URL, IN_PRODUCTION)  # last_used_at is written at most once a minute
    # token lookup + the service account's roles + visibility + live deployment (with classification and review)
    with django_assert_num_queries(4):
        assert client.get(URL, IN_PRODUCTION).json()["status"] == "break_glass_review_open"


def test_the_schema_documents_the_new_fields(as_user: Any, res: Resources) -> None:
    schema = as_user(None).get("/api/v1/schema/?format=json").json()
    output = schema["components"]["schemas"]["AdmissionOutput"]
    assert {"allowed", "reason", "promotion_id", "mode", "status", "review_due_at"} <= set(output["properties"])
    statuses = schema["components"]["schemas"]["AdmissionOutputStatusEnum"]["enum"]
    assert set(statuses) == {"approved", "break_glass_review_open", "break_glass_review_overdue",
                             "classification_above_ceiling", "not_approved"}
