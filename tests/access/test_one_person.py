"""A person is one principal, whatever account they act through (issue #13, item 4).

The tracker's attack: InfoSec ``ines`` cannot grant herself ``read_data`` on the PCI dataset, but could
create ``ines-bot``, grant it that access and certify the grant herself in an access review. Every
"not yourself" rule of access governance now counts a person's service accounts as the person: each
attack below is refused and writes nothing (``writes_nothing``: no grant, request, decision, guardian
row or ledger entry).
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from access.errors import NotPermitted
from access.models import AccessRequest, Grant, ReviewItem, ServiceAccount
from access.selectors import requests_awaiting
from access.services.access_requests import access_request_approve, access_request_create, access_request_reject
from access.services.reviews import review_campaign_start, review_item_decide
from access.services.service_accounts import service_account_create
from tests.access.helpers import grant, writes_nothing
from tests.catalog import Resources
from tests.personas import People, fresh

pytestmark = pytest.mark.django_db



def bot(owner: User, name: str, *roles: str) -> User:
    """A service account created through the service by ``owner``, and its user (with roles if given)."""
    account = service_account_create(actor=owner, name=name)
    user = account.user
    if roles:
        user.groups.add(*Group.objects.filter(name__in=roles))
    return fresh(user)


def ask(user: User, resource: object, permission: str = "read_data", **kwargs: object) -> AccessRequest:
    return access_request_create(
        actor=user, resource=resource, permission=permission, duration_days=10,  # type: ignore[arg-type]
        justification="features for the Q3 fraud model", **kwargs,  # type: ignore[arg-type]
    )


# --- grants ------------------------------------------------------------------------------------------------


def test_infosec_cannot_grant_its_own_service_account(people: People, res: Resources) -> None:
    ines_bot = bot(people.infosec, "ines-bot")
    with writes_nothing(), pytest.raises(NotPermitted) as info:
        grant(people.infosec, ines_bot, res.pci)
    assert info.value.code == "self_grant"
    assert "you own this service account" in str(info.value)


def test_a_service_account_cannot_grant_its_owner(people: People, res: Resources) -> None:
    ines_bot = bot(people.infosec, "ines-bot", "infosec")
    with writes_nothing(), pytest.raises(NotPermitted) as info:
        grant(ines_bot, people.infosec, res.pci)
    assert info.value.code == "self_grant"


def test_granting_a_group_that_the_granters_service_account_belongs_to_is_refused(
    people: People, res: Resources
) -> None:
    crew = Group.objects.create(name="pci-crew")
    bot(people.infosec, "ines-bot").groups.add(crew)
    with writes_nothing(), pytest.raises(NotPermitted) as info:
        grant(people.infosec, crew, res.pci)
    assert info.value.code == "self_grant"
    # another InfoSec may
    assert grant(people.infosec2, crew, res.pci).group == crew


def test_another_infosec_may_grant_a_service_account(people: People, res: Resources) -> None:
    ines_bot = bot(people.infosec, "ines-bot")
    assert grant(people.infosec2, ines_bot, res.pci).user == ines_bot


# --- access requests ---------------------------------------------------------------------------------------


def test_the_owner_cannot_approve_a_request_for_their_own_service_account(people: People, res: Resources) -> None:
    # given InfoSec filing, for the dataset owner's service account, access to the owner's dataset
    olga_bot = bot(people.owner, "olga-bot")
    account = ServiceAccount.objects.get(user=olga_bot)
    request = ask(people.infosec2, res.confidential, for_service_account=account)

    assert request not in requests_awaiting(people.owner)
    for decide in (access_request_approve, access_request_reject):
        with writes_nothing(), pytest.raises(NotPermitted) as info:
            decide(actor=people.owner, access_request=request, comment="my own bot, fine")
        assert info.value.code == "self_approval"

    # InfoSec stands in for the owner who cannot decide
    assert request in requests_awaiting(people.infosec)
    access_request_approve(actor=people.infosec, access_request=request, comment="checked the pipeline's need")
    assert Grant.objects.get(request=request).user == olga_bot


def test_a_request_filed_for_your_own_service_account_is_not_yours_to_approve(people: People, res: Resources) -> None:
    ines_bot = bot(people.infosec, "ines-bot")
    request = ask(people.infosec, res.pci, for_service_account=ServiceAccount.objects.get(user=ines_bot))
    assert request not in requests_awaiting(people.infosec)
    with writes_nothing(), pytest.raises(NotPermitted) as info:
        access_request_approve(actor=people.infosec, access_request=request, comment="ok")
    assert info.value.code == "self_approval"


def test_a_service_account_cannot_approve_its_owners_request(people: People, res: Resources) -> None:
    rita_bot = bot(people.requester, "rita-bot", "infosec")
    request = ask(people.requester, res.pci)
    assert request not in requests_awaiting(rita_bot)
    with writes_nothing(), pytest.raises(NotPermitted) as info:
        access_request_approve(actor=rita_bot, access_request=request, comment="ok")
    assert info.value.code == "self_approval"


def test_one_person_fills_one_approval_slot_whatever_account(people: People, res: Resources) -> None:
    # given a restricted dataset: its owner and InfoSec must both approve; the owner's bot is InfoSec
    olga_bot = bot(people.owner, "olga-bot", "infosec")
    request = ask(people.requester, res.restricted)
    access_request_approve(actor=people.owner, access_request=request, comment="owner: yes")

    assert request not in requests_awaiting(olga_bot)
    with writes_nothing(), pytest.raises(NotPermitted) as info:
        access_request_approve(actor=olga_bot, access_request=request, comment="infosec: also yes")
    assert info.value.code == "already_approved"
    assert not Grant.objects.filter(request=request).exists()


# --- access reviews ----------------------------------------------------------------------------------------


def _deadline() -> object:
    return timezone.now() + timedelta(days=14)


def test_the_tracker_attack_infosec_cannot_certify_its_service_accounts_grant(people: People, res: Resources) -> None:
    # given ines-bot holding read_data on the PCI data (granted by another InfoSec)
    ines_bot = bot(people.infosec, "ines-bot")
    granted = grant(people.infosec2, ines_bot, res.pci)
    campaign = review_campaign_start(actor=people.infosec, name="Q3 review", deadline=_deadline())
    item = ReviewItem.objects.get(campaign=campaign, grant=granted)

    # when ines, InfoSec, certifies it herself: refused, and nothing is decided
    for decision in ("certified", "revoked"):
        with writes_nothing(), pytest.raises(NotPermitted) as info:
            review_item_decide(actor=people.infosec, review_item=item, decision=decision)
        assert info.value.code == "self_review"
    # another InfoSec may
    review_item_decide(actor=people.infosec2, review_item=item, decision="certified")


def test_a_group_grant_is_not_reviewed_by_a_member_nor_by_an_owner_of_a_member(people: People, res: Resources) -> None:
    crew = Group.objects.create(name="pci-crew")
    bot(people.infosec, "ines-bot").groups.add(crew)
    granted = grant(people.infosec2, crew, res.pci)
    campaign = review_campaign_start(actor=people.infosec2, name="Q3 review", deadline=_deadline())
    item = ReviewItem.objects.get(campaign=campaign, grant=granted)
    with writes_nothing(), pytest.raises(NotPermitted) as info:
        review_item_decide(actor=people.infosec, review_item=item, decision="certified")
    assert info.value.code == "self_review"


def test_an_owner_does_not_review_a_grant_to_their_own_service_account(people: People, res: Resources) -> None:
    olga_bot = bot(people.owner, "olga-bot")
    granted = grant(people.infosec, olga_bot, res.confidential)
    campaign = review_campaign_start(actor=people.infosec2, name="Q3 review", deadline=_deadline())
    item = ReviewItem.objects.get(campaign=campaign, grant=granted)

    assert item.reviewer_id == people.infosec2.pk  # the campaign's creator, not the owner
    with writes_nothing(), pytest.raises(NotPermitted):
        review_item_decide(actor=people.owner, review_item=item, decision="certified")
