"""Retention classes, legal holds and the retention job (crypto-shredding past retention, sparing holds)."""
from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from audit import ledger
from audit.errors import InvalidState, NotPermitted
from audit.event_types import registry
from audit.models import DataSubjectKey, Entry, LegalHold, PiiValue
from audit.services.retention import (
    CLASSES,
    DEFAULT_CLASS,
    RetentionError,
    is_mapped,
    legal_hold_create,
    legal_hold_release,
    retention_class_for,
    retention_run,
)
from audit.tasks import run_retention
from tests.ops.helpers import SYSTEM, register

pytestmark = pytest.mark.django_db

LATER = timezone.now() + timedelta(days=8 * 365)  # past every class


def test_every_registered_event_type_resolves_to_a_class() -> None:
    for name in registry.names():
        assert is_mapped(name), f"{name} has no explicit retention class (add it to audit/services/retention.py)"
        assert retention_class_for(name).name in CLASSES
    assert DEFAULT_CLASS in CLASSES
    assert retention_class_for("unknown.type").name == DEFAULT_CLASS


def test_classes_meet_their_minimums() -> None:
    assert CLASSES["pci_dss"].days >= 365
    assert CLASSES["sox"].days >= 7 * 365
    assert CLASSES["eu_ai_act"].days >= 183
    assert retention_class_for("monitoring.data_drift_detected").name == "eu_ai_act"
    assert retention_class_for("access.check_denied").name == "pci_dss"
    assert retention_class_for("promotion.approved").name == "sox"


def keys() -> dict[str, DataSubjectKey]:
    return {k.data_subject: k for k in DataSubjectKey.objects.all()}


def test_nothing_is_due_before_retention_ends() -> None:
    register(900001)
    report = retention_run(now=timezone.now() + timedelta(days=300))
    assert report.erased == []
    assert keys()["user:900001"].erased_at is None


def test_erases_what_is_past_retention_and_spares_what_is_on_hold(infosec: User) -> None:
    # given two data subjects with personal data, one of them under a legal hold
    register(900001)
    register(900002)
    ledger.integrate()
    hold = legal_hold_create(actor=infosec, data_subject="user:900002", reason="litigation 2026-17", reference="LIT-17")
    size_before = Entry.objects.count()

    # when retention runs after every class expired
    report = retention_run(now=LATER)

    # then the unheld subject's key and values are gone, the held one's are intact
    assert report.erased == ["user:900001"] and report.held == ["user:900002"]
    found = keys()
    assert found["user:900001"].erased_at is not None and found["user:900001"].key is None
    assert not PiiValue.objects.filter(subject_key=found["user:900001"], ciphertext__isnull=False).exists()
    assert found["user:900002"].erased_at is None
    assert PiiValue.objects.filter(subject_key=found["user:900002"], ciphertext__isnull=False).count() == 2
    # and the ledger grew (nothing deleted): the erasure and its retention reason are recorded
    ledger.integrate()
    assert Entry.objects.count() > size_before
    erased = Entry.objects.get(event_type="privacy.retention_erased")
    assert erased.payload["data_subject"] == "user:900001"
    assert erased.payload["retention_class"] == "sox"
    assert erased.payload["values"] == 2
    assert Entry.objects.filter(event_type="privacy.subject_erased", subject_id="900001").count() == 1

    # when the hold is released, the next run erases the other one too; a third run does nothing
    legal_hold_release(actor=infosec, hold=hold, reason="case closed")
    assert retention_run(now=LATER).erased == ["user:900002"]
    again = retention_run(now=LATER)
    assert again.erased == [] and again.examined == 0


def test_dry_run_changes_nothing() -> None:
    register(900003)
    report = retention_run(now=LATER, dry_run=True)
    assert report.erased == ["user:900003"] and report.values == 2
    assert keys()["user:900003"].erased_at is None
    assert not Entry.objects.filter(event_type="privacy.retention_erased").exists()


def test_a_subject_with_a_recent_value_is_kept() -> None:
    # one old registration and one recent: the key covers both, so nothing is shredded yet
    register(900004)
    PiiValue.objects.update(created_at=timezone.now() - timedelta(days=9 * 365))
    register(900004, email="second@example.org")
    assert retention_run().erased == []


def test_the_task_is_idempotent() -> None:
    register(900005)
    PiiValue.objects.update(created_at=timezone.now() - timedelta(days=9 * 365))
    assert run_retention.apply().get() == 1
    assert run_retention.apply().get() == 0


def test_time_budget_stops_early() -> None:
    register(900006)
    report = retention_run(now=LATER, time_budget=-1)
    assert report.stopped_early and report.erased == []


# --- legal hold services ---------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["auditor", "outsider"])
def test_only_infosec_creates_and_releases_holds(who: str, request: pytest.FixtureRequest, infosec: User) -> None:
    user = request.getfixturevalue(who)
    with pytest.raises(NotPermitted):
        legal_hold_create(actor=user, data_subject="user:900009", reason="because")
    hold = legal_hold_create(actor=infosec, data_subject="user:900009", reason="because")
    with pytest.raises(NotPermitted):
        legal_hold_release(actor=user, hold=hold, reason="done")
    assert LegalHold.objects.get().released_at is None


