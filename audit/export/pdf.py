"""The audit pack as one PDF, rendered by xhtml2pdf (pure Python, on reportlab: no browser, no network).

``html_to_pdf`` renders the pack's own HTML (``templates/audit/report.html`` with ``pdf`` set: its print
styles). The renderer may fetch nothing: the pack is self-contained, so every reference to a resource
(``<img src>``, ``@import``, fonts, backgrounds) is refused twice over: by a ``link_callback`` that raises
for anything but a ``data:`` URI, and by xhtml2pdf's resource policy with remote fetching and local reads
both off (the callback is not consulted on every path: the policy is). Reportlab's invariant mode makes the
output a function of the HTML alone (no creation time, no random document id), so the same export renders to
the same bytes.
"""
from __future__ import annotations

import io
import logging
import threading

from reportlab import rl_config
from xhtml2pdf import pisa
from xhtml2pdf.config.resources import ResourceAccessError, ResourceAccessPolicy

from audit.export.errors import ExportError

#: The most entries a PDF pack renders (about 20 ms each: some 3-4 minutes at the limit); beyond it the export
#: fails with the reason, and the HTML report or the bundle of the same scope is the way.
MAX_PDF_ENTRIES = 10_000

# Nothing to fetch from anywhere; a generous bound on one render (big packs have thousands of entries).
_POLICY = ResourceAccessPolicy(allow_remote=False, base_dir=None, allow_remote_pdf_backgrounds=False,
                               max_render_seconds=1800.0)
# rl_config.invariant is process-wide: one render at a time sets and restores it.
_invariant = threading.Lock()


def _refuse(uri: str, rel: str | None) -> None:
    """xhtml2pdf's link_callback: keep ``data:`` URIs (part of the document), refuse everything else."""
    if str(uri).startswith("data:"):
        return None
    raise ExportError(f"the audit pack refers to an outside resource ({str(uri)[:80]!r}): refused, "
                      "nothing is fetched while rendering", code="pdf_resource_refused")


def html_to_pdf(html: str) -> bytes:
    """``html`` as a PDF. Raises ExportError when it cannot be rendered or refers to an outside resource."""
    out = io.BytesIO()
    with _invariant:
        before = rl_config.invariant
        rl_config.invariant = 1
        try:
            result = pisa.CreatePDF(html, dest=out, encoding="utf-8", link_callback=_refuse,
                                    resource_policy=_POLICY)
        except ResourceAccessError as exc:
            raise ExportError(f"the audit pack refers to an outside resource: refused ({exc})",
                              code="pdf_resource_refused") from None
        finally:
            rl_config.invariant = before
    if result.err:
        logging.getLogger(__name__).error("the audit pack did not render to PDF (%s error(s))", result.err)
        raise ExportError("the audit pack could not be rendered to PDF", code="pdf_failed")
    data = out.getvalue()
    if not data.startswith(b"%PDF-"):
        raise ExportError("the audit pack could not be rendered to PDF", code="pdf_failed")
    return data
