"""The regulation mapping in exports: the bundle's manifest and the audit pack count, for each requirement, the
entries of its event types in the export's scope; the audit pack also renders to one PDF, fetching nothing."""
from __future__ import annotations

import http.server
import io
import json
import socketserver
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import CommandError
from pypdf import PdfReader
from xhtml2pdf import pisa

from audit import ledger
from audit.compliance import FORMAT, FRAMEWORKS
from audit.export.errors import ExportError
from audit.export.pdf import _POLICY, html_to_pdf
from audit.export.service import export_run
from audit.ledger import Subject
from audit.models import Checkpoint, Entry, ExportJob
from audit.signing import current_verifier_key
from tests.audit.export.helpers import Export, members, verify, verify_subprocess

pytestmark = pytest.mark.django_db


def _verified(n: int) -> None:
    """``n`` scheduled-verification entries (PCI 10.2.1.6 and 10.3, DORA Art. 12)."""
    for i in range(n):
        ledger.record(event_type="ledger.verified", actor=ledger.Actor.system("verify"),
                      subject=Subject("ledger", "main"),
                      payload={"mode": "incremental", "from_size": i, "tree_size": i + 1, "ok": True, "reason": None,
                               "duration_ms": 3})
    ledger.integrate()


def _requirement(manifest: dict, framework: str, rid: str) -> dict:
    (f,) = [f for f in manifest["compliance"]["frameworks"] if f["id"] == framework]
    (r,) = [r for r in f["requirements"] if r["id"] == rid]
    return r


def test_the_manifest_counts_each_requirements_entries_and_verify_py_still_accepts_the_bundle(
    history: None, export: Export
) -> None:
    # given a ledger with notes (administrative actions) and three scheduled verifications
    _verified(3)

    # when
    bundle = export()

    # then the counts are those of the bundle's own entries, for every requirement
    files = members(bundle)
    manifest = json.loads(files["manifest.json"])
    counted = Counter(json.loads(line)["body"]["event_type"] for line in files["entries.jsonl"].splitlines())
    assert manifest["compliance"]["format"] == FORMAT
    assert [f["id"] for f in manifest["compliance"]["frameworks"]] == [f.id for f in FRAMEWORKS]
    for framework in FRAMEWORKS:
        for req in framework.requirements:
            got = _requirement(manifest, framework.id, req.id)
            assert [e["type"] for e in got["events"]] == list(req.events)
            assert {e["type"]: e["entries"] for e in got["events"]} == {e: counted[e] for e in req.events}
            assert got["entries"] == sum(counted[e] for e in req.events) and got["status"] == req.status
            assert got["gap"] == req.gap
    assert {"type": "ledger.verified", "entries": 3} in _requirement(manifest, "pci-dss-4.0.1", "10.2.1.6")["events"]
    notes = Entry.objects.filter(event_type="ledger.note_added", seq__lt=manifest["scope"]["ledger_size"]).count()
    assert {"type": "ledger.note_added", "entries": notes} in _requirement(
        manifest, "pci-dss-4.0.1", "10.2.1.2")["events"]
    assert _requirement(manifest, "pci-dss-4.0.1", "10.2.1.4")["entries"] == 0
    assert "compliance" in files["README.txt"].decode()
    # and the bundle still verifies, in process and as a recipient runs it
    key = current_verifier_key()
    assert verify(bundle, key).ok
    assert verify_subprocess(bundle, "--trusted-key", key).returncode == 0


def test_a_filtered_export_counts_only_what_it_holds(history: None, export: Export) -> None:
    _verified(2)
    bundle = export("--event-type", "ledger.verified")
    manifest = json.loads(members(bundle)["manifest.json"])
    assert _requirement(manifest, "pci-dss-4.0.1", "10.2.1.6")["entries"] == 2
    assert _requirement(manifest, "pci-dss-4.0.1", "10.2.1.2")["entries"] == 0  # no notes in a filtered export


def _scope_counts(job: ExportJob) -> Counter[str]:
    subjects = {(t, i) for t, i, _ in job.scope["subjects"]}
    return Counter(e.event_type for e in Entry.objects.filter(seq__lt=job.scope["ledger_size"])
                   if (e.subject_type, e.subject_id) in subjects)


def test_the_html_audit_pack_carries_the_mapping_for_its_scope(story: dict, export: Export) -> None:
    out = export("--model", "fraud-detector", "--format", "report", name="fraud.html")
    page = out.read_text(encoding="utf-8")
    counts = _scope_counts(ExportJob.objects.get())
    assert counts["promotion.requested"] == 2 and counts["promotion.approved"] == 1
    assert "<h2>5. Regulation mapping</h2>" in page
    assert "Art. 17 ICT change management, including emergency changes" in page
    assert f"{counts['promotion.requested']} promotion.requested" in page
    assert f"{counts['compliance.violation']} compliance.violation" in page
    assert "none in this scope" in page  # sign-ins are not about a model
    assert "Partly: Direct database access to the ledger tables" in page  # 10.2.1.3's gap, said in the pack
    assert "chargeback-risk" not in page


