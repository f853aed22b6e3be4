"""Ledger explorer: the search box (seq, request id, subject, actor, username, garbage), jump to seq, the
seq sort both ways on the keyset pager, the ledger's size and the CSV of the view."""
from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse

from audit.console.ledger import PAGE_SIZE, interpret_search
from audit.ledger import Actor, Subject, integrate, record
from audit.models import Entry
from tests.console.helpers import client_for, messages_of
from tests.personas import People
from web.console import tables

pytestmark = pytest.mark.django_db
LEDGER = reverse("console-ledger")
REQUEST = "req-4f2a9c1e7b"


def seed(n: int, people: People) -> list[Entry]:
    """``n`` notes: every third by ``people.infosec`` (the others by the system), the first two in one request."""
    with transaction.atomic():
        for i in range(n):
            actor = Actor.user(people.infosec) if i % 3 == 0 else Actor.system("test")
            record(event_type="ledger.note_added", actor=actor, subject=Subject("model_version", f"fraud/{i % 4}"),
                   payload={"text": f"note {i}", "reference": f"T-{i}"},
                   request_id=REQUEST if i < 2 else None)
    integrate()
    return list(Entry.objects.order_by("seq"))


def seqs(client: Client, **params: Any) -> list[int]:
    return [e.seq for e in client.get(LEDGER, params).context["entries"]]


def ledger_csv(client: Client, **params: Any) -> list[list[str]]:
    response = client.get(LEDGER, {**params, "format": "csv"})
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="ledger-')
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


# --- the search box ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["3", "#3", "# 3"])
def test_a_seq_opens_the_entry(people: People, text: str) -> None:
    seed(5, people)
    response = client_for(people.auditor).get(LEDGER, {"q": text})
    assert response.status_code == 302 and response["Location"] == reverse("console-entry", args=[3])


def test_a_seq_that_does_not_exist_says_nothing_matches(people: People) -> None:
    seed(3, people)
    response = client_for(people.auditor).get(LEDGER, {"q": "#77"})
    assert response.status_code == 200 and response.context["entries"] == []
    assert any("Nothing matches '#77'" in m and "no entry #77" in m for m in messages_of(response))


def test_a_request_id_lists_that_requests_entries(people: People) -> None:
    entries = seed(5, people)
    response = client_for(people.infosec).get(LEDGER, {"q": REQUEST})
    assert [e.seq for e in response.context["entries"]] == [entries[1].seq, entries[0].seq]
    assert any(f"entries of request {REQUEST}" in m for m in messages_of(response))


def test_a_subject_lists_its_entries(people: People) -> None:
    entries = seed(8, people)
    expected = [e.seq for e in entries if e.subject_id == "fraud/1"][::-1]
    assert seqs(client_for(people.auditor), q="model_version:fraud/1") == expected and len(expected) == 2


@pytest.mark.parametrize("as_text", ["reference", "username"])
def test_an_actor_by_reference_or_username(people: People, as_text: str) -> None:
    entries = seed(7, people)
    text = f"user:{people.infosec.pk}" if as_text == "reference" else people.infosec.username
    expected = [e.seq for e in entries if e.actor_type == "user"][::-1]
    assert seqs(client_for(people.auditor), q=text) == expected and len(expected) == 3


@pytest.mark.parametrize("garbage", ["no such thing", "nobody", "'; drop table audit_entry; --", "x" * 400, "ü:"])
def test_garbage_matches_nothing_and_says_so(people: People, garbage: str) -> None:
    seed(3, people)
    response = client_for(people.auditor).get(LEDGER, {"q": garbage})
    assert response.status_code == 200 and response.context["entries"] == []
    assert any("Nothing matches" in m for m in messages_of(response))


def test_search_precedence() -> None:
    assert interpret_search("#12").kind == "seq"
    assert interpret_search("service:ci").filters == {"actor_type": "service", "actor_id": "ci"}
    assert interpret_search("dataset:customers").kind == "subject"  # no entry carries it as a request id
    assert interpret_search("nobody-here").kind == "none"


# --- jump, sort, keyset, size ---------------------------------------------------------------------------


