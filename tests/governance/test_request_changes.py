"""``promotion_request_changes``: an approver sends a pending request back to its requester.

Same rules as approving (an approver of one of the policy's groups, not the
requester nor the version's creator, pending requests only); the request ends in
the terminal ``changes_requested`` state and ``promotion.changes_requested`` is
recorded with the approver's group and comment. A refusal writes nothing.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.contrib.auth.models import User

from governance import services
from governance.errors import GovernanceError, InvalidState, NotPermitted
from governance.models import Environment, ModelVersion, PromotionRequest
from tests.governance.helpers import actor_of, entry_of, event_types, make_deployed, snapshot
from tests.personas import People

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]

State = PromotionRequest.State
COMMENT = "The model card does not describe the new merchant features; please add them"


@contextmanager
def refused(exc_type: type[GovernanceError], code: str) -> Iterator[None]:
    before = snapshot()
    with pytest.raises(GovernanceError) as info:
        yield
    assert type(info.value) is exc_type, f"{type(info.value).__name__}: {info.value}"
    assert info.value.code == code, info.value
    assert snapshot() == before


@pytest.fixture
def pending(v7: ModelVersion, envs: dict[str, Environment], people: People) -> PromotionRequest:
    """v7 (live in dev) asked for staging by the requester: pending, waiting for an ``approver``."""
    make_deployed(v7, envs["dev"], requested_by=people.requester, hours_ago=72)
    return services.promotion_request(
        user=people.requester, version=v7, environment=envs["staging"], reason="quarterly retrain"
    )


def changes(user: User, request: PromotionRequest, comment: str = COMMENT) -> PromotionRequest:
    return services.promotion_request_changes(user=user, request=request, comment=comment)


def test_an_approver_requests_changes_and_the_request_is_closed(pending: PromotionRequest, people: People) -> None:
    # when
    done = changes(people.approver, pending)
    # then
    pending.refresh_from_db()
    assert done.state == pending.state == State.CHANGES_REQUESTED
    assert pending.decided_at is not None and pending.finished_at is not None
    assert not pending.is_open
    entry = entry_of(pending, "promotion.changes_requested")
    assert entry.actor == actor_of(people.approver)
    assert entry.payload == {"model": "fraud-detector", "version": 7, "environment": "staging",
                             "group": "approver", "comment": COMMENT}
    assert event_types(pending) == ["promotion.requested", "promotion.changes_requested"]


def test_the_requester_can_file_a_new_request_afterwards(
    pending: PromotionRequest, people: People, envs: dict[str, Environment]
) -> None:
    changes(people.approver, pending)
    again = services.promotion_request(
        user=people.requester, version=pending.version, environment=envs["staging"], reason="model card extended"
    )
    assert again.state == State.PENDING and again.pk != pending.pk


def test_the_requester_cannot_request_changes_on_their_own_request(pending: PromotionRequest, people: People) -> None:
    with refused(NotPermitted, "self_approval"):
        changes(people.requester, pending)


def test_the_account_that_registered_the_version_cannot_request_changes(
    pending: PromotionRequest, people: People
) -> None:
    ModelVersion.objects.filter(pk=pending.version_id).update(registered_by=people.creator)
    with refused(NotPermitted, "self_approval"):
        changes(people.creator, pending)


@pytest.mark.parametrize("who", ["outsider", "model_risk", "steward", "breakglass"])
def test_only_the_policys_groups_may_request_changes(pending: PromotionRequest, people: People, who: str) -> None:
    with refused(NotPermitted, "not_in_required_group"):
        changes(getattr(people, who), pending)


@pytest.mark.parametrize("comment", ["", "   "])
def test_a_comment_is_required(pending: PromotionRequest, people: People, comment: str) -> None:
    with refused(GovernanceError, "required"):
        changes(people.approver, pending, comment)


def test_a_too_long_comment_is_refused(pending: PromotionRequest, people: People) -> None:
    with refused(GovernanceError, "too_long"):
        changes(people.approver, pending, "x" * 5001)


@pytest.mark.parametrize("state", [State.APPROVED, State.REJECTED, State.WITHDRAWN, State.CHANGES_REQUESTED,
                                   State.DEPLOYED])
def test_only_pending_requests(pending: PromotionRequest, people: People, state: str) -> None:
    PromotionRequest.objects.filter(pk=pending.pk).update(state=state)
    with refused(InvalidState, "invalid_state"):
        changes(people.approver, pending)


def test_a_request_sent_back_cannot_then_be_approved(pending: PromotionRequest, people: People) -> None:
    changes(people.approver, pending)
    with refused(InvalidState, "invalid_state"):
        services.promotion_approve(user=people.approver2, request=pending, comment="looks fine")
