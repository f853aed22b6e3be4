"""No personal data in a hashed ledger body (#13 item 7): usernames, names, emails and IPs are either
declared personal in the event registry (committed, erasable) or written as account references ``user:<id>``.

Two nets: a static walk of every registered event type's fields, and the whole demo ledger searched for
every known username, full name, email and IP address.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import override_settings

from audit.event_types import registry
from audit.models import Entry, PendingEntry
from governance import registry as mlflow_registry

# Field names that hold a person in every event type where they appear.
PERSONAL_NAMES = {"username", "email", "full_name", "creator", "remote_addr", "ip", "ip_address", "mlflow_identity",
                  "personal_tags", "personal_changes"}
# Fields that name an account, written only as "user:<id>" (or "group:<name>") by their services.
ACCOUNT_REFERENCES = {"owner", "previous_owner", "principal", "account", "registered_by", "data_subject"}
# The webhook engineer replaces this event (its caller IP); audited there.
OWNED_ELSEWHERE = {"mlflow.webhook_refused"}
IP = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b|\b[0-9a-f]{1,4}(?::[0-9a-f]{0,4}){2,7}\b", re.IGNORECASE)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")


def test_every_field_that_can_hold_a_person_is_personal_or_an_account_reference() -> None:
    unsafe = []
    for event_type in registry.all():
        if event_type.name in OWNED_ELSEWHERE:
            continue
        for name, spec in event_type.fields.items():
            if name in PERSONAL_NAMES and not spec.pii:
                unsafe.append(f"{event_type.name}.{name}")
            if name in ACCOUNT_REFERENCES and spec.pii:
                unsafe.append(f"{event_type.name}.{name} (an account reference needs no commitment)")
    assert unsafe == []


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _account_reference_fields_hold_references(entry: Any) -> list[str]:
    payload = json.loads(entry.payload_json)
    bad = []
    for name in ACCOUNT_REFERENCES & set(payload):
        value = payload[name]
        if value is not None and not re.fullmatch(r"(user|group):[\w.@+-]+|anonymous", str(value)):
            bad.append(f"#{entry.seq if hasattr(entry, 'seq') else '?'} {entry.event_type}.{name}={value!r}")
    return bad


@pytest.fixture
def demo_mlflow(tmp_path: Path) -> Iterator[None]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow_registry._client.cache_clear()
    with override_settings(MLFLOW_TRACKING_URI=uri, MLFLOW_REGISTRY_URI=uri, VAR_DIR=tmp_path, DEBUG=True):
        yield
    mlflow_registry._client.cache_clear()


def test_the_demo_ledger_holds_no_username_name_email_or_ip_in_a_hashed_body(
    committing_db: None, demo_mlflow: None
) -> None:
    # given the whole demo story, MLflow owner tags and creators included
    call_command("seed_demo", stdout=StringIO())
    people = list(User.objects.all())
    assert len(people) >= 9
    words = set()
    for person in people:
        words.add(person.username)
        if person.email:
            words.add(person.email)
        full = f"{person.first_name} {person.last_name}".strip()
        if full:
            words.add(full)
    patterns = [re.compile(rf"(?<![\w-]){re.escape(w)}(?![\w-])", re.IGNORECASE) for w in sorted(words)]

    # when every hashed body is searched
    leaks = []
    bad_references = []
    rows = [*Entry.objects.order_by("seq"), *PendingEntry.objects.all()]
    for entry in rows:
        if entry.event_type in OWNED_ELSEWHERE:
            continue
        # actor and subject ids are hashed too; a service account's subject is its (machine) name
        hashed = [entry.actor_id, entry.subject_id, *_strings(json.loads(entry.payload_json))]
        for text in hashed:
            found = [p.pattern for p in patterns if p.search(text)]
            if found or EMAIL.search(text) or IP.search(text):
                leaks.append(f"{entry.event_type}: {text[:120]!r}")
        bad_references += _account_reference_fields_hold_references(entry)

    # then: none
    assert leaks == []
    assert bad_references == []
    assert Entry.objects.filter(event_type="model.version_registered").exists()
    assert Entry.objects.filter(event_type="model.owner_set").count() == 2
