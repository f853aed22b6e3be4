"""The admin shows personal data redacted; InfoSec reveals it with an audited action."""
from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client

from access.roles import AUDITOR, INFOSEC
from audit import ledger
from audit.models import Entry
from tests.factories import SuperuserFactory, UserFactory
from tests.integration.helpers import note
from tests.pii.conftest import EMAIL, NAME, PLANTED, register_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def entries() -> list[Entry]:
    register_event("900042")
    note("plain")
    ledger.integrate()
    return list(Entry.objects.order_by("seq"))


@pytest.mark.parametrize("roles", [[AUDITOR], [INFOSEC]])
def test_the_entry_page_shows_redacted_values_to_every_reader(
    client: Client, entries: list[Entry], roles: list[str]
) -> None:
    client.force_login(UserFactory(roles=roles))
    html = client.get("/admin/audit/entry/0/change/").content.decode()
    assert "[redacted]" in html and "commitment" not in html
    for value in PLANTED:
        assert value not in html
    assert "[redacted]" not in client.get("/admin/audit/entry/1/change/").content.decode()


def test_only_infosec_gets_the_reveal_action(client: Client, entries: list[Entry]) -> None:
    client.force_login(UserFactory(roles=[AUDITOR]))
    assert "reveal_personal_data" not in client.get("/admin/audit/entry/").content.decode()
    client.force_login(SuperuserFactory())
    assert "reveal_personal_data" not in client.get("/admin/audit/entry/").content.decode()
    client.force_login(UserFactory(roles=[INFOSEC]))
    assert "reveal_personal_data" in client.get("/admin/audit/entry/").content.decode()


def test_an_auditor_posting_the_action_gets_nothing(client: Client, entries: list[Entry]) -> None:
    client.force_login(UserFactory(roles=[AUDITOR]))
    response = client.post("/admin/audit/entry/", {
        "action": "reveal_personal_data", ACTION_CHECKBOX_NAME: ["0"], "confirm": "yes", "reason": "r"})
    for value in PLANTED:
        assert value not in response.content.decode()
    assert ledger.integrate() == 0


def test_infosec_reveals_with_a_reason_and_it_is_recorded(client: Client, entries: list[Entry]) -> None:
    officer = UserFactory(roles=[INFOSEC])
    client.force_login(officer)
    data = {"action": "reveal_personal_data", ACTION_CHECKBOX_NAME: ["0", "1"]}

    # the first step asks for a reason and reveals nothing
    response = client.post("/admin/audit/entry/", data)
    assert response.status_code == 200 and 'name="reason"' in response.content.decode()
    assert NAME not in response.content.decode()
    assert ledger.integrate() == 0

    # with the reason: the values, not cached, and one reveal recorded (entry 1 has no personal data)
    response = client.post("/admin/audit/entry/", {**data, "confirm": "yes", "reason": "ticket SEC-3"})
    html = response.content.decode()
    assert response.status_code == 200
    assert NAME in html and EMAIL in html
    assert "no-store" in response["Cache-Control"]
    assert ledger.integrate() == 1
    revealed = Entry.objects.get(event_type="privacy.pii_revealed")
    assert revealed.actor_id == str(officer.pk) and revealed.payload["reason"] == "ticket SEC-3"


def test_data_subject_keys_are_listed_without_keys(client: Client, entries: list[Entry]) -> None:
    client.force_login(UserFactory(roles=[INFOSEC]))
    response = client.get("/admin/audit/datasubjectkey/")
    assert response.status_code == 200 and "user:900042" in response.content.decode()
    assert client.get("/admin/audit/datasubjectkey/add/").status_code == 403
