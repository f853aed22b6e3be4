"""The superuser flag is no side door: the ledger, its exports and the key commands admit by role only.

The attack: the operator who ran ``createsuperuser`` (no role) reads the ledger, starts or
lists exports, downloads InfoSec's export, or signs a key rotation as "InfoSec". Each is
refused as for any account without a role, and nothing is written (but the one ``access.check_denied`` that
puts the refused reads of the ledger on the record as an invalid access attempt).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from access import roles
from access.roles import has_role
from audit.export.scope import parse_scope
from audit.export.service import export_create, export_run, may_download, may_export
from audit.models import Entry, ExportJob, PendingEntry
from tests.audit.integration.helpers import fill
from tests.factories import SuperuserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _exports_under_tmp(tmp_path: Path) -> Iterator[None]:
    var = tmp_path / "var"
    var.mkdir()
    with override_settings(VAR_DIR=var):
        yield


def _written() -> tuple[int, int, int]:
    return ExportJob.objects.count(), PendingEntry.objects.count(), Entry.objects.count()


def test_a_superuser_without_a_role_has_no_ledger_role() -> None:
    root = SuperuserFactory()
    assert not has_role(root, roles.INFOSEC, roles.AUDITOR)
    assert not may_export(root)


def test_a_superuser_without_a_role_sees_nothing_through_the_api(people, as_user) -> None:
    fill(5)
    job = export_run(export_id=export_create(actor=people.infosec, scope=parse_scope(), fmt="csv",
                                             enqueue=False).pk)
    root = SuperuserFactory()
    assert not may_download(root, job)
    client = as_user(root)
    before = _written()

    assert client.get("/api/v1/ledger/entries").status_code == 403
    assert client.get("/api/v1/ledger/entries/1").status_code == 403
    assert client.get("/api/v1/exports").status_code == 403
    assert client.post("/api/v1/exports", {"format": "csv"}, format="json").status_code == 403
    assert client.get(f"/api/v1/exports/{job.pk}").status_code in (403, 404)
    assert client.get(f"/api/v1/exports/{job.pk}/download").status_code in (403, 404)

    # nothing written but the attempt itself: one access.check_denied for all the refused ledger reads (an
    # invalid access attempt on the audit log, PCI DSS v4 10.2.1.4; the repeats are only counted)
    attempts = PendingEntry.objects.order_by("id")[before[1]:]
    assert [(e.event_type, e.actor_id) for e in attempts] == [("access.check_denied", str(root.pk))]
    assert _written() == (before[0], before[1] + 1, before[2])


def test_a_superuser_with_the_auditor_role_is_just_an_auditor(people, as_user) -> None:
    job = export_create(actor=people.infosec, scope=parse_scope(), fmt="csv", enqueue=False)
    root_auditor = SuperuserFactory(roles=[roles.AUDITOR])
    assert may_export(root_auditor)
    assert not may_download(root_auditor, job)  # InfoSec's export: not theirs
    assert as_user(root_auditor).get(f"/api/v1/exports/{job.pk}").status_code == 404


@pytest.mark.parametrize("command", ["rotate_pii_kek", "rotate_signing_key"])
def test_a_superuser_is_not_infosec_for_the_key_commands(command: str) -> None:
    root = SuperuserFactory()
    before = _written()
    with pytest.raises(CommandError, match="is not an InfoSec member"):
        call_command(command, "--actor", root.username)
    assert _written() == before
