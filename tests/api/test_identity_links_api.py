"""``/api/v1/identity-links``: InfoSec links MLflow identities to accounts; auditors read; nobody else, no token."""
from __future__ import annotations

import logging
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from audit.models import Entry, PendingEntry
from governance.models import IdentityLink
from governance.services import identity_links
from tests.api.helpers import problem_of
from tests.factories import ModelVersionFactory, RegisteredModelFactory
from tests.personas import People, make_user

pytestmark = pytest.mark.django_db

URL = "/api/v1/identity-links"
IDENTITY = "carol@corp.example"


def written() -> dict[str, Any]:
    return {"ledger": PendingEntry.objects.count() + Entry.objects.count(),
            "links": list(IdentityLink.objects.order_by("pk").values("pk", "mlflow_identity", "account_id"))}


def link(people: People, identity: str = IDENTITY) -> IdentityLink:
    return identity_links.identity_link_create(actor=people.infosec, mlflow_identity=identity, account=people.requester,
                                               reason="SSO-authenticated MLflow")


def body(people: People, **overrides: Any) -> dict[str, Any]:
    return {"mlflow_identity": IDENTITY, "account": people.requester.username, "reason": "ticket SEC-88",
            **overrides}


class TestInfoSecManagesLinks:
    def test_infosec_links_an_identity_and_the_versions_it_created_get_a_registrant(self, as_user, people):
        version = ModelVersionFactory(model=RegisteredModelFactory(name="fraud"), version=1, creator=IDENTITY)
        response = as_user(people.infosec).post(URL, body(people), format="json")
        assert response.status_code == 201, response.content
        out = response.json()
        assert out == {**out, "mlflow_identity": IDENTITY, "account": people.requester.username,
                       "account_ref": f"user:{people.requester.pk}", "reason": "ticket SEC-88",
                       "created_by": people.infosec.username}
        version.refresh_from_db()
        assert (version.registered_by_id, version.registered_via) == (people.requester.pk, "identity_link")
        [entry] = PendingEntry.objects.filter(event_type="mlflow.identity_linked")
        assert IDENTITY not in entry.payload_json  # personal data only as a commitment

    def test_infosec_and_auditors_read_links(self, as_user, people):
        made = link(people)
        for who in (people.infosec, people.auditor):
            listed = as_user(who).get(URL)
            assert listed.status_code == 200
            assert [r["mlflow_identity"] for r in listed.json()["results"]] == [IDENTITY]
            assert as_user(who).get(f"{URL}/{made.pk}").json()["account"] == people.requester.username

    def test_infosec_removes_a_link_with_a_reason(self, as_user, people):
        made = link(people)
        response = as_user(people.infosec).delete(f"{URL}/{made.pk}", {"reason": "carol left"}, format="json")
        assert response.status_code == 204, response.content
        assert not IdentityLink.objects.exists()
        [entry] = PendingEntry.objects.filter(event_type="mlflow.identity_unlinked")
        assert '"carol left"' in entry.payload_json

    def test_the_list_is_paged_in_a_bounded_number_of_queries(self, as_user, people):
        link(people, "a@corp.example")
        client = as_user(people.auditor)
        client.get(URL)
        with CaptureQueriesContext(connection) as few:
            assert client.get(URL).status_code == 200
        for n in range(8):
            link(people, f"user-{n}@corp.example")
        with CaptureQueriesContext(connection) as many:
            assert len(client.get(URL).json()["results"]) == 9
        assert len(many) == len(few)


