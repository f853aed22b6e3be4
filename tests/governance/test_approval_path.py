"""The approval path's combined reads agree with the separate ones they replace (issue #21: fewer queries
per approval), on the cases that matter: the freeze read with the lock, and the previous environment read
with what is live there."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from governance import selectors
from governance.errors import Frozen
from governance.models import Environment, FreezeWindow, ModelVersion, PromotionRequest
from governance.services import promotions
from tests.factories import ModelVersionFactory
from tests.governance.helpers import make_deployed
from tests.personas import People

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]

Envs = dict[str, Environment]


def ask(people: People, version: ModelVersion, environment: Environment) -> PromotionRequest:
    return promotions.promotion_request(actor=people.requester, version=version, environment=environment,
                                        reason="better recall")


@pytest.fixture
def in_dev(v7: ModelVersion, envs: Envs, people: People) -> ModelVersion:
    """v7 has been deployed in dev for three days."""
    make_deployed(v7, envs["dev"], requested_by=people.requester, hours_ago=72)
    return v7


@pytest.mark.parametrize(("starts", "ends", "frozen"), [
    (-2, -1, False),  # over
    (-1, 1, True),  # active
    (1, 2, False),  # not yet
])
def test_the_freeze_read_with_the_lock_agrees_with_active_freeze(
    in_dev: ModelVersion, envs: Envs, people: People, starts: int, ends: int, frozen: bool
) -> None:
    request = ask(people, in_dev, envs["staging"])
    now = timezone.now()
    FreezeWindow.objects.create(environment=envs["staging"], starts_at=now + timedelta(hours=starts),
                                ends_at=now + timedelta(hours=ends), reason="quarter close", created_by=people.infosec)
    # a window elsewhere never freezes staging
    FreezeWindow.objects.create(environment=envs["production"], starts_at=now - timedelta(hours=1),
                                ends_at=now + timedelta(hours=1), reason="elsewhere", created_by=people.infosec)

    locked, refusal = promotions._lock_for_approval(request, now)

    active = selectors.active_freeze(environment=envs["staging"], at=now)
    assert locked.pk == request.pk and (refusal is not None) == frozen == (active is not None)
    if active is not None:
        with pytest.raises(Frozen) as expected:
            promotions._check_not_frozen(envs["staging"], now)
        assert str(refusal) == str(expected.value)


def test_the_previous_environment_with_what_is_live_there_agrees_with_the_two_reads(
    in_dev: ModelVersion, envs: Envs, people: People
) -> None:
    other = ModelVersionFactory(model=in_dev.model, version=9)
    unrelated = ModelVersionFactory(version=1)  # another model, live in staging
    make_deployed(unrelated, envs["staging"], requested_by=people.requester)
    cases = [
        (in_dev, envs["dev"]),  # no previous environment
        (in_dev, envs["staging"]),  # previous: dev, where in_dev is live
        (other, envs["staging"]),  # previous: dev, where another version of the model is live
        (in_dev, envs["production"]),  # previous: staging, where nothing of the model is live
    ]
    for version, environment in cases:
        previous, live_version_id, since = selectors.previous_environment_with_live(
            environment, model_id=version.model_id)
        expected = selectors.previous_environment(environment)
        live = selectors.live_version(model_id=version.model_id, environment=expected) if expected else None
        assert previous == expected
        assert (live_version_id, since) == ((live.version_id, live.since) if live else (None, None))
