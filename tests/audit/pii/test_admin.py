"""The admin shows personal data redacted to every reader.

Revealing it is the console's audited page, not an admin action.
"""
from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client

from access.roles import AUDITOR, INFOSEC
from audit import ledger
from audit.models import Entry, PendingEntry
from tests.audit.integration.helpers import note
from tests.audit.pii.helpers import PLANTED, register_event
from tests.factories import SuperuserFactory, UserFactory

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


@pytest.mark.parametrize("roles", [[AUDITOR], [INFOSEC]])
def test_no_reader_gets_a_reveal_action(client: Client, entries: list[Entry], roles: list[str]) -> None:
    client.force_login(UserFactory(roles=roles))
    assert "reveal_personal_data" not in client.get("/admin/audit/entry/").content.decode()


@pytest.mark.parametrize("make", [lambda: UserFactory(roles=[AUDITOR]), lambda: UserFactory(roles=[INFOSEC]),
                                  lambda: SuperuserFactory()])
def test_posting_the_old_reveal_action_reveals_and_records_nothing(client: Client, entries: list[Entry],
                                                                    make: object) -> None:
    client.force_login(make())  # type: ignore[operator]
    response = client.post("/admin/audit/entry/", {
        "action": "reveal_personal_data", ACTION_CHECKBOX_NAME: ["0"], "confirm": "yes", "reason": "r"})
    for value in PLANTED:
        assert value not in response.content.decode()
    # nothing recorded but the read of the list the POST answered with (ledger.accessed; none for the superuser,
    # whom the admin sends to its login)
    assert set(PendingEntry.objects.values_list("event_type", flat=True)) <= {"ledger.accessed"}
    ledger.integrate()
    assert not Entry.objects.filter(event_type="privacy.pii_revealed").exists()


def test_data_subject_keys_are_listed_without_keys(client: Client, entries: list[Entry]) -> None:
    client.force_login(UserFactory(roles=[INFOSEC]))
    response = client.get("/admin/audit/datasubjectkey/")
    assert response.status_code == 200 and "user:900042" in response.content.decode()
    assert client.get("/admin/audit/datasubjectkey/add/").status_code == 403