class TestTheAttacks:
    @pytest.mark.parametrize("who", ["outsider", "requester", "owner", "steward", "auditor"])
    def test_nobody_but_infosec_links_an_identity(self, as_user, people, who):
        before = written()
        response = as_user(getattr(people, who)).post(URL, body(people), format="json")
        assert response.status_code == 403
        assert "only InfoSec" in problem_of(response)["detail"]
        assert written() == before

    @pytest.mark.parametrize("who", ["outsider", "requester", "owner", "steward"])
    def test_nobody_but_infosec_and_auditors_sees_links(self, as_user, people, who):
        made = link(people)
        client = as_user(getattr(people, who))
        for url in (URL, f"{URL}/{made.pk}"):
            response = client.get(url)
            assert response.status_code == 403
            assert IDENTITY not in response.content.decode()

    @pytest.mark.parametrize("who", ["outsider", "requester", "auditor"])
    def test_nobody_but_infosec_removes_a_link(self, as_user, people, who):
        made = link(people)
        before = written()
        response = as_user(getattr(people, who)).delete(f"{URL}/{made.pk}", {"reason": "x"}, format="json")
        assert response.status_code == 403
        assert written() == before

    def test_anonymous_is_401(self, as_user, people):
        assert as_user(None).get(URL).status_code in (401, 403)
        assert as_user(None).post(URL, body(people), format="json").status_code in (401, 403)

    def test_every_token_is_refused_even_an_infosec_owned_one(self, token_for, people):
        from access.services.service_accounts import service_account_create

        made = link(people)
        account = service_account_create(actor=people.infosec, name="infosec-bot")
        for client in (token_for(["promotions:read", "promotions:write", "access:read", "access:write", "models:read"]),
                       token_for(["access:read"], account=account)):
            before = written()
            assert client.get(URL).status_code == 403
            assert client.get(f"{URL}/{made.pk}").status_code == 403
            assert client.post(URL, body(people, mlflow_identity="x@corp.example"), format="json").status_code == 403
            assert client.delete(f"{URL}/{made.pk}", {"reason": "x"}, format="json").status_code == 403
            assert written() == before

    def test_a_session_write_without_csrf_is_refused(self, people):
        made = link(people)
        client = APIClient(enforce_csrf_checks=True)
        client.force_login(people.infosec)
        before = written()
        assert client.post(URL, body(people, mlflow_identity="x@corp.example"), format="json").status_code == 403
        assert client.delete(f"{URL}/{made.pk}", {"reason": "x"}, format="json").status_code == 403
        assert written() == before

    def test_a_second_link_of_a_linked_identity_is_a_conflict(self, as_user, people):
        link(people)
        before = written()
        response = as_user(people.infosec).post(URL, body(people, account=people.owner.username), format="json")
        assert response.status_code == 409
        assert IDENTITY not in problem_of(response)["detail"]
        assert written() == before


class TestBadInput:
    @pytest.mark.parametrize(("change", "field"), [
        ({"account": "nobody-like-this"}, "account"),
        ({"mlflow_identity": ""}, "mlflow_identity"),
        ({"mlflow_identity": "x" * 257}, "mlflow_identity"),
        ({"mlflow_identity": 5}, "mlflow_identity"),
        ({"reason": ""}, "reason"),
        ({"reason": ["a"]}, "reason"),
        ({"extra": 1}, "extra"),
    ])
    def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(self, as_user, people, change, field):
        before = written()
        response = as_user(people.infosec).post(URL, body(people, **change), format="json")
        assert response.status_code == 400, response.content
        assert field in {e["field"] for e in problem_of(response)["errors"]}
        assert written() == before

    def test_control_characters_in_an_identity_are_a_400(self, as_user, people):
        before = written()
        response = as_user(people.infosec).post(URL, body(people, mlflow_identity="carol\nadmin"), format="json")
        assert response.status_code == 400
        assert written() == before

    def test_an_inactive_account_is_refused(self, as_user, people):
        gone = make_user("gone", "model-owner")
        gone.is_active = False
        gone.save()
        before = written()
        response = as_user(people.infosec).post(URL, body(people, account="gone"), format="json")
        assert response.status_code == 400
        assert written() == before

    def test_removal_needs_a_reason_and_an_existing_link(self, as_user, people):
        made = link(people)
        before = written()
        client = as_user(people.infosec)
        assert client.delete(f"{URL}/{made.pk}", {}, format="json").status_code == 400
        assert client.delete(f"{URL}/{made.pk}", {"reason": "  "}, format="json").status_code == 400
        assert client.delete(f"{URL}/{made.pk + 99}", {"reason": "x"}, format="json").status_code == 404
        assert written() == before

    def test_the_identity_is_never_logged(self, as_user, people, caplog):
        caplog.set_level(logging.DEBUG)
        link(people, "first@corp.example")
        as_user(people.infosec).post(URL, body(people, mlflow_identity="first@corp.example"), format="json")
        as_user(people.infosec).post(URL, body(people, mlflow_identity="bad\x01@corp.example"), format="json")
        as_user(people.outsider).post(URL, body(people, mlflow_identity="third@corp.example"), format="json")
        assert "corp.example" not in caplog.text
