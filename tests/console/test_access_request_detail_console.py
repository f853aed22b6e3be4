"""An access request's page: who asked, for whom and what, the approvals its rule needs and which are still
missing, and the decision forms for whoever may decide now. Unknown and invisible requests are one 404.

People and resources: tests/personas.py and tests/catalog.py (olga owns every dataset; rita asks).
"""
from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from access.models import AccessRequest
from access.services.access_requests import access_request_approve, access_request_create
from tests.catalog import Resources
from tests.console.helpers import client_for, messages_of
from tests.personas import People

pytestmark = pytest.mark.django_db


def ask(people: People, dataset: Any) -> AccessRequest:
    return access_request_create(actor=people.requester, resource=dataset, permission="read_data",
                                 duration_days=30, justification="features for the Q3 model")


def page(user: User, r: AccessRequest | int) -> Any:
    pk = r if isinstance(r, int) else r.pk
    return client_for(user).get(reverse("console-access-request", args=[pk]))


def test_anonymous_visitors_are_sent_to_the_login_page(db: None) -> None:
    response = Client().get(reverse("console-access-request", args=[1]))
    assert response.status_code == 302 and response["Location"].startswith("/console/login/?next=")


def test_the_requester_sees_their_request_and_what_is_missing_but_cannot_decide(
    people: People, res: Resources
) -> None:
    asked = ask(people, res.internal)
    response = page(people.requester, asked)
    assert response.status_code == 200
    html = response.content.decode()
    assert "features for the Q3 model" in html and "dataset:payments-internal" in html
    assert [(s["slot"], s["by"]) for s in response.context["slots"]] == [("owner", None)]
    assert "Still missing: the owner of dataset:payments-internal." in html
    assert not response.context["may_decide"]
    assert reverse("console-access-request-action", args=[asked.pk, "approve"]) not in html


def _unmasked(html: bytes) -> bytes:
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b'name="csrfmiddlewaretoken" value=""', html)


@pytest.mark.parametrize("who", ["outsider", "steward", "approver"])
def test_others_get_the_same_404_as_for_an_unknown_request(people: People, res: Resources, who: str) -> None:
    asked = ask(people, res.internal)
    invisible = page(getattr(people, who), asked)
    unknown = page(getattr(people, who), asked.pk + 1000)
    assert invisible.status_code == unknown.status_code == 404
    # The same page but for the id asked and the sign-out form's CSRF token (masked anew on every render).
    assert _unmasked(invisible.content) == _unmasked(
        unknown.content.replace(str(asked.pk + 1000).encode(), str(asked.pk).encode()))


def test_the_owner_sees_the_decision_forms_and_approves_from_the_page(people: People, res: Resources) -> None:
    asked = ask(people, res.internal)
    response = page(people.owner, asked)
    assert response.context["may_decide"]
    approve_url = reverse("console-access-request-action", args=[asked.pk, "approve"])
    assert approve_url in response.content.decode()
    done = client_for(people.owner).post(approve_url, {"comment": "ok for Q3", "next": response.wsgi_request.path},
                                         follow=True)
    assert done.redirect_chain[-1][0] == reverse("console-access-request", args=[asked.pk])
    assert messages_of(done) == [f"Access request #{asked.pk}: your approval is recorded."]
    assert done.context["r"].state == AccessRequest.State.APPROVED and not done.context["may_decide"]
    assert done.context["grant"] is not None


def test_restricted_data_needs_infosec_too_and_shows_who_approved(people: People, res: Resources) -> None:
    asked = ask(people, res.restricted)
    access_request_approve(actor=people.owner, access_request=asked, comment="owner ok")
    response = page(people.infosec, asked)
    slots = {s["slot"]: s["by"] for s in response.context["slots"]}
    assert slots == {"owner": people.owner, "infosec": None}
    assert [s["slot"] for s in response.context["missing"]] == ["infosec"]
    assert response.context["may_decide"]
    assert not page(people.owner, asked).context["may_decide"]  # the owner has given theirs


def test_the_list_links_to_the_page(people: People, res: Resources) -> None:
    asked = ask(people, res.internal)
    for user in (people.owner, people.requester):
        html = client_for(user).get(reverse("console-access-requests")).content.decode()
        assert f'href="{reverse("console-access-request", args=[asked.pk])}"' in html


def test_the_page_has_a_bounded_number_of_queries(
    people: People, res: Resources, django_assert_max_num_queries: Any
) -> None:
    asked = ask(people, res.pci)
    client = client_for(people.infosec)
    with django_assert_max_num_queries(8):
        assert client.get(reverse("console-access-request", args=[asked.pk])).status_code == 200
