"""The OCSF mapping (integrations/siem/ocsf.py): one row per registered event type, and what an entry becomes."""
from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction

from audit.event_types import registry
from audit.ledger import Actor, Subject, integrate, record
from audit.models import Entry
from integrations.siem import ocsf
from integrations.siem.catalogue import DOC_PATH
from integrations.siem.ocsf import CLASSES, MAPPING, SEVERITIES, UnmappedEventType, to_ocsf


def _entry(event_type: str, payload: dict[str, object], **kw: object) -> Entry:
    values: dict[str, object] = {
        "seq": 7, "timestamp": "2026-11-29T06:41:04.123456Z", "event_type": event_type, "actor_type": "user",
        "actor_id": "42", "subject_type": "user", "subject_id": "43", "payload_json": json.dumps(payload),
        "prev_hash": "a" * 64, "subject_prev": None, "entry_hash": "b" * 64, "pending_id": 1, "request_id": None,
    }
    values.update(kw)
    return Entry(**values)


def test_every_registered_event_type_has_exactly_one_mapping() -> None:
    missing = sorted(set(registry.names()) - set(MAPPING))
    assert not missing, f"event types without an OCSF row in integrations/siem/ocsf.py: {missing}"
    stale = sorted(set(MAPPING) - set(registry.names()))
    assert not stale, f"OCSF rows for event types that are not registered: {stale}"


@pytest.mark.parametrize("name", sorted(MAPPING))
def test_every_row_names_a_known_class_activity_and_severity(name: str) -> None:
    row = MAPPING[name]
    assert row.class_uid in CLASSES
    assert row.activity_id in CLASSES[row.class_uid][3]
    assert row.severity_id in SEVERITIES
    assert row.status_id in (None, ocsf.SUCCESS, ocsf.FAILURE)


def test_an_unknown_event_type_is_an_error_not_other() -> None:
    with pytest.raises(UnmappedEventType, match=r"auth\.teleported"):
        to_ocsf(_entry("auth.teleported", {}))


def test_a_failed_login_is_an_authentication_failure() -> None:
    event = to_ocsf(_entry("auth.login_failed", {"channel": "console", "origin": "c0ffee"}, request_id="r-1"))
    assert (event["class_uid"], event["category_uid"], event["activity_id"]) == (3002, 3, 1)
    assert event["type_uid"] == 300201
    assert (event["status_id"], event["status"], event["severity_id"]) == (2, "Failure", 3)
    assert event["time"] == 1795934464123
    assert event["actor"] == {"user": {"uid": "42", "type": "user"}}
    assert event["user"] == {"uid": "43", "type": "user"}
    assert event["metadata"] == {
        "version": ocsf.OCSF_VERSION, "product": ocsf.PRODUCT, "uid": "b" * 64, "sequence": 7,
        "event_code": "auth.login_failed", "original_time": "2026-11-29T06:41:04.123456Z", "log_name": "ledger",
        "correlation_uid": "r-1"}
    assert event["unmapped"]["payload"] == {"channel": "console", "origin": "c0ffee"}


def test_a_ledger_verification_that_failed_is_a_high_severity_failure() -> None:
    ok = to_ocsf(_entry("ledger.verified", {"ok": True}, subject_type="ledger"))
    broken = to_ocsf(_entry("ledger.verified", {"ok": False}, subject_type="ledger"))
    assert (ok["status"], ok["severity_id"]) == ("Success", 1)
    assert (broken["status"], broken["severity_id"], broken["severity"]) == ("Failure", 4, "High")
    # The cached constant part of the type was not changed by the failure.
    assert to_ocsf(_entry("ledger.verified", {"ok": True}, subject_type="ledger"))["severity_id"] == 1


def test_violations_are_detection_findings() -> None:
    event = to_ocsf(_entry("compliance.violation", {}, subject_type="promotion_request"))
    assert (event["class_uid"], event["class_name"], event["severity"]) == (2004, "Detection Finding", "High")


@pytest.mark.django_db
def test_personal_data_never_leaves_in_clear() -> None:
    # Personal fields are references and commitments in the body (audit/pii.py); the OCSF event is built from
    # the body, so a SIEM never receives the value itself.
    with transaction.atomic():
        record(event_type="auth.user_registered", actor=Actor.system("test"), subject=Subject("user", "43"),
               payload={"username": "jdoe-secret", "email": "jdoe@example.org", "full_name": "Jane Doe"},
               data_subject="user:43")
    integrate()
    text = json.dumps(to_ocsf(Entry.objects.get(event_type="auth.user_registered")))
    for value in ("jdoe-secret", "jdoe@example.org", "Jane Doe"):
        assert value not in text
    assert '"commitment"' in text


def test_the_generated_mapping_in_docs_siem_md_is_current() -> None:
    out = StringIO()
    call_command("siem_mapping", "--check", stdout=out)
    assert "is current" in out.getvalue()
    assert "`auth.login_failed` | Authentication (3002) | Logon (1) | 3 | Failure" in DOC_PATH.read_text()


def test_a_stale_mapping_section_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MAPPING, "auth.login_failed", ocsf.Mapping(3002, 1, 5, ocsf.FAILURE))
    with pytest.raises(CommandError, match="stale"):
        call_command("siem_mapping", "--check", stdout=StringIO())