def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_the_audit_pack_renders_to_one_pdf_with_the_mapping_and_the_scopes_figures(
    story: dict, export: Export, tmp_path: Path
) -> None:
    # when
    out = export("--model", "fraud-detector", "--format", "pdf", name="fraud.pdf")

    # then a PDF of the pack: the model's facts, the mapping with this scope's figures, the checkpoint
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) >= 2
    text = _pdf_text(data)
    job = ExportJob.objects.get()
    assert job.format == "pdf" and job.state == "done" and job.entries_done == job.entries_total > 0
    counts = _scope_counts(job)
    assert "Audit pack: fraud-detector" in text and "Regulation mapping" in text
    assert "PCI DSS v4.0.1" in text and "EU AI Act" in text and "SOX IT general controls" in text
    assert f"{counts['promotion.requested']} promotion.requested" in text
    assert f"Request #{story['approved'].pk}" in text
    checkpoint = Checkpoint.objects.filter(tree_size=job.checkpoint_size).order_by("-id").first()
    assert checkpoint is not None and checkpoint.root_hash in text.replace("\n", "")
    for user in (story["people"].approver, story["people"].requester):
        assert user.username not in text
    assert Entry.objects.get(seq=job.ledger_seq).payload["format"] == "pdf"
    # and the same export renders to the same bytes (no creation time, no random document id)
    again = export_run(export_id=job.pk, out=tmp_path / "again.pdf")
    assert again.state == "done" and (tmp_path / "again.pdf").read_bytes() == data


def test_a_pdf_without_a_model_is_refused_and_nothing_is_recorded(db: None, export: Export) -> None:
    before = Entry.objects.count()
    with pytest.raises(CommandError, match="the pdf format is about one model: give --model"):
        export("--format", "pdf", name="x.pdf")
    ledger.integrate()
    assert not ExportJob.objects.exists() and Entry.objects.count() == before


@pytest.fixture
def listener() -> Iterator[tuple[int, list[str]]]:
    """A real HTTP server on 127.0.0.1 that records every request it gets (none should come)."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = socketserver.TCPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("markup", [
    '<img src="http://127.0.0.1:{port}/pixel.png">',
    "<style>@import url(http://127.0.0.1:{port}/print.css);</style>",
    "<style>@font-face {{ font-family: X; src: url(http://127.0.0.1:{port}/x.ttf); }} p {{ font-family: X }}</style>",
    '<img src="file:///etc/passwd">',
    '<img src="/etc/hostname">',
])
def test_rendering_fetches_nothing_an_outside_resource_is_refused(
    listener: tuple[int, list[str]], markup: str
) -> None:
    """Attack: markup in the pack pointing at a server (SSRF) or a local file. The render is refused; no
    request reaches the server."""
    port, hits = listener
    with pytest.raises(ExportError, match="outside resource") as refused:
        html_to_pdf(f"<html><head></head><body>{markup.format(port=port)}<p>pack</p></body></html>")
    assert refused.value.code == "pdf_resource_refused"
    assert hits == []


def _images(html: str, base: Path, **policy: object) -> int:
    out = io.BytesIO()
    pisa.CreatePDF(html, dest=out, path=str(base / "pack.html"), **policy)
    return sum(len(page.images) for page in PdfReader(io.BytesIO(out.getvalue())).pages)


def test_the_resource_policy_alone_refuses_local_files(tmp_path: Path) -> None:
    """Defence in depth: xhtml2pdf has paths that skip the link_callback, so its resource policy refuses too.
    A picture beside the document is read under xhtml2pdf's default policy (so the test sees a read), and
    not under the pack's."""
    from PIL import Image

    Image.new("RGB", (4, 4), (200, 0, 0)).save(tmp_path / "pixel.png")
    markup = '<html><body><img src="pixel.png" width="20" height="20"><p>x</p></body></html>'
    assert _images(markup, tmp_path) == 1
    assert _images(markup, tmp_path, resource_policy=_POLICY) == 0


def test_a_pdf_beyond_its_limit_fails_with_the_reason_and_writes_no_file(
    story: dict, export: Export, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("audit.export.pdf.MAX_PDF_ENTRIES", 3)
    with pytest.raises(CommandError, match="the PDF audit pack holds at most 3 entries and this one has 10"):
        export("--model", "fraud-detector", "--format", "pdf", name="big.pdf")
    job = ExportJob.objects.get()
    assert job.state == "failed" and "export the report as HTML or a bundle" in job.error
    assert not (tmp_path / "big.pdf").exists() and not list(tmp_path.glob(".big.pdf.*"))


def test_the_pdf_lists_every_entry_in_tables_of_25() -> None:
    """reportlab splits one long table in quadratic time: the PDF's entries come in tables of 25 rows."""
    from django.template.loader import render_to_string

    entries = [{"seq": i, "timestamp": "2026-12-07T10:00:00.000000Z", "event_type": "ledger.note_added",
                "actor": "user:1", "subject": "model:m", "payload": "{}", "entry_hash": f"{i:064x}"} for i in range(60)]
    page = render_to_string("audit/report.html", {"pdf": True, "entries": entries, "model": {"name": "m"}})
    section = page[page.index("6. The ledger entries"):page.index("7. The checkpoint")]
    assert section.count("<table>") == 1 + 3 and section.count("</table>") == 1 + 3
    text = _pdf_text(html_to_pdf(page)).replace("\n", "")
    assert all(f"{i:064x}" in text for i in range(60))
