"""The console's SIEM page: where each sink stands (InfoSec and auditors). Sinks are settings: no action here."""
from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from audit.console.reads import not_a_ledger_read
from integrations.siem.selectors import ledger_head, sink_statuses
from web.console.base import denied, is_oversight

SIEM_NOT_PERMITTED = "The SIEM stream's status is for InfoSec and auditors: you are not permitted to see it."


@not_a_ledger_read("the SIEM sinks' cursors and errors, not the ledger's content")
@login_required
def siem_status(request: HttpRequest) -> HttpResponse:
    if not is_oversight(request.user):
        return denied(request, SIEM_NOT_PERMITTED)
    return render(request, "console/siem.html", {
        "nav": "siem", "sinks": sink_statuses(), "head": ledger_head(), "interval": settings.SIEM_INTERVAL,
    })
