"""People by name in the console (with their ``user:<id>`` reference kept for auditors), loaded in bulk."""
from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from audit.ledger import Actor, Subject, integrate, record
from audit.models import Entry
from audit.services.retention import legal_hold_create
from tests.console.helpers import client_for
from tests.personas import make_user
from web.console.base import display_names

pytestmark = pytest.mark.django_db


def note_by(user: Any, text: str = "note") -> None:
    with transaction.atomic():
        record(event_type="ledger.note_added", actor=Actor.user(user), subject=Subject("registered_model", "m"),
               payload={"text": text, "reference": "T-1"})


def test_display_names_prefers_the_full_name_and_skips_what_is_not_a_known_person(people):
    people.owner.first_name, people.owner.last_name = "Olga", "Owner"
    people.owner.save()
    names = display_names([f"user:{people.owner.pk}", f"user:{people.steward.pk}", "user:999999", "system:x",
                           "user:abc"])
    assert names == {f"user:{people.owner.pk}": "Olga Owner", f"user:{people.steward.pk}": "sam"}


def test_the_ledger_shows_actors_by_name_with_their_reference(people):
    # given
    people.owner.first_name, people.owner.last_name = "Olga", "Owner"
    people.owner.save()
    note_by(people.owner)
    integrate()
    # when
    html = client_for(people.auditor).get("/console/ledger/").content.decode()
    # then
    assert f'Olga Owner <span class="muted mono">(user:{people.owner.pk})</span>' in html


def test_the_entry_page_names_its_actor(people):
    note_by(people.steward)
    integrate()
    entry = Entry.objects.get(event_type="ledger.note_added")
    html = client_for(people.infosec).get(f"/console/ledger/{entry.seq}/").content.decode()
    assert f'sam <span class="muted mono">(user:{people.steward.pk})</span>' in html


def test_names_are_loaded_in_one_query_whatever_the_number_of_people(people, django_assert_max_num_queries):
    note_by(people.owner)
    integrate()
    client = client_for(people.auditor)
    client.get("/console/ledger/")  # warm the session
    with django_assert_max_num_queries(8):
        client.get("/console/ledger/")
    for i in range(30):
        note_by(make_user(f"person{i}"))
    integrate()
    with django_assert_max_num_queries(8):
        html = client.get("/console/ledger/").content.decode()
    assert "person29 <span" in html and "person0 <span" in html


def test_the_request_trail_names_its_actors(pending, people):
    html = client_for(people.infosec).get(f"/console/approvals/requests/{pending.pk}/").content.decode()
    assert f'rita <span class="muted mono">(user:{people.requester.pk})</span>' in html


def test_a_legal_hold_names_its_data_subject(people):
    legal_hold_create(actor=people.infosec, data_subject=f"user:{people.owner.pk}", reason="litigation L-1")
    html = client_for(people.auditor).get("/console/legal-holds/").content.decode()
    assert f'olga <span class="muted mono">(user:{people.owner.pk})</span>' in html
