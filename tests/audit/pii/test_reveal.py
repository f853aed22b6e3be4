"""Who sees what: redacted for everyone, revealed (and audited) for InfoSec only."""
from __future__ import annotations

import pytest

from access.roles import AUDITOR, INFOSEC
from audit import ledger, pii
from audit.models import Entry, PendingEntry
from audit.verification import verify_ledger
from tests.audit.integration.helpers import note
from tests.audit.pii.helpers import EMAIL, NAME, USERNAME, independent_commitment, register_event
from tests.factories import SuperuserFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_everyone_else_sees_redacted_values() -> None:
    register_event("900042")
    ledger.integrate()
    entry = Entry.objects.get()
    assert pii.redacted_payload(entry) == {"username": "[redacted]", "email": "[redacted]", "full_name": "[redacted]"}
    # the pending row too, before integration
    register_event("43", email=None, full_name=None)
    assert pii.redacted_payload(PendingEntry.objects.get()) == {"username": "[redacted]"}


def test_redaction_leaves_ordinary_payloads_alone() -> None:
    note("just a note")
    ledger.integrate()
    assert pii.redacted_payload(Entry.objects.get()) == {"text": "just a note"}


@pytest.mark.parametrize("roles", [[], [AUDITOR]])
def test_a_reader_without_the_infosec_role_is_refused(roles: list[str]) -> None:
    # given
    reader = UserFactory(roles=roles)
    register_event("900042")
    ledger.integrate()

    # when
    with pytest.raises(pii.PiiAccessDenied, match="only InfoSec"):
        pii.reveal(actor=reader, seq=0, reason="curious")

    # then: no reveal was recorded, the denial was
    ledger.integrate()
    events = list(Entry.objects.order_by("seq").values_list("event_type", flat=True))
    assert events == ["auth.user_registered", "access.check_denied"]
    denied = Entry.objects.get(seq=1)
    assert denied.payload == {"principal": f"user:{reader.pk}", "resource": "ledger_entry:0",
                              "permission": "reveal_personal_data", "level": None}
    assert (denied.actor_type, denied.actor_id) == ("user", str(reader.pk))


def test_a_superuser_without_the_role_and_an_inactive_infosec_member_are_refused() -> None:
    register_event("900042")
    ledger.integrate()
    for user in (SuperuserFactory(), UserFactory(roles=[INFOSEC], is_active=False)):
        with pytest.raises(pii.PiiAccessDenied):
            pii.reveal(actor=user, seq=0, reason="because")


def test_infosec_reveals_and_the_reveal_is_itself_a_ledger_entry(infosec: object) -> None:
    # given
    register_event("900042")
    ledger.integrate()

    # when
    payload = pii.reveal(actor=infosec, seq=0, reason="  ticket SEC-7 ")  # type: ignore[arg-type]

    # then: the values
    assert payload == {"username": USERNAME, "email": EMAIL, "full_name": NAME}
    # and: the commitments in the body verify for exactly these values
    key = pii.subject_key("user:900042")
    assert key is not None
    body = Entry.objects.get(seq=0).payload
    for field, value in payload.items():
        assert independent_commitment(key, body[field]["pii"], value) == body[field]["commitment"]
    # and: the reveal is recorded, on the data subject's own chain, without the values
    assert ledger.integrate() == 1
    revealed = Entry.objects.get(seq=1)
    assert revealed.event_type == "privacy.pii_revealed"
    assert (revealed.actor_type, revealed.actor_id) == ("user", str(infosec.pk))  # type: ignore[attr-defined]
    assert (revealed.subject_type, revealed.subject_id, revealed.subject_prev) == ("user", "900042", 0)
    assert revealed.payload == {"seq": 0, "fields": ["email", "full_name", "username"], "data_subject": "user:900042",
                                "reason": "ticket SEC-7"}
    assert verify_ledger().ok


def test_a_reveal_needs_a_reason_and_an_entry_with_personal_data(infosec: object) -> None:
    register_event("900042")
    note("no personal data")
    ledger.integrate()
    with pytest.raises(pii.PiiError, match="reason"):
        pii.reveal(actor=infosec, seq=0, reason="  ")  # type: ignore[arg-type]
    with pytest.raises(pii.PiiError, match="no personal data"):
        pii.reveal(actor=infosec, seq=1, reason="r")  # type: ignore[arg-type]
    with pytest.raises(pii.PiiError, match="no ledger entry #99"):
        pii.reveal(actor=infosec, seq=99, reason="r")  # type: ignore[arg-type]
    assert ledger.integrate() == 0  # refusals record nothing (only denials of access do)


def test_a_tampered_ciphertext_is_detected_not_returned(infosec: object) -> None:
    from audit.models import PiiValue

    register_event("900042")
    ledger.integrate()
    payload = Entry.objects.get().payload
    # swap two values' ciphertexts: each is bound to its own ref
    a = PiiValue.objects.get(ref=payload["email"]["pii"])
    b = PiiValue.objects.get(ref=payload["username"]["pii"])
    a.nonce, a.ciphertext, b.nonce, b.ciphertext = b.nonce, b.ciphertext, a.nonce, a.ciphertext
    a.save()
    b.save()
    with pytest.raises(pii.PiiError, match="does not decrypt"):
        pii.reveal(actor=infosec, seq=0, reason="r")  # type: ignore[arg-type]
