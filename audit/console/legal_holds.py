"""The console's legal holds: InfoSec places and releases them, auditors see them."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from audit.models import LegalHold
from audit.services.retention import legal_hold_create, legal_hold_release
from web.console.base import denied, display_names, is_oversight, paginate, redirect_back, run_action

HOLDS_NOT_PERMITTED = "Legal holds are for InfoSec and auditors: you are not permitted to see them."


# --- legal holds ----------------------------------------------------------------------------------------------

HOLD_FILTERS = ("all", "active", "released")


@login_required
def legal_holds(request: HttpRequest) -> HttpResponse:
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
    # Active holds (no release time) first, then the most recently released.
    holds = holds.order_by(F("released_at").desc(nulls_first=True), "-created_at", "-id")
    page, qs = paginate(request, holds)
    return render(request, "console/legal_holds.html", {
        "nav": "legal-holds", "page": page, "qs": qs, "show": show, "filters": HOLD_FILTERS,
        "names": display_names(h.data_subject for h in page.object_list),
    })


# Auditors reach the service, which refuses them with a message (InfoSec only); anyone else gets the 403 page.


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
