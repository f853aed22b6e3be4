"""/api/v1/exports: InfoSec and auditors export; InfoSec sees all, an auditor their own; others 403/404."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.test import override_settings

from access import roles
from audit.export.scope import parse_scope
from audit.export.service import export_create, export_run
from audit.models import Entry, ExportJob, PendingEntry
from tests.api.helpers import problem_of
from tests.audit.integration.helpers import fill
from tests.personas import make_user

pytestmark = pytest.mark.django_db

URL = "/api/v1/exports"


@pytest.fixture(autouse=True)
def _exports_under_tmp(tmp_path: Path) -> Iterator[None]:
    var = tmp_path / "var"
    var.mkdir()
    with override_settings(VAR_DIR=var):
        yield


@pytest.fixture
def ledger_with_notes(people) -> None:
    fill(12, subjects=2)


@pytest.fixture
def auditor_token(token_for, people):
    """A token with exports:read whose service account is an auditor."""
    client = token_for(["exports:read"])
    client.service_account.user.groups.add(Group.objects.get(name=roles.AUDITOR))
    return client


def start(client, body=None, **kwargs):
    return client.post(URL, body if body is not None else {"format": "csv"}, format="json", **kwargs)


def finished(job_id: int) -> ExportJob:
    return export_run(export_id=job_id)


# --- starting ------------------------------------------------------------------------------------------


def test_an_auditor_starts_an_export_and_it_is_recorded(ledger_with_notes, people, as_user,
                                                        django_capture_on_commit_callbacks):
    # when
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = start(as_user(people.auditor), {"format": "bundle", "since": "2026-01-01",
                                                   "event_types": ["ledger.note_added"]})
    # then
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["state"] == "pending" and body["format"] == "bundle" and body["download_url"] is None
    assert body["created_by"] == {"id": people.auditor.pk, "username": people.auditor.username}
    assert body["scope"]["event_types"] == ["ledger.note_added"]
    assert body["scope"]["since"] == "2026-01-01T00:00:00.000000Z"
    job = ExportJob.objects.get(pk=body["id"])
    assert PendingEntry.objects.filter(event_type="ledger.exported", pk=job.ledger_pending_id).exists()
    assert len(callbacks) >= 1  # the export task is queued after commit


def test_infosec_and_an_auditor_token_may_export(ledger_with_notes, people, as_user, auditor_token):
    assert start(as_user(people.infosec)).status_code == 202
    response = start(auditor_token)
    assert response.status_code == 202
    assert response.json()["created_by"]["id"] == auditor_token.service_account.user.pk


def test_others_may_not_export(ledger_with_notes, people, approver, as_user, token_for):
    # a token with the scope but an account without an export role; a token without the scope
    tokens = [token_for(["exports:read"]), token_for(["ledger:read"])]
    before = ExportJob.objects.count(), PendingEntry.objects.count(), Entry.objects.count()
    for who in (people.owner, approver, people.outsider, people.steward):
        response = start(as_user(who))
        assert response.status_code == 403, who
        problem_of(response)
    for client in tokens:
        assert start(client).status_code == 403
    assert start(as_user(None)).status_code == 401
    assert (ExportJob.objects.count(), PendingEntry.objects.count(), Entry.objects.count()) == before


@pytest.mark.parametrize("body, field_or_words", [
    ({"format": "docx"}, "format"),
    ({"format": "pdf"}, "the pdf format is about one model, and the scope names none"),
    ({"format": "csv", "colour": "red"}, "colour"),
    ({"format": "csv", "since": "yesterday"}, "not an ISO 8601"),
    ({"format": "csv", "since": "2026-11-02", "until": "2026-11-01"}, "is after"),
    ({"format": "csv", "event_types": ["nope.never"]}, "unknown event type"),
    ({"format": "csv", "subjects": ["no-colon"]}, "TYPE:ID"),
    ({"format": "report"}, "the report format is about one model, and the scope names none"),
    ({"format": "csv", "model": "no-such-model"}, "no registered model"),
    ({"format": "csv", "subjects": "model_version:x/1"}, "subjects"),
    ({"format": "csv", "since": "x" * 65}, "since"),
])
def test_a_bad_export_request_is_400(ledger_with_notes, people, as_user, body, field_or_words):
    before = ExportJob.objects.count()
    response = start(as_user(people.auditor), body)
    assert response.status_code == 400, response.content
    problem = problem_of(response)
    fields = {e["field"] for e in problem.get("errors", [])}
    assert field_or_words in fields or field_or_words in problem["detail"], problem
    assert ExportJob.objects.count() == before


def test_a_malformed_body_is_400_and_a_form_415(people, as_user):
    client = as_user(people.auditor)
    assert client.post(URL, "{", content_type="application/json").status_code == 400
    assert client.post(URL, "format=csv", content_type="application/x-www-form-urlencoded").status_code == 415


# --- seeing ------------------------------------------------------------------------------------------------


@pytest.fixture
def jobs(ledger_with_notes, people) -> dict[str, ExportJob]:
    other = make_user("aurelia", roles.AUDITOR)
    return {
        "mine": export_create(actor=people.auditor, scope=parse_scope(), fmt="csv", enqueue=False),
        "other": export_create(actor=other, scope=parse_scope(), fmt="csv", enqueue=False),
        "infosec": export_create(actor=people.infosec, scope=parse_scope(), fmt="csv", enqueue=False),
    }


def test_infosec_lists_every_export_an_auditor_their_own(jobs, people, as_user):
    listed = as_user(people.infosec).get(URL).json()
    assert {j["id"] for j in listed["results"]} == {j.pk for j in jobs.values()}
    assert listed["count"] == 3
    own = as_user(people.auditor).get(URL).json()["results"]
    assert [j["id"] for j in own] == [jobs["mine"].pk]


def test_people_without_an_export_role_are_refused_the_list(jobs, people, approver, as_user, token_for):
    for who in (people.owner, approver, people.outsider):
        assert as_user(who).get(URL).status_code == 403
    assert token_for(["exports:read"]).get(URL).status_code == 403
    assert as_user(None).get(URL).status_code == 401


def test_an_export_another_user_cannot_see_is_404(jobs, people, approver, as_user, auditor_token):
    mine, other = jobs["mine"].pk, jobs["other"].pk
    assert as_user(people.auditor).get(f"{URL}/{mine}").status_code == 200
    assert as_user(people.infosec).get(f"{URL}/{other}").status_code == 200
    cases = [(as_user(people.auditor), other), (auditor_token, mine), (as_user(people.owner), mine),
             (as_user(approver), mine), (as_user(people.outsider), mine), (as_user(people.infosec), 999999)]
    for client, job_id in cases:
        response = client.get(f"{URL}/{job_id}")
        assert response.status_code == 404
        assert problem_of(response)["detail"] == "no such export"


def test_a_token_needs_exports_read(jobs, people, token_for):
    client = token_for(["ledger:read"])
    client.service_account.user.groups.add(Group.objects.get(name=roles.INFOSEC))
    assert client.get(URL).status_code == 403
    assert client.get(f"{URL}/{jobs['mine'].pk}").status_code == 403


def test_progress_and_the_list_have_bounded_queries(jobs, people, as_user, django_assert_max_num_queries):
    client = as_user(people.infosec)
    with django_assert_max_num_queries(7):
        assert len(client.get(URL).json()["results"]) == 3


# --- downloading --------------------------------------------------------------------------------------------


def test_a_finished_export_is_downloaded_by_its_auditor_and_infosec(jobs, people, as_user):
    job = finished(jobs["mine"].pk)
    detail = as_user(people.auditor).get(f"{URL}/{job.pk}").json()
    assert detail["state"] == "done" and detail["entries_done"] == detail["entries_total"]
    assert detail["download_url"].endswith(f"/api/v1/exports/{job.pk}/download")
    for who in (people.auditor, people.infosec):
        response = as_user(who).get(f"{URL}/{job.pk}/download", HTTP_ACCEPT="application/json")
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == Path(job.file_path).read_bytes()
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert response["Content-Disposition"] == f'attachment; filename="export-{job.pk}.csv"'


def test_others_cannot_download(jobs, people, approver, as_user, token_for):
    job = finished(jobs["other"].pk)
    for who in (people.auditor, people.owner, approver, people.outsider):
        assert as_user(who).get(f"{URL}/{job.pk}/download").status_code == 404
    assert token_for(["exports:read"]).get(f"{URL}/{job.pk}/download").status_code == 404


def test_an_unfinished_export_is_409(jobs, people, as_user):
    response = as_user(people.auditor).get(f"{URL}/{jobs['mine'].pk}/download")
    assert response.status_code == 409
    assert "pending" in problem_of(response)["detail"]


def test_the_pdf_audit_pack_of_a_model_is_downloaded_as_pdf(ledger_with_notes, res, people, as_user):
    created = start(as_user(people.auditor), {"format": "pdf", "model": "fraud-detector"})
    assert created.status_code == 202, created.content
    job = finished(created.json()["id"])
    assert job.state == "done", job.error
    response = as_user(people.auditor).get(f"{URL}/{job.pk}/download")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert b"".join(response.streaming_content).startswith(b"%PDF-")
    assert response["Content-Disposition"] == f'attachment; filename="export-{job.pk}.pdf"'


def test_an_auditor_token_downloads_its_own_export(ledger_with_notes, auditor_token):
    created = start(auditor_token).json()
    finished(created["id"])
    response = auditor_token.get(f"{URL}/{created['id']}/download")
    assert response.status_code == 200


def test_the_schema_documents_the_export_endpoints(as_user):
    paths = as_user(None).get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/exports"])
    assert paths["/api/v1/exports/{export_id}/download"]["get"]["tags"] == ["exports"]
