"""The model page's ownership hand-over form: InfoSec or the current owner, with a reason; nobody else."""
from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import Entry, PendingEntry
from governance.models import RegisteredModel
from tests.console.helpers import client_for, messages_of
from tests.factories import RegisteredModelFactory
from tests.personas import People

pytestmark = pytest.mark.django_db


def _written() -> int:
    return PendingEntry.objects.count() + Entry.objects.count()


def test_infosec_hands_a_model_over_from_its_page(people: People) -> None:
    model = RegisteredModelFactory(name="fraud-detector", owner=None)
    client = client_for(people.infosec)
    assert "Hand over ownership" in client.get(reverse("console-model", args=[model.pk])).content.decode()

    response = client.post(reverse("console-model-owner", args=[model.pk]),
                           {"owner": "olga", "reason": "model inventory"}, follow=True)

    assert RegisteredModel.objects.get(pk=model.pk).owner == people.owner
    assert any("now owned by olga" in m for m in messages_of(response))


@pytest.mark.parametrize(("who", "body"), [
    ("approver", {"owner": "adam", "reason": "mine"}),  # sees every model, may not take one
    ("infosec", {"owner": "nobody", "reason": "typo"}),
    ("infosec", {"owner": "adam", "reason": ""}),
])
def test_taking_a_model_or_a_bad_hand_over_is_refused_and_writes_nothing(people: People, who: str, body: dict) -> None:
    model = RegisteredModelFactory(name="fraud-detector", owner=people.owner)
    before = _written()

    response = client_for(getattr(people, who)).post(reverse("console-model-owner", args=[model.pk]), body,
                                                   follow=True)

    assert response.status_code == 200 and messages_of(response)
    assert RegisteredModel.objects.get(pk=model.pk).owner == people.owner
    assert _written() == before
    if who == "approver":
        assert "Hand over ownership" not in client_for(people.approver).get(
            reverse("console-model", args=[model.pk])).content.decode()


def test_an_outsider_gets_a_404_and_nothing_changes(people: People) -> None:
    model = RegisteredModelFactory(name="fraud-detector", owner=people.owner)
    before = _written()

    response = client_for(people.outsider).post(reverse("console-model-owner", args=[model.pk]),
                                              {"owner": "otto", "reason": "mine"})

    assert response.status_code == 404
    assert RegisteredModel.objects.get(pk=model.pk).owner == people.owner and _written() == before