def test_hold_records_ledger_entries(infosec: User) -> None:
    hold = legal_hold_create(actor=infosec, data_subject=" user:7 ", reason="  audit request ", reference="REF-1")
    assert hold.data_subject == "user:7" and hold.reason == "audit request"
    legal_hold_release(actor=infosec, hold=hold, reason="over")
    ledger.integrate()
    created = Entry.objects.get(event_type="privacy.legal_hold_created")
    assert created.payload == {"hold_id": hold.pk, "data_subject": "user:7", "reason": "audit request",
                               "reference": "REF-1"}
    assert created.actor_id == str(infosec.pk) and created.subject_type == "user" and created.subject_id == "7"
    released = Entry.objects.get(event_type="privacy.legal_hold_released")
    assert released.payload == {"hold_id": hold.pk, "data_subject": "user:7", "reason": "over"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data_subject": "", "reason": "r"}, "data_subject"),
        ({"data_subject": "nocolon", "reason": "r"}, "data_subject"),
        ({"data_subject": "user:1\n", "reason": "r"}, None),
        ({"data_subject": 42, "reason": "r"}, "data_subject"),
        ({"data_subject": "user:900001", "reason": "   "}, "reason"),
        ({"data_subject": "user:900001", "reason": "x" * 2001}, "longer"),
        ({"data_subject": "user:900001", "reason": "r", "reference": "x" * 201}, "longer"),
        ({"data_subject": "user:900001", "reason": "r\x00"}, "control"),
    ],
)
def test_bad_hold_input(infosec: User, kwargs: dict[str, object], message: str | None) -> None:
    if message is None:  # surrounding whitespace is trimmed, not refused
        legal_hold_create(actor=infosec, **kwargs)  # type: ignore[arg-type]
        return
    with pytest.raises(RetentionError, match=message):
        legal_hold_create(actor=infosec, **kwargs)  # type: ignore[arg-type]
    assert not LegalHold.objects.exists()
    assert not ledger.PendingEntry.objects.filter(event_type="privacy.legal_hold_created").exists()


def test_one_active_hold_per_subject_and_no_double_release(infosec: User) -> None:
    hold = legal_hold_create(actor=infosec, data_subject="user:900008", reason="first")
    with pytest.raises(InvalidState, match="already under an active legal hold"):
        legal_hold_create(actor=infosec, data_subject="user:900008", reason="second")
    legal_hold_release(actor=infosec, hold=hold, reason="done")
    with pytest.raises(InvalidState, match="already released"):
        legal_hold_release(actor=infosec, hold=hold, reason="again")
    with pytest.raises(RetentionError, match="reason"):
        legal_hold_release(actor=infosec, hold=legal_hold_create(actor=infosec, data_subject="user:900008", reason="x"),
                           reason="")


def test_no_hold_on_an_erased_subject(infosec: User) -> None:
    register(900011)
    retention_run(now=LATER)
    with pytest.raises(InvalidState, match="already erased"):
        legal_hold_create(actor=infosec, data_subject="user:900011", reason="too late")


