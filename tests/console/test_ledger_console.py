"""Ledger explorer and entry page: filters, seq cursor, verification steps, PII redaction and reveal."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from audit import triggers
from audit.ledger import integrate
from audit.models import Checkpoint, Entry, PendingEntry
from tests.console.helpers import client_for, pii_entry, seed_ledger
from tests.personas import People

pytestmark = pytest.mark.django_db
LEDGER = reverse("console-ledger")


def entry_url(seq: int) -> str:
    return reverse("console-entry", args=[seq])


def reveal_url(seq: int) -> str:
    return reverse("console-entry-reveal", args=[seq])


@pytest.mark.parametrize("url", [LEDGER, "/console/ledger/0/"])
def test_anonymous_is_sent_to_login(url: str) -> None:
    response = client_for(None).get(url)
    assert response.status_code == 302 and response["Location"].startswith("/console/login/")


@pytest.mark.parametrize("who", ["approver", "owner", "steward", "outsider"])
def test_explorer_and_entries_are_refused_to_others(people: People, who: str) -> None:
    entries = seed_ledger(2)
    client = client_for(getattr(people, who))
    for url in (LEDGER, entry_url(entries[0].seq), entry_url(entries[0].seq) + "?verify=1"):
        response = client.get(url)
        assert response.status_code == 403
        html = response.content.decode()
        assert "not permitted" in html and entries[0].entry_hash not in html


@pytest.mark.parametrize("who", ["infosec", "auditor"])
def test_oversight_lists_entries_newest_first(people: People, who: str) -> None:
    entries = seed_ledger(3)
    html = client_for(getattr(people, who)).get(LEDGER).content.decode()
    assert html.index(f"#{entries[-1].seq}<") < html.index(f"#{entries[0].seq}<")
    assert "ledger.note_added" in html


def test_filters_by_type_subject_actor_and_time(people: People) -> None:
    seed_ledger(4)
    client = client_for(people.auditor)
    html = client.get(LEDGER, {"type": "auth.user_registered"}).content.decode()
    assert "auth.user_registered</code>" in html and "ledger.note_added</code>" not in html
    html = client.get(LEDGER, {"subject": "registered_model:model-1"}).content.decode()
    assert html.count("registered_model:model-1") >= 2 and "registered_model:model-0" not in html
    assert "No entries match" in client.get(LEDGER, {"actor": "nobody-by-that-name"}).content.decode()
    assert "ledger.note_added" in client.get(LEDGER, {"actor": "system:test"}).content.decode()
    assert "No entries match" in client.get(LEDGER, {"since": "2999-01-01"}).content.decode()


def test_bad_filters_are_messages_not_errors(people: People) -> None:
    seed_ledger(1)
    response = client_for(people.auditor).get(LEDGER, {"type": "no.such", "since": "yesterday", "before": "x"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Filter ignored: unknown event type" in html and "not an ISO 8601 date" in html


def test_seq_cursor_pages_with_bounded_queries(people: People, django_assert_max_num_queries: Any) -> None:
    seed_ledger(3)
    client = client_for(people.infosec)
    # +1 on the first page: its ledger.accessed INSERT (PCI 10.2.1.3); the next page of the same filter is
    # covered by that entry (a cache lookup, no query), so its budget is unchanged
    with django_assert_max_num_queries(9):
        client.get(LEDGER)
    seed_ledger(120, days=5)
    last = Entry.objects.order_by("-seq").first()
    assert last is not None
    with django_assert_max_num_queries(9):
        first_page = client.get(LEDGER).content.decode()
    assert f"before={last.seq - 49}" in first_page
    with django_assert_max_num_queries(8):
        second = client.get(LEDGER, {"before": last.seq - 49}).content.decode()
    assert f"#{last.seq - 50}<" in second and f"#{last.seq - 49}<" not in second
    assert f"after={last.seq - 50}" in second
    back = client.get(LEDGER, {"after": last.seq - 50}).content.decode()
    assert f"#{last.seq}<" in back and f"#{last.seq - 50}<" not in back


def test_entry_page_shows_hashes_chain_and_checkpoint(people: People) -> None:
    entries = seed_ledger(4)
    middle = next(e for e in entries if e.subject_id == "model-1")
    html = client_for(people.auditor).get(entry_url(middle.seq)).content.decode()
    assert middle.entry_hash in html and middle.prev_hash in html
    assert "next about this subject" in html
    checkpoint = Checkpoint.objects.get()
    assert f"#{checkpoint.pk}, tree size {checkpoint.tree_size}" in html


def test_verify_this_entry_passes_every_step(people: People) -> None:
    entries = seed_ledger(3)
    html = client_for(people.auditor).get(entry_url(entries[1].seq), {"verify": "1"}).content.decode()
    assert "Verified</span> every check passed" in html
    assert html.count("badge ok\">pass") == 4 and "badge bad" not in html


def _uncovered_entry(at: datetime | None = None) -> Entry:
    """An integrated entry recorded after the last checkpoint (no checkpoint covers it yet), at ``at``."""
    seed_ledger(1)
    from audit.ledger import Actor, Subject, record

    record(event_type="ledger.note_added", actor=Actor.system("t"), subject=Subject("x", "y"), payload={"text": "late"},
           timestamp=at)
    integrate()
    late = Entry.objects.order_by("-seq").first()
    assert late is not None
    return late


def test_an_entry_awaiting_its_checkpoint_is_pending_not_a_failure(people: People, settings: Any) -> None:
    # given a checkpoint every 30 s, and an entry recorded just after the last one
    settings.LEDGER_CHECKPOINT_INTERVAL = 30.0
    late = _uncovered_entry()
    # when
    html = client_for(people.auditor).get(entry_url(late.seq), {"verify": "1"}).content.decode()
    # then: the hash checks pass, the coverage is pending (neutral), nothing reads like tampering
    assert "NOT verified" not in html and "badge bad" not in html
    assert "badge pending\">Pending</span> every check so far passed" in html
    assert html.count("badge ok\">pass") == 2
    assert "badge pending\">pending</span> Covered by a signed checkpoint" in html
    seconds = re.search(r"will be covered by the next checkpoint in (\d+) s", html)
    assert seconds is not None and 25 <= int(seconds.group(1)) <= 30
    # and the facts say the same
    assert "not yet covered" not in html and 'id="checkpoint-pending">pending</span>' in html


def test_a_late_signer_is_a_warning_about_the_signer_not_tampering(people: People, settings: Any) -> None:
    # given an entry uncovered for more than two checkpoint intervals (nothing signs)
    ten_minutes_ago = timezone.now() - timedelta(minutes=10)
    late = _uncovered_entry(at=ten_minutes_ago)
    with triggers.disabled(connection):  # the ledger is append-only: only its owner can move a time back
        Checkpoint.objects.update(created_at=ten_minutes_ago)
    settings.LEDGER_CHECKPOINT_INTERVAL = 10.0
    html = client_for(people.auditor).get(entry_url(late.seq), {"verify": "1"}).content.decode()
    assert "NOT verified" not in html and "badge bad" not in html
    assert "badge warn\">Pending</span>" in html and "the checkpoint signer is late" in html
    assert "not a sign of tampering" in html


def test_a_failed_check_still_fails_while_pending(people: People) -> None:
    from audit.console.ledger import Step, verdict

    failed, pending = Step("Leaf hash", False, "mismatch"), Step("Covered", False, "pending", pending=True)
    assert verdict([failed, pending]) == "failed"
    assert verdict([Step("Leaf hash", True, "ok"), pending]) == "pending"
    assert verdict([Step("Leaf hash", True, "ok")]) == "verified"


def test_verify_detects_a_checkpoint_signed_by_another_key(people: People, settings: Any, tmp_path: Any) -> None:
    entries = seed_ledger(2)
    checkpoint = Checkpoint.objects.get()
    from audit.console.ledger import verify_entry

    signature = checkpoint.note.rsplit(" ", 1)[1]
    checkpoint.note = checkpoint.note.replace(signature, "AAAAAAAA" + signature[8:])  # not saved: append-only
    steps = verify_entry(entries[0], checkpoint, None)
    assert not steps[-1].ok and "signature" in steps[-1].name


def test_missing_entry_is_a_404_page(people: People) -> None:
    response = client_for(people.auditor).get(entry_url(424242))
    assert response.status_code == 404 and "No entry #424242" in response.content.decode()


def test_personal_data_is_redacted_and_only_infosec_sees_the_reveal_form(people: People) -> None:
    seed_ledger(1)
    entry = pii_entry()
    auditor_html = client_for(people.auditor).get(entry_url(entry.seq)).content.decode()
    assert "[redacted]" in auditor_html and "pat.person" not in auditor_html
    assert "Reveal personal data" not in auditor_html
    infosec_html = client_for(people.infosec).get(entry_url(entry.seq)).content.decode()
    assert "Reveal personal data" in infosec_html and "pat.person" not in infosec_html


def test_infosec_reveal_is_recorded_and_not_cached(people: People) -> None:
    seed_ledger(1)
    entry = pii_entry()
    response = client_for(people.infosec).post(reveal_url(entry.seq), {"reason": "INC-42 identity check"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert "pat.person" in response.content.decode()
    integrate()
    recorded = Entry.objects.get(event_type="privacy.pii_revealed")
    assert recorded.payload["reason"] == "INC-42 identity check" and recorded.actor_id == str(people.infosec.pk)


def test_reveal_without_a_reason_shows_a_message_and_writes_nothing(people: People) -> None:
    seed_ledger(1)
    entry = pii_entry()
    before = PendingEntry.objects.count()
    response = client_for(people.infosec).post(reveal_url(entry.seq), {"reason": " "}, follow=True)
    html = response.content.decode()
    assert "Nothing was revealed: a reason is required" in html and "pat.person" not in html
    # nothing but the read of the entry page the refusal redirected to (ledger.accessed)
    assert list(PendingEntry.objects.order_by("id").values_list("event_type", flat=True)[before:]) == [
        "ledger.accessed"]


def test_auditor_reveal_is_refused_and_the_denial_recorded(people: People) -> None:
    seed_ledger(1)
    entry = pii_entry()
    response = client_for(people.auditor).post(reveal_url(entry.seq), {"reason": "curious"})
    assert response.status_code == 403 and "pat.person" not in response.content.decode()
    integrate()
    assert Entry.objects.filter(event_type="access.check_denied").exists()
    assert not Entry.objects.filter(event_type="privacy.pii_revealed").exists()


def test_outsider_reveal_is_refused(people: People) -> None:
    seed_ledger(1)
    response = client_for(people.outsider).post(reveal_url(pii_entry().seq), {"reason": "x"})
    assert response.status_code == 403


def test_reveal_needs_a_csrf_token(people: People) -> None:
    seed_ledger(1)
    entry = pii_entry()
    response = client_for(people.infosec, csrf=True).post(reveal_url(entry.seq), {"reason": "INC-1"})
    assert response.status_code == 403
    assert "pat.person" not in response.content.decode()
