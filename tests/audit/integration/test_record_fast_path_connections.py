"""record()'s kept cursor (the one-pass path on PostgreSQL) follows Django's connection: these commit for real."""
from __future__ import annotations

import pytest
from django.db import connection, transaction

from audit import ledger
from audit.ledger import Subject
from audit.models import PendingEntry
from tests.audit.integration.helpers import ALICE

pytestmark = pytest.mark.usefixtures("on_postgres", "committing_db")


def test_a_new_connection_gets_a_new_cursor() -> None:
    def write(text: str) -> int:
        with transaction.atomic():
            return ledger.record(event_type="ledger.note_added", actor=ALICE,
                                 subject=Subject("model_version", "m/1"), payload={"text": text}).pending_id

    first = write("one")
    connection.close()
    second = write("two")

    assert list(PendingEntry.objects.order_by("pk").values_list("pk", "payload_json")) == [
        (first, '{"text":"one"}'), (second, '{"text":"two"}'),
    ]
