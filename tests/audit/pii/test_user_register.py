"""access.services.roles.user_register: the account and its ledger entry, with the personal data sealed."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from access.errors import ServiceError
from access.roles import INFOSEC
from access.services.roles import user_register
from audit import ledger, pii
from audit.ledger import Actor
from audit.models import DataSubjectKey, Entry, PendingEntry, PiiValue
from tests.audit.pii.helpers import EMAIL, NAME, USERNAME
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_register_creates_the_user_and_records_sealed_personal_data() -> None:
    admin = UserFactory(roles=[INFOSEC])

    user = user_register(actor=Actor.user(admin), username=USERNAME, email=EMAIL, full_name=NAME,
                         password="a long enough passphrase 7f3a")

    assert (user.username, user.email, user.first_name, user.last_name) == (USERNAME, EMAIL, "Zebulon",
                                                                           "Quixote-Vantablack")
    assert user.check_password("a long enough passphrase 7f3a")
    ledger.integrate()
    entry = Entry.objects.get()
    assert entry.event_type == "auth.user_registered"
    assert (entry.actor_id, entry.subject_type, entry.subject_id) == (str(admin.pk), "user", str(user.pk))
    assert all(pii.is_reference(v) for v in entry.payload.values())
    assert USERNAME not in entry.payload_json and EMAIL not in entry.payload_json
    assert DataSubjectKey.objects.get().data_subject == f"user:{user.pk}"
    assert pii.reveal(actor=admin, seq=0, reason="r") == {"username": USERNAME, "email": EMAIL, "full_name": NAME}


def test_without_password_email_or_name() -> None:
    user = user_register(actor=Actor.system("provisioning"), username="solo7f3a")
    assert not user.has_usable_password()
    ledger.integrate()
    assert list(Entry.objects.get().payload) == ["username"]
    assert PiiValue.objects.count() == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"username": " "}, "username is required"),
        ({"username": "bad name!"}, "username must be"),
        ({"username": "ok7f3a", "email": "not-an-email"}, "email address is not valid"),
        ({"username": "ok7f3a", "full_name": "x" * 301}, "full name is longer"),
        ({"username": "ok7f3a", "password": "123"}, "password is not acceptable"),
        ({"username": "taken7f3a"}, "already taken"),
        ({"username": "Erased-17"}, "reserved for erased accounts"),
    ],
)
def test_bad_input_is_refused_and_nothing_written(kwargs: dict[str, str], message: str) -> None:
    UserFactory(username="taken7f3a")
    with pytest.raises(ServiceError, match=message) as exc:
        user_register(actor=Actor.system("t"), **kwargs)
    for value in kwargs.values():  # messages never repeat the values
        if len(value) > 3:
            assert value not in str(exc.value)
    assert User.objects.count() == 1
    assert PendingEntry.objects.count() == PiiValue.objects.count() == DataSubjectKey.objects.count() == 0


def test_a_failing_caller_takes_back_the_user_and_the_personal_rows() -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        user_register(actor=Actor.system("t"), username=USERNAME, email=EMAIL)
        raise Boom

    assert not User.objects.filter(username=USERNAME).exists()
    assert PendingEntry.objects.count() == PiiValue.objects.count() == DataSubjectKey.objects.count() == 0