def test_command_dry_run_and_json() -> None:
    register(900012)
    out = StringIO()
    call_command("retention_run", "--dry-run", "--as-of", LATER.isoformat(), "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["dry_run"] is True and data["erased"] == ["user:900012"]
    assert keys()["user:900012"].erased_at is None
    out = StringIO()
    call_command("retention_run", stdout=out)
    assert "erased 0" in out.getvalue()
    with pytest.raises(CommandError, match="only allowed with --dry-run"):
        call_command("retention_run", "--as-of", LATER.isoformat())
    with pytest.raises(CommandError, match="ISO 8601"):
        call_command("retention_run", "--dry-run", "--as-of", "yesterday")
    with pytest.raises(CommandError, match="limit"):
        call_command("retention_run", "--limit", "0")


@pytest.mark.urls("tests.ops.admin_urls")
def test_admin_shows_holds_read_only_to_infosec(client: Client, infosec: User, outsider: User) -> None:
    hold = legal_hold_create(actor=infosec, data_subject="user:900021", reason="matter 9")
    client.force_login(infosec)
    assert client.get("/admin/audit/legalhold/").status_code == 200
    assert client.get(f"/admin/audit/legalhold/{hold.pk}/change/").status_code == 200
    assert client.post(f"/admin/audit/legalhold/{hold.pk}/delete/", {"post": "yes"}).status_code == 403
    assert LegalHold.objects.filter(pk=hold.pk).exists()
    assert client.get("/admin/audit/verificationrun/").status_code == 200
    client.force_login(outsider)
    assert client.get("/admin/audit/legalhold/").status_code in (302, 403, 404)


# --- active accounts are never touched; the clock starts at closure (issue 8f) ------------------------------------

FAR = timezone.now() + timedelta(days=100 * 365)  # a clock years ahead of every class


def _person(username: str) -> User:
    from access.services.roles import user_register

    return user_register(actor=SYSTEM, username=username, email=f"{username}@example.org", full_name="Al Ice")


def _ledger_rows() -> int:
    from audit.models import PendingEntry

    return Entry.objects.count() + PendingEntry.objects.count()


def _age_values(data_subject: str, days: int) -> None:
    PiiValue.objects.filter(subject_key__data_subject=data_subject).update(
        created_at=timezone.now() - timedelta(days=days))


def test_active_accounts_are_never_touched_whatever_the_clock() -> None:
    # given: active staff accounts whose registration is long past every class
    people = [_person(name) for name in ("alice", "arthur", "omar")]
    for person in people:
        _age_values(f"user:{person.pk}", 50 * 365)
    before = _ledger_rows()
    # when: retention runs a century ahead, for real and dry
    dry = retention_run(now=FAR, dry_run=True)
    report = retention_run(now=FAR)
    # then: nobody erased, nothing written, the accounts intact and still able to sign in
    assert dry.erased == report.erased == [] and report.open_accounts == 3
    assert _ledger_rows() == before
    for person in people:
        fresh = User.objects.get(pk=person.pk)
        assert fresh.is_active and fresh.username == person.username and fresh.email == person.email
        assert keys()[f"user:{person.pk}"].erased_at is None
    assert "3 account(s) not closed" in str(report)


def test_an_inactive_account_without_a_recorded_closure_keeps_its_data() -> None:
    person = _person("dora")
    _age_values(f"user:{person.pk}", 50 * 365)
    User.objects.filter(pk=person.pk).update(is_active=False)  # deactivated around the services
    before = _ledger_rows()
    assert retention_run(now=FAR).erased == []
    assert _ledger_rows() == before and keys()[f"user:{person.pk}"].erased_at is None


def test_a_closed_account_is_erased_a_full_period_after_its_closure() -> None:
    from access.services.accounts import account_closed_at, user_account_close_by_system

    # given: registered 9 years ago (past sox on its own), closed now
    person = _person("erin")
    _age_values(f"user:{person.pk}", 9 * 365)
    user_account_close_by_system(component="offboarding", account=person, reason="left the company")
    closed = account_closed_at(User.objects.get(pk=person.pk))
    assert closed is not None and abs((closed - timezone.now()).total_seconds()) < 60
    # then: the clock runs from the closure, not the registration
    assert retention_run(now=timezone.now() + timedelta(days=365)).erased == []
    assert retention_run(now=closed + timedelta(days=CLASSES["sox"].days - 1)).erased == []
    assert retention_run(now=closed + timedelta(days=CLASSES["sox"].days + 1)).erased == [f"user:{person.pk}"]


def test_a_reopened_account_is_active_again_and_untouched() -> None:
    from access.services.accounts import user_account_close_by_system

    person = _person("rene")
    user_account_close_by_system(component="offboarding", account=person, reason="left")
    User.objects.filter(pk=person.pk).update(is_active=True)  # rehired
    assert retention_run(now=FAR).erased == []


def test_a_service_accounts_user_follows_its_disabled_at(infosec: User) -> None:
    from access.models import ServiceAccount
    from access.services.service_accounts import service_account_create

    account = service_account_create(actor=infosec, name="old-bot")
    register(account.user_id)
    subject = f"user:{account.user_id}"
    _age_values(subject, 50 * 365)
    assert retention_run(now=FAR).erased == []  # enabled: open
    ServiceAccount.objects.filter(pk=account.pk).update(disabled_at=timezone.now())
    assert retention_run(now=timezone.now() + timedelta(days=365)).erased == []  # disabled just now
    assert retention_run(now=FAR).erased == [subject]


def test_closing_an_account_records_only_its_reference() -> None:
    from access.services.accounts import user_account_close_by_system

    person = _person("carol")
    user_account_close_by_system(component="offboarding", account=person, reason="contract ended")
    ledger.integrate()
    entry = Entry.objects.get(event_type="auth.account_closed")
    assert entry.payload == {"account": f"user:{person.pk}", "reason": "contract ended"}
    assert (entry.subject_type, entry.subject_id) == ("user", str(person.pk))
    assert "carol" not in entry.payload_json and not User.objects.get(pk=person.pk).is_active


@pytest.mark.parametrize("case", ["no-reason", "long-reason", "control", "already-closed", "service-account"])
def test_refused_closures_write_nothing(case: str, infosec: User) -> None:
    from access.services.accounts import user_account_close_by_system
    from access.services.service_accounts import service_account_create

    person = _person("pat")
    reason = {"no-reason": "  ", "long-reason": "x" * 501, "control": "bad\x00reason"}.get(case, "left")
    if case == "already-closed":
        user_account_close_by_system(component="offboarding", account=person, reason="left")
    if case == "service-account":
        person = service_account_create(actor=infosec, name="pat-bot").user
    before, active = _ledger_rows(), User.objects.get(pk=person.pk).is_active
    with pytest.raises((RetentionError, InvalidState, ValueError)):
        user_account_close_by_system(component="offboarding", account=person, reason=reason)
    assert _ledger_rows() == before and User.objects.get(pk=person.pk).is_active == active
