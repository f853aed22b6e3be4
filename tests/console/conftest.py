"""Fixtures of the console's promotion pages: fraud-detector owned by ``people.requester`` and its v7
asked for staging or deployed through break-glass (the people and ``fraud``/``v7`` are the suite's:
tests/personas.py, tests/promotions.py). Plain helpers are in tests/console/helpers.py.
"""
from __future__ import annotations

import pytest

from governance import services
from governance.models import BreakGlassReview, Environment, ModelVersion, PromotionRequest, RegisteredModel
from tests.governance.helpers import make_deployed
from tests.personas import People

Envs = dict[str, Environment]


@pytest.fixture
def owned(fraud: RegisteredModel, people: People) -> RegisteredModel:
    fraud.owner = people.requester
    fraud.save(update_fields=["owner"])
    return fraud


@pytest.fixture
def pending(owned: RegisteredModel, v7: ModelVersion, envs: Envs, people: People) -> PromotionRequest:
    """v7, live in dev, asked for staging by its owner: pending, waiting for one ``approver``."""
    make_deployed(v7, envs["dev"], requested_by=people.requester, hours_ago=72)
    return services.promotion_request(
        user=people.requester, version=v7, environment=envs["staging"], reason="quarterly retrain"
    )


@pytest.fixture
def broken_glass(owned: RegisteredModel, v7: ModelVersion, envs: Envs, people: People) -> BreakGlassReview:
    make_deployed(v7, envs["dev"], requested_by=people.requester, hours_ago=72)
    request = services.promotion_break_glass(
        user=people.breakglass, version=v7, environment=envs["staging"], justification="fraud spike, hotfix"
    )
    return BreakGlassReview.objects.get(request=request)
