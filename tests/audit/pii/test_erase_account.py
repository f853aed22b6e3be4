"""Erasing data subject user:<pk> also anonymises and disables the account (auth_user), in one transaction."""
from __future__ import annotations

import logging
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from access.roles import INFOSEC
from access.services.roles import user_register
from audit import ledger, pii
from audit.ledger import Actor
from audit.models import DataSubjectKey, Entry
from audit.services.retention import retention_run
from audit.verification import verify_ledger
from tests.audit.pii.helpers import EMAIL, NAME, PLANTED, SYSTEM, USERNAME, all_rows_text, register_event
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a long enough passphrase 7f3a"


@pytest.fixture
def person() -> User:
    return user_register(actor=SYSTEM, username=USERNAME, email=EMAIL, full_name=NAME, password=PASSWORD)


def _erased_payload() -> dict[str, Any]:
    ledger.integrate()
    payload: dict[str, Any] = Entry.objects.get(event_type="privacy.subject_erased").payload
    return payload


def test_erasure_anonymises_and_disables_the_account(
    person: User, infosec: User, caplog: pytest.LogCaptureFixture
) -> None:
    # given: a person who can log in, and whose name and email are in auth_user
    assert authenticate(username=USERNAME, password=PASSWORD) == person
    client = Client()
    client.force_login(person)
    assert client.get("/").wsgi_request.user.is_authenticated
    caplog.set_level(logging.DEBUG)

    # when
    count = pii.data_subject_erase(actor=Actor.user(infosec), data_subject=f"user:{person.pk}", reason="DP-7")

    # then: the account holds nothing of the person and cannot be used
    assert count == 3
    person.refresh_from_db()
    assert (person.username, person.first_name, person.last_name, person.email) == (f"erased-{person.pk}", "", "",
                                                                                    "")
    assert not person.has_usable_password() and not person.is_active
    assert authenticate(username=USERNAME, password=PASSWORD) is None
    assert authenticate(username=f"erased-{person.pk}", password=PASSWORD) is None
    assert client.get("/").wsgi_request.user.is_anonymous  # the open session is dead too
    # and: the ledger says so, and still verifies
    assert _erased_payload() == {"data_subject": f"user:{person.pk}", "reason": "DP-7", "values": 3,
                                 "account_anonymised": True}
    assert verify_ledger().ok
    # and: the old username, email and name are nowhere: not in the database, not in the logs
    stored = all_rows_text()
    for value in PLANTED:
        assert value not in stored
        assert value not in caplog.text


def test_a_subject_that_is_not_a_user_still_erases(contacted_type: Any) -> None:
    # an account with the same number is not touched: only user:<pk> names an account
    bystander = UserFactory()
    ledger.record(event_type="test.contacted", actor=SYSTEM, subject=ledger.Subject("model", "fraud"),
                  payload={"model": "fraud", "contact": EMAIL}, data_subject=f"customer:{bystander.pk}")
    before = list(User.objects.order_by("pk").values_list("pk", "username", "email", "is_active", "password"))

    assert pii.data_subject_erase(actor=SYSTEM, data_subject=f"customer:{bystander.pk}", reason="r") == 1

    assert _erased_payload()["account_anonymised"] is False
    assert list(User.objects.order_by("pk").values_list("pk", "username", "email", "is_active", "password")) == before
    assert DataSubjectKey.objects.get().key is None


def test_a_user_subject_without_an_account_still_erases() -> None:
    register_event("987654")  # personal data of user:987654, but no such account

    assert pii.data_subject_erase(actor=SYSTEM, data_subject="user:987654", reason="r") == 3

    assert _erased_payload()["account_anonymised"] is False


def test_a_taken_erased_name_does_not_block_the_erasure(person: User) -> None:
    squatter = UserFactory(username=f"erased-{person.pk}")

    pii.data_subject_erase(actor=SYSTEM, data_subject=f"user:{person.pk}", reason="r")

    person.refresh_from_db()
    squatter.refresh_from_db()
    assert person.username.startswith(f"erased-{person.pk}-") and not person.is_active
    assert squatter.username == f"erased-{person.pk}" and squatter.is_active


