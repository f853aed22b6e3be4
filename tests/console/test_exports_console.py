"""Exports pages: start an export (recorded), follow it, download it; who may."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from audit.export import sections
from audit.ledger import integrate
from audit.models import Entry, ExportJob, PendingEntry
from governance.models import RegisteredModel
from tests.catalog import Resources
from tests.console.helpers import client_for, seed_ledger
from tests.personas import People

pytestmark = pytest.mark.django_db
EXPORTS = reverse("console-exports")


@pytest.fixture(autouse=True)
def _exports_in_tmp(settings: Any, tmp_path: Path) -> None:
    settings.VAR_DIR = tmp_path


def _start(client: Any, capture: Any, **data: Any) -> Any:
    with capture(execute=True):
        return client.post(EXPORTS, {"format": "bundle", **data})


def test_anonymous_is_sent_to_login() -> None:
    response = client_for(None).get(EXPORTS)
    assert response.status_code == 302 and response["Location"].startswith("/console/login/")


@pytest.mark.parametrize("who", ["approver", "owner", "steward", "outsider"])
def test_exports_are_refused_to_others(people: People, who: str) -> None:
    client = client_for(getattr(people, who))
    assert client.get(EXPORTS).status_code == 403
    response = client.post(EXPORTS, {"format": "csv"})
    assert response.status_code == 403 and "not permitted" in response.content.decode()
    assert not ExportJob.objects.exists()


def test_auditor_starts_follows_and_downloads_an_export(
    people: People, django_capture_on_commit_callbacks: Any
) -> None:
    seed_ledger(3)
    client = client_for(people.auditor)
    # when
    response = _start(client, django_capture_on_commit_callbacks, format="bundle",
                      event_types=["ledger.note_added"], since="2000-01-01")
    # then: redirected to the export's page, which the eager task has finished
    job = ExportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("console-export", args=[job.pk])
    detail = client.get(response["Location"]).content.decode()
    assert job.created_by == people.auditor
    job.refresh_from_db()
    assert job.state == "done", job.error
    assert job.file_sha256 in detail and "Download export" in detail and "export-progress.js" not in detail
    download = client.get(reverse("export-download", args=[job.pk]))
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    integrate()
    recorded = Entry.objects.get(event_type="ledger.exported")
    assert recorded.actor_id == str(people.auditor.pk)
    assert recorded.payload["scope"]["event_types"] == ["ledger.note_added"]
    listing = client.get(EXPORTS).content.decode()
    assert f"#{job.pk}<" in listing and "ledger.note_added" in listing and "audrey" in listing


def test_a_running_export_updates_itself_in_place(people: People) -> None:
    # A script polls and replaces the state section; no <meta refresh> (it would reload the page under the
    # reader's focus: WCAG 2.2.1).
    seed_ledger(1)
    client = client_for(people.infosec)
    client.post(EXPORTS, {"format": "csv"})  # no commit in this test: the task never runs
    job = ExportJob.objects.get()
    html = client.get(reverse("console-export", args=[job.pk])).content.decode()
    assert job.state == "pending" and "Download export" not in html
    assert "export-progress.js" in html and 'id="export-state"' in html and "data-running" in html
    assert 'http-equiv="refresh"' not in html


def test_an_auditor_cannot_download_anothers_export_but_infosec_can(
    people: People, django_capture_on_commit_callbacks: Any
) -> None:
    seed_ledger(1)
    _start(client_for(people.infosec), django_capture_on_commit_callbacks, format="csv")
    job = ExportJob.objects.get()
    auditor = client_for(people.auditor)
    assert "Download export" not in auditor.get(reverse("console-export", args=[job.pk])).content.decode()
    assert auditor.get(reverse("export-download", args=[job.pk])).status_code == 404
    assert client_for(people.infosec).get(reverse("export-download", args=[job.pk])).status_code == 200


@pytest.mark.parametrize("data, message", [
    ({"format": "zip"}, "format must be one of"),
    ({"format": "report"}, "an audit pack (HTML or PDF) is about one model: pick exactly one model"),
    ({"format": "pdf"}, "an audit pack (HTML or PDF) is about one model: pick exactly one model"),
    ({"format": "pdf", "model": ["fraud-detector", "credit-scoring"]}, "pick exactly one model"),
    ({"since": "not-a-date"}, "not an ISO 8601 date"),
    ({"since": "2026-02-01", "until": "2026-01-01"}, "is after"),
    ({"event_types": ["no.such"]}, "unknown event type"),
    ({"subjects": "no-colon-here"}, "must look like TYPE:ID"),
    ({"model": "no-such-model"}, "no model named &#x27;no-such-model&#x27; among those you may export"),
    ({"format": "report", "model": ["fraud-detector", "credit-scoring"]}, "pick exactly one model"),
])
def test_bad_scopes_are_messages_and_write_nothing(
    people: People, res: Resources, data: dict[str, Any], message: str
) -> None:
    RegisteredModel.objects.create(name="credit-scoring", owner=people.owner)
    seed_ledger(1)
    before = PendingEntry.objects.count()
    response = client_for(people.auditor).post(EXPORTS, {"format": "bundle", **data})
    assert response.status_code == 400
    html = response.content.decode()
    assert "The export was not started" in html and message in html
    assert not re.search(r"--[a-z]", html), "a command-line flag in the console"
    assert not ExportJob.objects.exists() and PendingEntry.objects.count() == before


def test_starting_an_export_needs_a_csrf_token(people: People) -> None:
    response = client_for(people.auditor, csrf=True).post(EXPORTS, {"format": "csv"})
    assert response.status_code == 403 and not ExportJob.objects.exists()


def test_missing_export_is_a_404_page(people: People) -> None:
    response = client_for(people.auditor).get(reverse("console-export", args=[999]))
    assert response.status_code == 404 and "No export #999" in response.content.decode()


def test_export_list_queries_are_bounded(
    people: People, django_assert_max_num_queries: Any
) -> None:
    seed_ledger(1)
    client = client_for(people.infosec)
    client.post(EXPORTS, {"format": "csv"})
    with django_assert_max_num_queries(8):
        client.get(EXPORTS)
    for _ in range(30):
        client.post(EXPORTS, {"format": "csv"})
    with django_assert_max_num_queries(8):
        response = client.get(EXPORTS)
    assert "Next →" in response.content.decode()


def _without_csrf(response: Any) -> str:
    return re.sub(r'value="[A-Za-z0-9]{64}"', "", response.content.decode())


def test_an_auditor_sees_no_metadata_of_anothers_export(
    people: People, django_capture_on_commit_callbacks: Any
) -> None:
    """Issue 9e: the console shows exactly the exports the API shows (``exports_visible_to``)."""
    from access import roles
    from tests.personas import make_user

    # given: InfoSec and another auditor each exported something with a recognisable scope
    seed_ledger(1)
    _start(client_for(people.infosec), django_capture_on_commit_callbacks, format="csv", since="2001-02-03")
    other = make_user("arno", roles.AUDITOR)
    _start(client_for(other), django_capture_on_commit_callbacks, format="csv", since="2004-05-06")
    theirs = list(ExportJob.objects.order_by("pk"))
    auditor = client_for(people.auditor)
    # when: the auditor lists, opens and downloads them
    listing = auditor.get(EXPORTS).content.decode()
    pages = [auditor.get(reverse("console-export", args=[job.pk])) for job in theirs]
    missing = auditor.get(reverse("console-export", args=[999]))
    # then: nothing of theirs appears, and each page is the "no such export" page of a missing one
    for job in theirs:
        assert f"#{job.pk}<" not in listing and job.file_sha256 not in listing
    assert "2001-02-03" not in listing and "2004-05-06" not in listing and "arno" not in listing
    for job, page in zip(theirs, pages, strict=True):
        assert page.status_code == missing.status_code == 404
        assert _without_csrf(page) == _without_csrf(missing).replace("999", str(job.pk))
        assert auditor.get(reverse("export-download", args=[job.pk])).status_code == 404
    # and their own still shows, with InfoSec seeing everything
    _start(auditor, django_capture_on_commit_callbacks, format="csv", since="2007-08-09")
    assert "2007-08-09" in auditor.get(EXPORTS).content.decode()
    infosec_listing = client_for(people.infosec).get(EXPORTS).content.decode()
    assert all(f"#{job.pk}<" in infosec_listing for job in ExportJob.objects.all())


# --- the form's pickers -------------------------------------------------------------------------------------


def test_the_form_offers_pickers_of_models_datasets_and_event_types(people: People, res: Resources) -> None:
    html = client_for(people.auditor).get(EXPORTS).content.decode()
    assert "<select multiple" not in html and 'name="model" maxlength' not in html
    for name in ("fraud-detector",):
        assert f'<input type="checkbox" name="model" value="{name}">' in html
    for dataset in (res.internal, res.restricted, res.pci):
        assert f'<input type="checkbox" name="dataset" value="{dataset.name}">' in html
    assert '<input type="checkbox" name="event_types" value="ledger.note_added">' in html
    assert html.count('<fieldset class="checks picker"') == 3 and "console/pickers.js" in html
    assert not re.search(r"--[a-z]", html)


def test_two_models_picked_export_the_subjects_of_both(
    people: People, res: Resources, django_capture_on_commit_callbacks: Any
) -> None:
    RegisteredModel.objects.create(name="credit-scoring", owner=people.owner)
    seed_ledger(1)
    response = _start(client_for(people.infosec), django_capture_on_commit_callbacks, format="csv",
                      model=["fraud-detector", "credit-scoring"])
    job = ExportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("console-export", args=[job.pk])
    subjects = {(t, i) for t, i, _ in job.scope["subjects"]}
    assert {("registered_model", "fraud-detector"), ("registered_model", "credit-scoring"),
            ("model_version", "fraud-detector/1"), ("model_version", "fraud-detector/2")} <= subjects
    job.refresh_from_db()
    assert job.state == "done", job.error


def test_the_audit_pack_of_a_model_is_offered_and_downloaded_as_pdf(
    people: People, res: Resources, django_capture_on_commit_callbacks: Any
) -> None:
    """The form offers the PDF audit pack; the file is the pack (the regulation mapping in it), served as PDF."""
    from io import BytesIO

    from pypdf import PdfReader

    client = client_for(people.auditor)
    assert '<option value="pdf" >audit pack of a model (PDF)</option>' in client.get(EXPORTS).content.decode()
    seed_ledger(1)
    _start(client, django_capture_on_commit_callbacks, format="pdf", model="fraud-detector")
    job = ExportJob.objects.get()
    job.refresh_from_db()
    assert job.state == "done" and job.format == "pdf", job.error
    assert "Download export" in client.get(reverse("console-export", args=[job.pk])).content.decode()
    download = client.get(reverse("export-download", args=[job.pk]))
    assert download.status_code == 200 and download["Content-Type"] == "application/pdf"
    data = b"".join(download.streaming_content)  # type: ignore[attr-defined]
    assert data.startswith(b"%PDF-") and download["Content-Disposition"].endswith(f'export-{job.pk}.pdf"')
    text = " ".join(page.extract_text() for page in PdfReader(BytesIO(data)).pages)
    assert "Audit pack: fraud-detector" in text and "Regulation mapping" in text


def test_one_model_picked_is_the_scopes_own_model(
    people: People, res: Resources, django_capture_on_commit_callbacks: Any
) -> None:
    seed_ledger(1)
    _start(client_for(people.auditor), django_capture_on_commit_callbacks, format="csv", model="fraud-detector",
           dataset=res.internal.name)
    scope = ExportJob.objects.get().scope
    assert scope["model"] == "fraud-detector" and scope["dataset"] == "payments-internal"


def test_a_model_the_viewer_may_not_see_posted_by_hand_is_refused(
    people: People, res: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a viewer whose visibility rule shows them only credit-scoring
    RegisteredModel.objects.create(name="credit-scoring", owner=people.owner)
    monkeypatch.setitem(sections._choices, "model", lambda viewer: ["credit-scoring"])
    seed_ledger(1)
    before = PendingEntry.objects.count()
    # when they post fraud-detector, which exists
    response = client_for(people.auditor).post(EXPORTS, {"format": "bundle", "model": ["credit-scoring",
                                                                                       "fraud-detector"]})
    # then: the words of an unknown name, and nothing started or recorded
    assert response.status_code == 400
    assert "no model named &#x27;fraud-detector&#x27; among those you may export" in response.content.decode()
    assert 'value="fraud-detector"' not in response.content.decode()
    assert not ExportJob.objects.exists() and PendingEntry.objects.count() == before
