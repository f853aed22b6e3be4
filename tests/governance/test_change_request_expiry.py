"""Change requests expire: a proposal left pending past ``CHANGE_REQUEST_EXPIRY_DAYS`` can no longer be approved.

The beat task marks it expired through ``change_request_expire`` (``governance_change.expired``);
an approval that comes first, of one old enough but not yet marked, is refused and writes nothing.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from audit.ledger import integrate
from audit.models import Entry, PendingEntry
from governance import change_requests as cr
from governance import tasks
from governance.errors import InvalidState
from governance.models import Environment, GovernanceChangeRequest, PromotionPolicy
from tests.personas import People

pytestmark = pytest.mark.django_db

State = GovernanceChangeRequest.State
TIGHTER = {"approvals": [{"group": "model-risk", "count": 1}, {"group": "infosec", "count": 2}],
           "gates": [{"type": "soak", "hours": 48}, {"type": "data_classification"}]}


@pytest.fixture
def production() -> Environment:
    return Environment.objects.get(name="production")


def _propose(people: People, production: Environment) -> GovernanceChangeRequest:
    return cr.change_request_create(user=people.infosec, environment=production, kind="policy_set",
                                    change={"rules": TIGHTER}, reason="tighten production")


def _age(request: GovernanceChangeRequest, days: float) -> GovernanceChangeRequest:
    GovernanceChangeRequest.objects.filter(pk=request.pk).update(created_at=timezone.now() - timedelta(days=days))
    return GovernanceChangeRequest.objects.get(pk=request.pk)


def _rules() -> Any:
    return PromotionPolicy.objects.get(environment__name="production", model=None).rules


def _writes() -> tuple[int, int, list[dict[str, Any]], Any]:
    return (PendingEntry.objects.count(), Entry.objects.count(),
            list(GovernanceChangeRequest.objects.order_by("pk").values()), _rules())


def test_the_default_expiry_is_seven_days() -> None:
    assert django_settings.CHANGE_REQUEST_EXPIRY_DAYS == 7
    beat = django_settings.CELERY_BEAT_SCHEDULE["governance-change-requests-expire"]
    assert beat["task"] == "governance.tasks.expire_change_requests"


def test_approving_an_expired_request_not_yet_marked_is_refused_and_writes_nothing(
    people: People, production: Environment
) -> None:
    request = _age(_propose(people, production), days=7.01)
    before = _writes()

    with pytest.raises(InvalidState) as info:
        cr.change_request_approve(user=people.infosec2, request=request, comment="lgtm")

    assert info.value.code == "expired" and "propose the change again" in str(info.value)
    assert _writes() == before  # not applied, not approved, nothing in the ledger


def test_a_request_within_its_age_is_still_approved(people: People, production: Environment) -> None:
    request = _age(_propose(people, production), days=6.9)
    assert cr.change_request_approve(user=people.infosec2, request=request, comment="lgtm").state == State.APPLIED
    assert _rules() == TIGHTER


def test_the_beat_task_expires_old_requests_once_and_records_it(
    people: People, production: Environment
) -> None:
    old = _age(_propose(people, production), days=8)
    young = cr.change_request_create(user=people.infosec, environment=production, kind="environment_update",
                                     change={"description": "payments"}, reason="wording")

    assert tasks.expire_change_requests.apply().get() == 1
    assert tasks.expire_change_requests.apply().get() == 0  # idempotent

    old.refresh_from_db()
    young.refresh_from_db()
    assert (old.state, young.state) == (State.EXPIRED, State.PENDING)
    assert old.decided_at is not None and old.decided_by is None
    integrate()
    entries = list(Entry.objects.filter(event_type="governance_change.expired"))
    assert len(entries) == 1
    entry = entries[0]
    assert entry.actor == {"type": "system", "id": "scheduler"}
    assert entry.payload == {"change_request_id": old.pk, "kind": "policy_set", "environment": "production",
                             "model": None, "proposed_by": f"user:{people.infosec.pk}", "after_days": 7}
    # No personal data: the proposer is a reference, never a name.
    assert people.infosec.username not in str(entry.payload)

    before = _writes()
    with pytest.raises(InvalidState):
        cr.change_request_approve(user=people.infosec2, request=old, comment="lgtm")
    assert _writes() == before


def test_the_service_leaves_decided_and_young_requests_alone(people: People, production: Environment) -> None:
    request = _propose(people, production)
    assert cr.change_request_expire(request=request) is False
    cr.change_request_withdraw(user=people.infosec, request=request, reason="not needed")
    _age(request, days=30)
    before = _writes()
    assert cr.change_request_expire(request=request) is False
    assert _writes() == before


def test_the_expiry_is_configurable(people: People, production: Environment, settings: Any) -> None:
    settings.CHANGE_REQUEST_EXPIRY_DAYS = 1
    request = _age(_propose(people, production), days=2)
    assert cr.change_request_expire(request=request) is True
    request.refresh_from_db()
    assert request.state == State.EXPIRED