def test_jump_to_seq_shows_the_page_starting_there_in_either_order(people: People) -> None:
    seed(PAGE_SIZE + 20, people)
    client = client_for(people.auditor)
    newest_first = seqs(client, jump="#30")
    assert newest_first[0] == 30 and newest_first[-1] == 0
    oldest_first = seqs(client, jump="30", sort="seq")
    assert oldest_first == list(range(30, PAGE_SIZE + 20))
    response = client.get(LEDGER, {"jump": "abc"})
    assert response.status_code == 200 and any("Cannot jump to 'abc'" in m for m in messages_of(response))
    beyond = client.get(LEDGER, {"jump": "9999"})
    assert any("no entry #9999 yet" in m for m in messages_of(beyond)) and beyond.context["entries"]


def test_oldest_first_pages_with_the_keyset(people: People) -> None:
    total = PAGE_SIZE + 5
    seed(total, people)
    client = client_for(people.auditor)
    first = client.get(LEDGER, {"sort": "seq"})
    assert [e.seq for e in first.context["entries"]] == list(range(PAGE_SIZE))
    assert first.context["prev"] is None and first.context["next"] == f"after={PAGE_SIZE - 1}"
    html = first.content.decode()
    assert 'aria-sort="ascending"' in html and f"?sort=seq&amp;after={PAGE_SIZE - 1}" in html
    second = client.get(LEDGER, {"sort": "seq", "after": PAGE_SIZE - 1})
    assert [e.seq for e in second.context["entries"]] == list(range(PAGE_SIZE, total))
    assert second.context["next"] is None and second.context["prev"] == f"before={PAGE_SIZE}"
    back = seqs(client, sort="seq", before=PAGE_SIZE)
    assert back == list(range(PAGE_SIZE))
    newest = client.get(LEDGER)
    assert newest.context["entries"][0].seq == total - 1
    assert f"{total} entries in the ledger" in newest.content.decode()


@pytest.mark.parametrize("param", ["before", "after", "jump"])
def test_a_cursor_beyond_a_64_bit_seq_is_harmless(people: People, param: str) -> None:
    seed(3, people)
    response = client_for(people.auditor).get(LEDGER, {param: "9" * 20})
    assert response.status_code == 200 and len(response.context["entries"]) == 3
    assert client_for(people.auditor).get(LEDGER, {"q": "9" * 18}).status_code == 200


def test_the_pager_links_keep_the_search_encoded(people: People) -> None:
    seed(PAGE_SIZE + 5, people)
    html = client_for(people.auditor).get(LEDGER, {"q": "system:test", "subject": "a&b=c"}).content.decode()
    assert "q=system%3Atest&amp;subject=a%26b%3Dc" in html


# --- CSV ------------------------------------------------------------------------------------------------


def test_the_csv_is_every_filtered_entry_across_pages(
    people: People, monkeypatch: pytest.MonkeyPatch, django_assert_max_num_queries: Any
) -> None:
    monkeypatch.setattr("audit.console.ledger.CSV_CHUNK", 7)
    entries = seed(PAGE_SIZE + 10, people)
    client = client_for(people.auditor)
    # session, user, roles, the ledger.accessed INSERT (one for the whole CSV) + one keyset query per chunk of 7
    with django_assert_max_num_queries(17):
        rows = ledger_csv(client, q="system:test")
    assert rows[0] == ["seq", "time_utc", "event_type", "actor", "subject", "request_id", "entry_hash"]
    expected = [e for e in entries if e.actor_type == "system"][::-1]
    assert [int(r[0]) for r in rows[1:]] == [e.seq for e in expected] and len(expected) > PAGE_SIZE // 2
    assert rows[1][1] == expected[0].timestamp and rows[1][3] == "system:test"
    assert rows[1][6] == expected[0].entry_hash
    oldest_first = ledger_csv(client, sort="seq", subject="model_version:fraud/0")
    assert [int(r[0]) for r in oldest_first[1:]] == [e.seq for e in entries if e.subject_id == "fraud/0"]
    assert ledger_csv(client, q=REQUEST)[1][5] == REQUEST


def test_the_csv_has_no_usernames_and_respects_the_cap(people: People, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(6, people)
    monkeypatch.setattr("audit.console.ledger.CSV_MAX_ROWS", 4)
    rows = ledger_csv(client_for(people.infosec))
    assert len(rows) == 5 and people.infosec.username not in str(rows)
    assert f"user:{people.infosec.pk}" in str(rows)
    assert tables.CSV_MAX_ROWS == 50_000


@pytest.mark.parametrize("who", ["owner", "outsider", "approver"])
def test_the_csv_is_refused_outside_oversight(people: People, who: str) -> None:
    seed(2, people)
    response = client_for(getattr(people, who)).get(LEDGER, {"format": "csv"})
    assert response.status_code == 403 and not response.get("Content-Disposition")