def test_a_failure_after_anonymising_leaves_both_account_and_key_as_they_were(
    person: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the ledger write fails after the account was changed
    def broken_record(**kwargs: Any) -> None:
        raise ledger.LedgerError("simulated ledger failure")

    monkeypatch.setattr(pii, "record", broken_record)

    with pytest.raises(ledger.LedgerError, match="simulated"):
        pii.data_subject_erase(actor=SYSTEM, data_subject=f"user:{person.pk}", reason="r")

    # then: nothing half-applied
    person.refresh_from_db()
    assert (person.username, person.email, person.is_active) == (USERNAME, EMAIL, True)
    assert person.check_password(PASSWORD)
    assert DataSubjectKey.objects.get().key is not None


def test_erasing_twice_does_not_touch_the_account_again(person: User) -> None:
    pii.data_subject_erase(actor=SYSTEM, data_subject=f"user:{person.pk}", reason="r")
    # an administrator later reactivates the (anonymous) account under a new name
    User.objects.filter(pk=person.pk).update(username="back7f3a", is_active=True)

    with pytest.raises(pii.AlreadyErased):
        pii.data_subject_erase(actor=SYSTEM, data_subject=f"user:{person.pk}", reason="again")

    person.refresh_from_db()
    assert (person.username, person.is_active) == ("back7f3a", True)


def test_the_retention_job_anonymises_the_account_too(person: User) -> None:
    # given: the person's account was closed, and the retention of their data has run out since
    from access.services.accounts import user_account_close_by_system

    user_account_close_by_system(component="offboarding", account=person, reason="left the company")
    report = retention_run(now=timezone.now() + timedelta(days=8 * 365))

    # then: erased through data_subject_erase, account included
    assert report.erased == [f"user:{person.pk}"]
    person.refresh_from_db()
    assert (person.username, person.email, person.first_name, person.is_active) == (f"erased-{person.pk}", "", "",
                                                                                    False)
    assert _erased_payload()["account_anonymised"] is True
    assert Entry.objects.filter(event_type="privacy.retention_erased").count() == 1


def test_the_command_anonymises_the_account(person: User) -> None:
    UserFactory(username="dpo", roles=[INFOSEC])
    out = StringIO()
    call_command("erase_data_subject", "--subject", f"user:{person.pk}", "--reason", "DP-1", "--actor", "dpo",
                 stdout=out)
    person.refresh_from_db()
    assert person.username == f"erased-{person.pk}" and not person.is_active
    for value in PLANTED:
        assert value not in out.getvalue()


def test_erasure_takes_the_console_preferences_and_a_failure_keeps_both(
    person: User, infosec: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from web.models import ConsolePreference
    from web.preferences import preference_update

    preference_update(actor=person, user=person, time_zone="Europe/Paris")
    other = UserFactory()
    preference_update(actor=other, user=other, time_zone="Asia/Kolkata")

    # when the erasure's ledger entry fails, after the receiver ran: nothing is erased, the preference stays
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("ledger unavailable")

    monkeypatch.setattr(pii, "record", broken)
    with pytest.raises(RuntimeError):
        pii.data_subject_erase(actor=Actor.user(infosec), data_subject=f"user:{person.pk}", reason="DP-8")
    assert ConsolePreference.objects.filter(user=person).exists()
    assert DataSubjectKey.objects.get(data_subject=f"user:{person.pk}").erased_at is None
    monkeypatch.undo()

    # when it succeeds: the person's time zone goes with their data; nobody else's
    pii.data_subject_erase(actor=Actor.user(infosec), data_subject=f"user:{person.pk}", reason="DP-8")
    assert not ConsolePreference.objects.filter(user=person).exists()
    assert ConsolePreference.objects.get(user=other).time_zone == "Asia/Kolkata"
