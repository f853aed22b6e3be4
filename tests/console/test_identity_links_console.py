"""Console page of MLflow identity links (``governance/console/views_identity_links.py``).

InfoSec links an MLflow identity to an account and removes links, each with a reason; auditors
read; anybody else gets the 403 page with no data. ``governance.services`` decides; a refusal is
a message with nothing written. The MLflow identity is personal data: on the page, never in a
message or a log line.
"""
from __future__ import annotations

import logging
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import Entry, PendingEntry
from governance import services
from governance.models import IdentityLink
from tests.console.helpers import client_for, messages_of
from tests.factories import ModelVersionFactory, RegisteredModelFactory
from tests.personas import People, make_user

pytestmark = pytest.mark.django_db

PAGE = "/console/identity-links/"
NEW = "/console/identity-links/new/"
IDENTITY = "carol@corp.example"


def remove_url(link: IdentityLink) -> str:
    return f"/console/identity-links/{link.pk}/remove/"


def written() -> dict[str, Any]:
    return {"ledger": PendingEntry.objects.count() + Entry.objects.count(),
            "links": list(IdentityLink.objects.order_by("pk").values("pk", "mlflow_identity", "account_id"))}


def link(people: People, identity: str = IDENTITY) -> IdentityLink:
    return services.identity_link_create(user=people.infosec, mlflow_identity=identity, account=people.requester,
                                         reason="SSO-authenticated MLflow")


def form(people: People, **overrides: str) -> dict[str, str]:
    return {"mlflow_identity": IDENTITY, "account": people.requester.username, "reason": "ticket SEC-88",
            **overrides}


def test_infosec_sees_the_page_in_the_navigation_and_links_an_identity(people: People) -> None:
    version = ModelVersionFactory(model=RegisteredModelFactory(name="fraud"), version=1, creator=IDENTITY)
    client = client_for(people.infosec)
    assert 'href="/console/identity-links/"' in client.get("/console/").content.decode()

    response = client.post(NEW, form(people), follow=True)

    assert response.status_code == 200
    [made] = IdentityLink.objects.all()
    assert (made.mlflow_identity, made.account, made.reason) == (IDENTITY, people.requester, "ticket SEC-88")
    assert messages_of(response) == [f"The MLflow identity is linked to {people.requester.username}; versions it "
                                     "created now name them as their registrant."]
    assert IDENTITY in response.content.decode()  # listed on the page
    version.refresh_from_db()
    assert version.registered_by == people.requester


def test_infosec_removes_a_link_with_a_reason(people: People) -> None:
    made = link(people)
    response = client_for(people.infosec).post(remove_url(made), {"reason": "carol left"}, follow=True)
    assert response.status_code == 200 and not IdentityLink.objects.exists()
    assert '"carol left"' in PendingEntry.objects.get(event_type="mlflow.identity_unlinked").payload_json


def test_an_auditor_reads_but_is_offered_no_form_and_cannot_write(people: People) -> None:
    made = link(people)
    client = client_for(people.auditor)
    page = client.get(PAGE).content.decode()
    assert IDENTITY in page and NEW not in page and remove_url(made) not in page
    assert 'href="/console/identity-links/"' in client.get("/console/").content.decode()
    before = written()
    assert client.post(NEW, form(people, mlflow_identity="x@corp.example")).status_code == 403
    assert client.post(remove_url(made), {"reason": "x"}).status_code == 403
    assert written() == before


@pytest.mark.parametrize("who", ["outsider", "requester", "owner", "steward"])
def test_nobody_else_sees_or_changes_links(people: People, who: str) -> None:
    made = link(people)
    client = client_for(getattr(people, who))
    response = client.get(PAGE)
    assert response.status_code == 403 and IDENTITY not in response.content.decode()
    assert 'href="/console/identity-links/"' not in client.get("/console/").content.decode()
    before = written()
    assert client.post(NEW, form(people, mlflow_identity="x@corp.example")).status_code == 403
    assert client.post(remove_url(made), {"reason": "x"}).status_code == 403
    assert written() == before


def test_anonymous_visitors_are_sent_to_sign_in(people: People) -> None:
    response = client_for(None).get(PAGE)
    assert response.status_code == 302 and "/login/" in response["Location"]
    before = written()
    client_for(None).post(NEW, form(people))
    assert written() == before


def test_writes_need_the_csrf_token(people: People) -> None:
    made = link(people)
    client = client_for(people.infosec, csrf=True)
    before = written()
    assert client.post(NEW, form(people, mlflow_identity="x@corp.example")).status_code == 403
    assert client.post(remove_url(made), {"reason": "x"}).status_code == 403
    assert written() == before


@pytest.mark.parametrize(("change", "message"), [
    ({"account": "nobody-like-this"}, "No active account has this username; nothing was linked."),
    ({"account": ""}, "No active account has this username; nothing was linked."),
    ({"mlflow_identity": ""}, "an MLflow identity (the registry's user id) is required"),
    ({"mlflow_identity": "carol\nadmin"}, "an MLflow identity has at most 256 printable characters"),
    ({"reason": "  "}, None),
])
def test_bad_input_is_a_message_and_writes_nothing(people: People, change: dict[str, str],
                                                   message: str | None) -> None:
    before = written()
    response = client_for(people.infosec).post(NEW, form(people, **change), follow=True)
    assert response.status_code == 200
    [shown] = messages_of(response)
    assert message is None or shown == message
    assert written() == before


def test_a_linked_identity_cannot_be_linked_again_and_the_message_does_not_name_it(people: People) -> None:
    link(people)
    before = written()
    response = client_for(people.infosec).post(NEW, form(people, account=people.owner.username), follow=True)
    [shown] = messages_of(response)
    assert "already linked" in shown and IDENTITY not in shown
    assert written() == before


def test_removing_needs_a_reason_and_an_existing_link(people: People) -> None:
    made = link(people)
    before = written()
    client = client_for(people.infosec)
    client.post(remove_url(made), {"reason": ""})
    assert client.post(f"/console/identity-links/{made.pk + 99}/remove/", {"reason": "x"}).status_code == 404
    assert written() == before


def test_the_page_has_a_bounded_number_of_queries(people: People) -> None:
    link(people, "a@corp.example")
    client = client_for(people.auditor)
    client.get(PAGE)
    with CaptureQueriesContext(connection) as few:
        client.get(PAGE)
    for n in range(10):
        link(people, f"user-{n}@corp.example")
    with CaptureQueriesContext(connection) as many:
        assert client.get(PAGE).content.decode().count("@corp.example") == 11
    assert len(many) == len(few)


def test_the_identity_is_never_logged(people: People, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = client_for(people.infosec)
    client.post(NEW, form(people, mlflow_identity="first@corp.example"), follow=True)
    client.post(NEW, form(people, mlflow_identity="first@corp.example"), follow=True)
    client_for(people.outsider).post(NEW, form(people, mlflow_identity="other@corp.example"))
    client.get(PAGE)
    assert "corp.example" not in caplog.text


def test_an_inactive_account_is_refused(people: People) -> None:
    gone = make_user("gone", "model-owner")
    gone.is_active = False
    gone.save()
    before = written()
    client_for(people.infosec).post(NEW, form(people, account="gone"), follow=True)
    assert written() == before
