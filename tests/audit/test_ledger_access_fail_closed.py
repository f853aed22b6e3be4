"""No entry, no data: a read of the ledger whose ``ledger.accessed`` entry cannot be written fails, on every
channel, and serves nothing (audit/console/reads.py). The write really fails (the database refuses the row),
so the test commits for real (``committing_db``): a failed write inside the test's own transaction would poison
it."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from rest_framework.test import APIClient

from audit import ledger
from audit.ledger import Actor
from audit.models import Entry, PendingEntry
from tests.audit.integration.helpers import fill, note
from tests.console.helpers import client_for
from tests.personas import People

LEDGER = "/console/ledger/"
ENTRIES = "/api/v1/ledger/entries"


@pytest.fixture
def intake_refuses_accesses(committing_db: None) -> Iterator[None]:
    """The database refuses ``ledger.accessed`` rows in the intake queue (a trigger: a real failure of the write,
    as a full disk or a revoked grant would be), for the test's duration."""
    if connection.vendor == "postgresql":
        create = [
            "CREATE FUNCTION test_refuse_access() RETURNS trigger AS $$ BEGIN "
            "IF NEW.event_type = 'ledger.accessed' THEN RAISE EXCEPTION 'intake refused'; END IF; RETURN NEW; END; "
            "$$ LANGUAGE plpgsql",
            "CREATE TRIGGER test_refuse_access BEFORE INSERT ON audit_pendingentry "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_access()",
        ]
        drop = ["DROP TRIGGER test_refuse_access ON audit_pendingentry", "DROP FUNCTION test_refuse_access()"]
    else:
        create = ["CREATE TRIGGER test_refuse_access BEFORE INSERT ON audit_pendingentry "
                  "WHEN NEW.event_type = 'ledger.accessed' BEGIN SELECT RAISE(ABORT, 'intake refused'); END"]
        drop = ["DROP TRIGGER test_refuse_access"]
    with connection.cursor() as cursor:
        for sql in create:
            cursor.execute(sql)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            for sql in drop:
                cursor.execute(sql)


def test_a_read_that_cannot_be_recorded_is_not_served(committing_db: None, people: People,
                                                      intake_refuses_accesses: None) -> None:
    fill(3, subjects=1)
    note("late 0", subject="model/late", actor=Actor.service("pipeline"))
    ledger.integrate()
    # when the access entry cannot be written, on either channel (the CSV streams after the view returns)
    console = client_for(people.auditor, raise_request_exception=False)
    api = APIClient(raise_request_exception=False)
    api.force_login(people.auditor)
    answers = [console.get(LEDGER, {"actor": "service:pipeline"}),
               console.get(LEDGER, {"actor": "service:pipeline", "format": "csv"}),
               api.get(f"{ENTRIES}?actor=service:pipeline")]
    # then each request fails and none carries an entry
    for response in answers:
        assert response.status_code >= 500
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert b"late 0" not in body and b"service:pipeline" not in body.replace(b"actor=service:pipeline", b"")
    assert not PendingEntry.objects.filter(event_type="ledger.accessed").exists()
    assert not Entry.objects.filter(event_type="ledger.accessed").exists()
