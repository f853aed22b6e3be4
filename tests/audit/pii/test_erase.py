"""Erasure destroys a data subject's key: values are gone, the ledger still verifies."""
from __future__ import annotations

from io import StringIO

import pytest
from cryptography.exceptions import InvalidTag
from django.core.management import CommandError, call_command

from access.roles import AUDITOR, INFOSEC
from audit import ledger, pii
from audit.models import Checkpoint, DataSubjectKey, Entry, PiiValue
from audit.services.checkpoints import checkpoint_create
from audit.verification import verify_ledger
from tests.audit.integration.helpers import note
from tests.audit.pii.helpers import EMAIL, SYSTEM, independent_decrypt, register_event
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_erasure_makes_values_unrecoverable_and_the_ledger_still_verifies(infosec: object) -> None:
    # given: personal data of two people, other history, a signed checkpoint over all of it
    register_event("900042")
    register_event("43", username="other7f3a", email="other7f3a@example.org", full_name=None)
    note("unrelated")
    checkpoint_create()
    key = pii.subject_key("user:900042")
    assert key is not None
    body_before = list(Entry.objects.order_by("seq").values_list("seq", "entry_hash", "payload_json"))
    payload = Entry.objects.get(seq=0).payload
    stolen = PiiValue.objects.get(ref=payload["email"]["pii"])  # a copy of the ciphertext taken before
    nonce, ciphertext = bytes(stolen.nonce), bytes(stolen.ciphertext)
    assert verify_ledger().ok

    # when
    count = pii.data_subject_erase(actor=SYSTEM, data_subject="user:900042", reason="GDPR Art. 17, ticket DP-9")

    # then: three values erased, the key gone for good, the ciphertexts cleared
    assert count == 3
    row = DataSubjectKey.objects.get(data_subject="user:900042")
    assert row.key is None and row.erased_at is not None
    assert pii.subject_key("user:900042") is None
    assert not PiiValue.objects.filter(subject_key=row).exclude(ciphertext=None).exists()
    # and: a copy of a ciphertext is useless without the key (any other key fails)
    with pytest.raises(InvalidTag):
        independent_decrypt(pii.subject_key("user:43") or b"\0" * 32, stolen.ref, "user:900042", nonce, ciphertext)
    # and: the reveal says so; the other person is unaffected
    assert pii.reveal(actor=infosec, seq=0, reason="check") == {  # type: ignore[arg-type]
        "username": "[erased]", "email": "[erased]", "full_name": "[erased]"}
    assert pii.reveal(actor=infosec, seq=1, reason="check")["email"] == "other7f3a@example.org"  # type: ignore[arg-type]
    # and: the erasure is on the ledger, and every hash, link and checkpoint still verifies
    checkpoint_create()
    erased = Entry.objects.get(event_type="privacy.subject_erased")
    # no account 900042 exists: there is nothing to anonymise (tests/audit/pii/test_erase_account.py has one)
    assert erased.payload == {"data_subject": "user:900042", "reason": "GDPR Art. 17, ticket DP-9", "values": 3,
                              "account_anonymised": False}
    assert (erased.subject_type, erased.subject_id) == ("user", "900042")
    after = list(Entry.objects.order_by("seq").values_list("seq", "entry_hash", "payload_json"))
    assert after[: len(body_before)] == body_before
    result = verify_ledger()
    assert result.ok, result.detail
    assert result.checkpoints == Checkpoint.objects.count() == 2


def test_erasing_twice_is_a_clear_error() -> None:
    register_event("900042")
    pii.data_subject_erase(actor=SYSTEM, data_subject="user:900042", reason="first")
    ledger.integrate()
    with pytest.raises(pii.AlreadyErased, match="already erased"):
        pii.data_subject_erase(actor=SYSTEM, data_subject="user:900042", reason="second")
    assert ledger.integrate() == 0


def test_erasing_an_unknown_subject_or_without_reason_is_refused() -> None:
    register_event("900042")
    with pytest.raises(pii.PiiError, match="no personal data is recorded"):
        pii.data_subject_erase(actor=SYSTEM, data_subject="user:4242", reason="r")
    with pytest.raises(pii.PiiError, match="reason"):
        pii.data_subject_erase(actor=SYSTEM, data_subject="user:900042", reason=" ")
    with pytest.raises(pii.PiiError, match="data_subject"):
        pii.data_subject_erase(actor=SYSTEM, data_subject="nobody", reason="r")
    assert DataSubjectKey.objects.get().key is not None


def test_erasure_covers_values_not_yet_integrated(infosec: object) -> None:
    register_event("900042")
    assert pii.data_subject_erase(actor=SYSTEM, data_subject="user:900042", reason="r") == 3
    ledger.integrate()
    assert set(pii.reveal(actor=infosec, seq=0, reason="r").values()) == {"[erased]"}  # type: ignore[arg-type]
    assert verify_ledger().ok


def test_the_command_erases_as_an_infosec_user() -> None:
    officer = UserFactory(username="dpo", roles=[INFOSEC])
    register_event("900042", email=EMAIL)
    out = StringIO()
    call_command("erase_data_subject", "--subject", "user:900042", "--reason", "DP-1", "--actor", "dpo", stdout=out)
    assert "erased user:900042" in out.getvalue() and "3 value(s)" in out.getvalue()
    ledger.integrate()
    erased = Entry.objects.get(event_type="privacy.subject_erased")
    assert (erased.actor_type, erased.actor_id) == ("user", str(officer.pk))


def test_the_command_refuses_others_and_reports_errors() -> None:
    UserFactory(username="aud", roles=[AUDITOR])
    UserFactory(username="dpo", roles=[INFOSEC])
    register_event("900042")
    with pytest.raises(CommandError, match="InfoSec"):
        call_command("erase_data_subject", "--subject", "user:900042", "--reason", "r", "--actor", "aud")
    with pytest.raises(CommandError, match="active user"):
        call_command("erase_data_subject", "--subject", "user:900042", "--reason", "r", "--actor", "ghost")
    call_command("erase_data_subject", "--subject", "user:900042", "--reason", "r", "--actor", "dpo", stdout=StringIO())
    with pytest.raises(CommandError, match="already erased"):
        call_command("erase_data_subject", "--subject", "user:900042", "--reason", "r", "--actor", "dpo")
