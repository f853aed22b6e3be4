"""/exports/<id>/download: InfoSec downloads any export, an auditor only their own; everyone else gets 404."""
from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from access import roles
from audit.export.scope import parse_scope
from audit.export.service import export_create, export_run
from audit.models import ExportJob
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(history: None, auditor: object) -> ExportJob:
    created = export_create(actor=auditor, scope=parse_scope(), fmt="csv", enqueue=False)
    return export_run(export_id=created.pk)


def get(user: object | None, job: ExportJob) -> int:
    client = Client()
    if user is not None:
        client.force_login(user)  # type: ignore[arg-type]
    response = client.get(f"/exports/{job.pk}/download")
    if response.status_code == 200:
        body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
        assert body == Path(job.file_path).read_bytes()
        assert response["Content-Disposition"] == f'attachment; filename="export-{job.pk}.csv"'
    return response.status_code


def test_the_exporter_and_infosec_download(job: ExportJob, auditor: object, infosec: object) -> None:
    assert get(auditor, job) == 200
    assert get(infosec, job) == 200


def test_everyone_else_gets_404(job: ExportJob, auditor: object, outsider: object) -> None:
    other_auditor = UserFactory(username="otto-auditor", roles=[roles.AUDITOR])
    owner = UserFactory(username="olivia-owner", roles=[roles.MODEL_OWNER, roles.APPROVER])
    for user in (other_auditor, outsider, owner, None):
        assert get(user, job) == 404

    # the exporter who has since lost the auditor role
    auditor.groups.remove(Group.objects.get(name=roles.AUDITOR))  # type: ignore[attr-defined]
    assert get(auditor, job) == 404


def test_unknown_unfinished_and_moved_exports_are_404(job: ExportJob, infosec: object, tmp_path: Path) -> None:
    client = Client()
    client.force_login(infosec)  # type: ignore[arg-type]
    assert client.get(f"/exports/{job.pk + 1000}/download").status_code == 404

    pending = export_create(actor=infosec, scope=parse_scope(), fmt="csv", enqueue=False)  # type: ignore[arg-type]
    assert client.get(f"/exports/{pending.pk}/download").status_code == 404

    # a command-line export written elsewhere is not served
    elsewhere = export_run(export_id=pending.pk, out=tmp_path / "mine.csv")
    assert elsewhere.state == ExportJob.State.DONE
    assert client.get(f"/exports/{pending.pk}/download").status_code == 404

    assert client.post(f"/exports/{job.pk}/download").status_code == 405
