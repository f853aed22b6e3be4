"""Reading the ledger is on the record (PCI DSS v4 10.2.1.3): ``ledger.accessed``, one per read request with its
filter, coalesced for pagination and proofs; refused reads record no access; no personal data in a hashed body;
with the cache down every read is recorded (audit/services/ledger_access.py, docs/ledger.md)."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import override_settings
from django.urls import reverse

from access import roles
from audit import ledger, pii
from audit.export.scope import parse_scope
from audit.export.service import export_create, export_run
from audit.ledger import Actor, LedgerError, Subject
from audit.models import Entry, PendingEntry
from audit.services import checkpoints
from audit.services.ledger_access import in_the_clear, ledger_access_record, split_filter
from tests.audit.integration.helpers import fill, note
from tests.console.helpers import client_for
from tests.ops.helpers import RedisServer
from tests.personas import People

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]

LEDGER = reverse("console-ledger")
ENTRIES = "/api/v1/ledger/entries"


@pytest.fixture
def history(people: People) -> None:
    """12 notes over 3 subjects, checkpointed, then 2 more (integrated, not checkpointed)."""
    fill(12, subjects=3)
    checkpoints.checkpoint_create()
    for i in range(2):
        note(f"late {i}", subject="model/late", actor=Actor.service("pipeline"))
    ledger.integrate()


def accesses() -> list[PendingEntry]:
    """The ledger.accessed entries recorded so far (the tests integrate nothing after reading: all pending)."""
    return list(PendingEntry.objects.filter(event_type="ledger.accessed").order_by("id"))


def payload(row: PendingEntry) -> dict[str, Any]:
    return json.loads(row.payload_json)


# --- the console ------------------------------------------------------------------------------------------


def test_the_explorer_records_one_access_per_request_with_its_filter(history: None, people: People) -> None:
    # when an auditor filters the explorer
    response = client_for(people.auditor).get(LEDGER, {"type": "ledger.note_added", "since": "2020-01-01",
                                                        "sort": "seq", "jump": ""})
    # then one entry says who read what, through which view and channel
    assert response.status_code == 200
    [row] = accesses()
    assert (row.actor_type, row.actor_id) == ("user", str(people.auditor.pk))
    assert (row.subject_type, row.subject_id) == ("ledger", "entries")
    assert payload(row) == {"view": "console-ledger", "channel": "console", "covers": "pages",
                            "window_seconds": 300,
                            "filter": {"type": "ledger.note_added", "since": "2020-01-01", "sort": "seq"}}


def test_an_entry_page_is_one_access_each_time_it_is_read(history: None, people: People) -> None:
    client = client_for(people.infosec)
    seq = Entry.objects.order_by("seq").values_list("seq", flat=True)[3]
    for _ in range(2):
        assert client.get(reverse("console-entry", args=[seq]), {"verify": "1"}).status_code == 200
    rows = accesses()
    assert len(rows) == 2
    assert payload(rows[0]) == {"view": "console-entry", "channel": "console", "covers": "request",
                                "window_seconds": 0, "filter": {"seq": seq, "verify": "1"}}


def test_paging_through_one_filter_in_the_console_is_one_access(history: None, people: People,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("audit.console.ledger.PAGE_SIZE", 4)
    client = client_for(people.auditor)
    client.get(LEDGER, {"type": "ledger.note_added"})
    last = Entry.objects.order_by("-seq").values_list("seq", flat=True)[0]
    for cursor in ({"before": last - 3}, {"before": last - 7}, {"after": last - 8}, {"jump": "2"}):
        assert client.get(LEDGER, {"type": "ledger.note_added", **cursor}).status_code == 200
    assert len(accesses()) == 1
    # a different filter is a new read, and so is another reader's
    client.get(LEDGER, {"type": "ledger.note_added", "before": last - 3, "subject": "model_version:model/1"})
    client_for(people.infosec).get(LEDGER, {"type": "ledger.note_added", "before": last - 3})
    assert [(r.actor_id, payload(r)["filter"]) for r in accesses()[1:]] == [
        (str(people.auditor.pk), {"type": "ledger.note_added", "subject": "model_version:model/1"}),
        (str(people.infosec.pk), {"type": "ledger.note_added"}),
    ]


def test_a_first_page_is_always_recorded_even_within_a_window(history: None, people: People) -> None:
    client = client_for(people.auditor)
    client.get(LEDGER)
    client.get(LEDGER)
    assert len(accesses()) == 2


def test_the_csv_of_a_filter_is_one_access(history: None, people: People) -> None:
    response = client_for(people.auditor).get(LEDGER, {"format": "csv", "actor": "service:pipeline"})
    assert b"".join(response.streaming_content).count(b"service:pipeline") == 2
    [row] = accesses()
    assert payload(row)["filter"] == {"format": "csv", "actor": "service:pipeline"}


def test_a_window_that_is_over_lets_the_next_page_be_recorded(history: None, people: People,
                                                              settings: Any) -> None:
    settings.LEDGER_ACCESS_WINDOW_SECONDS = 1
    client = client_for(people.auditor)
    client.get(LEDGER)
    client.get(LEDGER, {"before": 5})
    time.sleep(1.2)
    client.get(LEDGER, {"before": 5})
    assert [payload(r)["window_seconds"] for r in accesses()] == [1, 1]


# --- no personal data in a hashed body --------------------------------------------------------------------


def test_a_username_search_is_sealed_under_the_readers_key(history: None, people: People) -> None:
    # when an auditor searches the explorer for someone's username (and filters by actor name)
    searched = people.requester.get_username()
    client_for(people.auditor).get(LEDGER, {"q": searched, "actor": people.owner.get_username(),
                                            "type": "ledger.note_added"})
    ledger.integrate()
    entry = Entry.objects.get(event_type="ledger.accessed")
    # then the hashed body carries neither name, only the commitment of the sealed search
    body = entry.canonical_body()
    assert searched.encode() not in body and people.owner.get_username().encode() not in body
    assert set(entry.payload["search"]) == {"commitment", "pii"}
    assert entry.payload["filter"] == {"type": "ledger.note_added"}
    # and InfoSec can still learn what was searched, through a reveal that is itself recorded
    revealed = pii.reveal(actor=people.infosec, seq=entry.seq, reason="INC-7 who looked whom up")
    assert revealed["search"] == {"q": searched, "actor": people.owner.get_username()}
    assert Entry.objects.filter(event_type="privacy.pii_revealed").exists() or PendingEntry.objects.filter(
        event_type="privacy.pii_revealed").exists()


def test_bad_arguments_are_refused_before_anything_is_written() -> None:
    for bad in ({"channel": "email"}, {"covers": "everything"}):
        arguments: dict[str, Any] = {"actor": Actor.system("t"), "reader": "user:1", "view": "v", "channel": "api",
                                     "subject": Subject("ledger", "entries"), "filter": {}, **bad}
        with pytest.raises(LedgerError):
            ledger_access_record(**arguments)
    assert accesses() == []


def test_references_stay_in_the_clear() -> None:
    assert all(in_the_clear(v) for v in ("123", "#123", "user:42", "service:ci-pipeline", "system:sequencer",
                                         "model_version:fraud-detector/3", "registered_model:fraud"))
    assert not any(in_the_clear(v) for v in ("alice", "user:alice", "login:alice", "Alice Smith",
                                             "nosuchtype:alice", "req-123", "alice@example.com"))
    plain, personal = split_filter({"q": "user:42", "actor": "bob", "subject": "model_version:m/1", "type": "x",
                                    "event_type": ["a", "b"], "since": ""})
    assert plain == {"q": "user:42", "subject": "model_version:m/1", "type": "x", "event_type": ["a", "b"]}
    assert personal == {"actor": "bob"}


# --- the API --------------------------------------------------------------------------------------------


def test_api_pages_of_one_filter_are_one_access_and_a_token_reads_as_its_service_account(
    history: None, token_for: Any
) -> None:
    client = token_for(["ledger:read"])
    url: str | None = f"{ENTRIES}?event_type=ledger.note_added&page_size=3"
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        url = response.json()["next"]
        pages += 1
    assert pages == 5
    [row] = accesses()
    assert (row.actor_type, row.actor_id) == ("service", "pipeline")
    assert payload(row) == {"view": "api-ledger-entries", "channel": "api", "covers": "pages",
                            "window_seconds": 300, "filter": {"event_type": "ledger.note_added"}}
    # a different filter is a new access
    client.get(f"{ENTRIES}?subject=model_version:model/1")
    assert payload(accesses()[-1])["filter"] == {"subject": "model_version:model/1"}
    assert len(accesses()) == 2


def test_api_entry_reads_are_one_access_per_request(history: None, people: People, as_user: Any) -> None:
    client = as_user(people.auditor)
    for seq in (2, 3):
        assert client.get(f"{ENTRIES}/{seq}").status_code == 200
    assert [payload(r)["filter"] for r in accesses()] == [{"seq": 2}, {"seq": 3}]
    assert {(r.actor_type, r.actor_id) for r in accesses()} == {("user", str(people.auditor.pk))}


def test_proofs_are_one_access_per_principal_per_window(history: None, people: People, as_user: Any,
                                                        token_for: Any) -> None:
    verifier = token_for(["ledger:read"])
    for seq in range(6):
        assert verifier.get(f"{ENTRIES}/{seq}/inclusion-proof").status_code == 200
    for old in (1, 2, 3):
        assert verifier.get(f"/api/v1/ledger/consistency-proof?old_size={old}").status_code == 200
    as_user(people.auditor).get(f"{ENTRIES}/1/inclusion-proof?tree_size=12")
    rows = accesses()
    assert [(r.actor_id, payload(r)["view"], payload(r)["filter"]) for r in rows] == [
        ("pipeline", "api-ledger-inclusion-proof", {"seq": 0}),
        ("pipeline", "api-ledger-consistency-proof", {"old_size": "1"}),
        (str(people.auditor.pk), "api-ledger-inclusion-proof", {"seq": 1, "tree_size": "12"}),
    ]
    assert {payload(r)["covers"] for r in rows} == {"principal"}
    assert {(r.subject_type, r.subject_id) for r in rows} == {("ledger", "proofs")}


def test_published_checkpoints_and_keys_are_not_accesses(history: None, people: People, as_user: Any) -> None:
    client = as_user(people.owner)
    for path in ("/api/v1/ledger/checkpoint", "/api/v1/ledger/checkpoints", "/api/v1/ledger/keys"):
        assert client.get(path).status_code == 200
    assert accesses() == []


# --- refused, missing and invalid reads are not accesses ------------------------------------------------------


def test_refused_missing_and_invalid_reads_record_no_access(history: None, people: People, as_user: Any,
                                                            token_for: Any) -> None:
    assert client_for(people.owner).get(LEDGER).status_code == 403
    assert client_for(people.owner).get(reverse("console-entry", args=[1])).status_code == 403
    assert client_for(None).get(LEDGER).status_code == 302
    assert client_for(people.auditor).get(reverse("console-entry", args=[9999])).status_code == 404
    assert as_user(people.owner).get(ENTRIES).status_code == 403
    assert as_user(None).get(ENTRIES).status_code == 401
    assert token_for(["events:write"]).get(ENTRIES).status_code == 403
    assert as_user(people.auditor).get(f"{ENTRIES}/9999").status_code == 404
    assert as_user(people.auditor).get(f"{ENTRIES}?seq_from=x").status_code == 400
    assert as_user(people.auditor).get(f"{ENTRIES}/3/inclusion-proof?tree_size=999999").status_code == 400
    assert as_user(people.auditor).get(f"{ENTRIES}?cursor=%%%").status_code == 400
    assert accesses() == []


def test_a_refused_read_is_an_invalid_access_attempt_counted_once_per_person(
    history: None, people: People, as_user: Any, token_for: Any
) -> None:
    # when the owner tries the explorer, an entry and the API, and a token without ledger:read the API, twice
    for _ in range(2):
        assert client_for(people.owner).get(LEDGER).status_code == 403
        assert client_for(people.owner).get(reverse("console-entry", args=[1])).status_code == 403
        assert as_user(people.owner).get(f"{ENTRIES}/1/inclusion-proof").status_code == 403
    pipeline = token_for(["events:write"])
    for _ in range(2):
        assert pipeline.get(ENTRIES).status_code == 403
    # then one access.check_denied per person for the interval (the repeats are counted, PCI DSS 10.2.1.4),
    # naming the first view tried; and no access
    denied = [(r.actor_type, r.actor_id, json.loads(r.payload_json)) for r in
              PendingEntry.objects.filter(event_type="access.check_denied").order_by("id")]
    assert denied == [
        ("user", str(people.owner.pk), {"principal": f"user:{people.owner.pk}", "resource": "ledger:console-ledger",
                                        "permission": "read_ledger", "level": None}),
        ("service", "pipeline", {"principal": f"user:{pipeline.service_account.user.pk}",
                                 "resource": "ledger:api-ledger-entries", "permission": "read_ledger",
                                 "level": None}),
    ]
    assert accesses() == []


# --- exports --------------------------------------------------------------------------------------------------


@pytest.fixture
def done_export(history: None, people: People, tmp_path: Path) -> Iterator[int]:
    var = tmp_path / "var"
    var.mkdir()
    with override_settings(VAR_DIR=var):
        job = export_create(actor=people.auditor, scope=parse_scope(), fmt="csv", enqueue=False)
        export_run(export_id=job.pk)
        yield job.pk


def test_downloading_an_export_is_an_access_on_each_channel(done_export: int, people: People, as_user: Any,
                                                            token_for: Any) -> None:
    assert client_for(people.auditor).get(reverse("export-download", args=[done_export])).status_code == 200
    assert as_user(people.infosec).get(f"/api/v1/exports/{done_export}/download").status_code == 200
    # and the export's metadata is not (nor is a download refused to another auditor)
    assert client_for(people.auditor).get(reverse("console-export", args=[done_export])).status_code == 200
    reader = token_for(["exports:read"])
    reader.service_account.user.groups.add(Group.objects.get(name=roles.AUDITOR))
    assert reader.get(f"/api/v1/exports/{done_export}/download").status_code == 404
    rows = accesses()
    assert [(r.subject_type, r.subject_id, payload(r)["view"], payload(r)["channel"]) for r in rows] == [
        ("export", str(done_export), "export-download", "console"),
        ("export", str(done_export), "api-export-download", "api"),
    ]
    assert [r.actor_id for r in rows] == [str(people.auditor.pk), str(people.infosec.pk)]


# --- the admin ------------------------------------------------------------------------------------------------


def test_the_admins_entry_pages_are_accesses_too(history: None, people: People) -> None:
    client = client_for(people.auditor)
    for page in ({}, {"p": "1"}, {"p": "0"}):
        assert client.get("/admin/audit/entry/", {"event_type__exact": "ledger.note_added", **page}).status_code \
            == 200
    entry = Entry.objects.order_by("seq").first()
    assert entry is not None
    assert client.get(f"/admin/audit/entry/{entry.pk}/change/").status_code == 200
    assert client.get("/admin/audit/pendingentry/").status_code == 200
    assert [(payload(r)["view"], payload(r)["channel"], payload(r)["filter"]) for r in accesses()] == [
        ("admin:audit_entry_changelist", "admin", {"event_type__exact": "ledger.note_added"}),
        ("admin:audit_entry_change", "admin", {"id": str(entry.pk)}),
        ("admin:audit_pendingentry_changelist", "admin", {}),
    ]
    # and someone without a ledger role never gets as far as a page (the admin sends them to its login)
    assert client_for(people.owner).get("/admin/audit/entry/").status_code == 302
    assert len(accesses()) == 3


# --- the cache is down: record rather than lose -----------------------------------------------------------


@pytest.fixture
def redis_cache(settings: Any, tmp_path: Path) -> Iterator[RedisServer]:
    """The cache on a redis-server of this test's own, which the test kills and restarts."""
    server = RedisServer(tmp_path)
    server.start()
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": server.url,
                                   "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}}
    try:
        yield server
    finally:
        server.kill()


def test_with_the_cache_down_every_page_is_recorded(history: None, people: People,
                                                    redis_cache: RedisServer) -> None:
    client = client_for(people.auditor)
    # given a live Redis: paging through one filter coalesces
    for cursor in ({}, {"before": 9}, {"before": 5}):
        assert client.get(LEDGER, cursor).status_code == 200
    assert len(accesses()) == 1
    # when Redis dies: each page is on the record (none is lost to a window nobody can look up)
    redis_cache.kill()
    for cursor in ({"before": 9}, {"before": 5}):
        assert client.get(LEDGER, cursor).status_code == 200
    assert len(accesses()) == 3
    # and when it is back, an empty one: the next page opens a new window, the one after is covered again
    redis_cache.start()
    for cursor in ({"before": 9}, {"before": 5}):
        assert client.get(LEDGER, cursor).status_code == 200
    assert len(accesses()) == 4
