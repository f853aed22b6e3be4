"""API: ``POST /api/v1/break-glass-reviews/<id>/conclude`` (issue #13, item 8e)."""
from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from governance.models import BreakGlassReview, ComplianceViolation, PromotionRequest
from tests.access.helpers import grant
from tests.api.helpers import writes_no_ledger
from tests.personas import People
from tests.promotions import Gov

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_registry", "celery_eager")]

URL = "/api/v1/promotions"


def _broken(as_user: Any, people: People, gov: Gov, breakglass: User) -> int:
    grant(people.owner, breakglass, gov.model, "view_metadata")
    body = {"model": "fraud-detector", "version": 2, "environment": "production", "justification": "INC-4711"}
    response = as_user(breakglass).post(f"{URL}/break-glass", body, format="json")
    assert response.status_code == 201, response.content
    return int(response.json()["break_glass_review"]["id"])


def conclude_url(review_id: int) -> str:
    return f"/api/v1/break-glass-reviews/{review_id}/conclude"


def test_unjustified(as_user, people: People, gov: Gov, breakglass: User, model_risk) -> None:
    review_id = _broken(as_user, people, gov, breakglass)
    done = as_user(model_risk).post(conclude_url(review_id), {"outcome": "unjustified", "comment": "no incident"},
                                  format="json")
    assert done.status_code == 200, done.content
    assert done.json()["state"] == "unjustified"
    assert ComplianceViolation.objects.get().kind == "unjustified_break_glass"
    review = BreakGlassReview.objects.get(pk=review_id)
    assert review.reviewed_by == model_risk
    assert review.request.state == PromotionRequest.State.WITHDRAWN  # not deployed yet: withdrawn


@pytest.mark.parametrize("body", [{"outcome": "maybe", "comment": "x"}, {"comment": "x"},
                                  {"outcome": "unjustified", "comment": ""},
                                  {"outcome": "unjustified", "comment": "x", "rollback": False}])
def test_bad_input_is_a_400_and_writes_nothing(as_user, people: People, gov: Gov, breakglass: User, model_risk,
                                               body: dict[str, Any]) -> None:
    review_id = _broken(as_user, people, gov, breakglass)
    with writes_no_ledger():
        response = as_user(model_risk).post(conclude_url(review_id), body, format="json")
    assert response.status_code == 400
    assert BreakGlassReview.objects.get(pk=review_id).state == "open"


def test_the_user_who_broke_the_glass_cannot_conclude(as_user, people: People, gov: Gov, breakglass: User) -> None:
    review_id = _broken(as_user, people, gov, breakglass)
    with writes_no_ledger():
        response = as_user(breakglass).post(conclude_url(review_id), {"outcome": "justified", "comment": "ok"},
                                            format="json")
    assert response.status_code == 403
    assert not ComplianceViolation.objects.exists()
