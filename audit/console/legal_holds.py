"""The console's legal holds: InfoSec places and releases them, auditors see them."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from audit.console.reads import not_a_ledger_read
from audit.models import LegalHold
from audit.services.retention import legal_hold_create, legal_hold_release
from web.console.base import denied, display_names, is_oversight, redirect_back, run_action
from web.console.tables import Column, TableSpec, csv_response, table, wants_csv

_NOT_A_READ = not_a_ledger_read("legal holds (whose personal data may not be erased), not the ledger's content")
HOLDS_NOT_PERMITTED = "Legal holds are for InfoSec and auditors: you are not permitted to see them."

HOLDS_TABLE = TableSpec(
    name="legal-holds",
    columns=(
        Column("id", "#", ("id",), lambda h: h.pk, desc_first=True),
        Column("subject", "Data subject", ("data_subject",), lambda h: h.data_subject),
        Column("state", "State", value=lambda h: "active" if h.active else "released"),
        Column("reason", "Reason", value=lambda h: h.reason),
        Column("reference", "Reference", ("reference",), lambda h: h.reference),
        Column("placed_by", "Placed by", value=lambda h: h.created_by.get_username()),
        Column("placed", "Placed", ("created_at",), lambda h: h.created_at, desc_first=True),
        Column("released_by", "Released by",
               value=lambda h: h.released_by.get_username() if h.released_by_id else ""),
        # Ascending: the earliest release first, active holds (no release) last; the default reverses it.
        Column("released", "Released", (F("released_at").asc(nulls_last=True), "created_at"),
               lambda h: h.released_at, desc_first=True),
        Column("release_reason", "Release reason", value=lambda h: h.release_reason),
    ),
    # Active holds (no release time) first, then the most recently released.
    default_sort="-released",
)


# --- legal holds ----------------------------------------------------------------------------------------------

HOLD_FILTERS = ("all", "active", "released")


@_NOT_A_READ
@login_required
def legal_holds(request: HttpRequest) -> HttpResponseBase:
    if not is_oversight(request.user):
        return denied(request, HOLDS_NOT_PERMITTED)
    show = request.GET.get("show", "all")
    if show not in HOLD_FILTERS:
        show = "all"
    holds = LegalHold.objects.select_related("created_by", "released_by")
    if show == "active":
        holds = holds.filter(released_at__isnull=True)
    elif show == "released":
        holds = holds.filter(released_at__isnull=False)
    if wants_csv(request):
        return csv_response(request, HOLDS_TABLE, holds)
    view = table(request, HOLDS_TABLE, holds)
    return render(request, "console/legal_holds.html", {
        "nav": "legal-holds", "page": view.page, "qs": view.query, "table": view, "show": show,
        "filters": HOLD_FILTERS,
        "names": display_names(h.data_subject for h in view.page.object_list),
    })


# Auditors reach the service, which refuses them with a message (InfoSec only); anyone else gets the 403 page.


@_NOT_A_READ
@login_required
@require_POST
def legal_hold_new(request: HttpRequest) -> HttpResponse:
    if not is_oversight(request.user):
        return denied(request, HOLDS_NOT_PERMITTED)
    post = request.POST
    data_subject = post.get("data_subject", "")
    run_action(
        request,
        lambda: legal_hold_create(actor=request.user, data_subject=data_subject,  # type: ignore[arg-type]
                                  reason=post.get("reason", ""), reference=post.get("reference", "")),
        f"Legal hold placed on {data_subject.strip()}: retention will not erase its personal data until released.",
    )
    return redirect_back(request, reverse("console-legal-holds"))


@_NOT_A_READ
@login_required
@require_POST
def legal_hold_release_view(request: HttpRequest, hold_id: int) -> HttpResponse:
    if not is_oversight(request.user):
        return denied(request, HOLDS_NOT_PERMITTED)
    hold = get_object_or_404(LegalHold, pk=hold_id)
    run_action(
        request,
        lambda: legal_hold_release(actor=request.user, hold=hold,  # type: ignore[arg-type]
                                   reason=request.POST.get("reason", "")),
        f"Legal hold #{hold.pk} on {hold.data_subject} is released.",
    )
    return redirect_back(request, reverse("console-legal-holds"))
