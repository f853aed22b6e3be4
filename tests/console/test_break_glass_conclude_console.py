"""Console: a break-glass review concludes "unjustified" (issue #13, item 8e)."""
from __future__ import annotations

# Fixtures are imported from other test modules; test arguments naming them are not redefinitions.
from typing import Any

import pytest
from django.urls import reverse

from governance.models import BreakGlassReview, ComplianceViolation, PromotionRequest
from tests.console.helpers import client_for, messages_of
from tests.governance.helpers import entry_of, snapshot
from tests.personas import People

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow", "celery_eager")]


def post(user: Any, url: str, **data: str) -> Any:
    return client_for(user).post(url, data, follow=True)


def test_the_review_forms_offer_both_outcomes(broken_glass: BreakGlassReview, people: People) -> None:
    page = client_for(people.approver).get(reverse("console-breakglass")).content.decode()
    assert "Justified" in page and 'name="outcome" value="unjustified"' in page
    detail = client_for(people.approver).get(reverse("console-request", args=[broken_glass.request_id]))
    assert 'name="outcome" value="unjustified"' in detail.content.decode()


def test_a_reviewer_concludes_unjustified(broken_glass: BreakGlassReview, people: People) -> None:
    url = reverse("console-breakglass-approve", args=[broken_glass.pk])
    response = post(people.approver, url, outcome="unjustified", comment="no incident behind it")

    assert messages_of(response) == [
        f"Break-glass promotion #{broken_glass.request_id} is found unjustified: a compliance violation is recorded."]
    broken_glass.refresh_from_db()
    assert broken_glass.state == BreakGlassReview.State.UNJUSTIFIED
    assert ComplianceViolation.objects.get().kind == "unjustified_break_glass"
    # not deployed yet (the deploy task did not run): staging's policy withdraws it
    assert PromotionRequest.objects.get(pk=broken_glass.request_id).state == PromotionRequest.State.WITHDRAWN
    assert entry_of(broken_glass.request, "promotion.break_glass_found_unjustified").payload["reverted"] is True
    # concluded reviews leave the open list
    page = client_for(people.approver).get(reverse("console-breakglass"))
    assert list(page.context["page"].object_list) == []


def test_a_bad_outcome_is_a_message_and_writes_nothing(broken_glass: BreakGlassReview, people: People) -> None:
    before = snapshot()
    url = reverse("console-breakglass-approve", args=[broken_glass.pk])
    response = post(people.approver, url, outcome="whatever", comment="x")
    assert messages_of(response) == ["the outcome must be one of justified, unjustified"]
    assert snapshot() == before
