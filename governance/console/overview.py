"""The console's dashboard and compliance-violations pages.

Oversight (InfoSec, auditors) sees the ledger's integrity, activity charts and
violations; everyone signed in sees the queues that wait on them. Charts are
inline SVG computed here from SQL aggregates: no JavaScript library, nothing
loaded from the network.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.db.models import Count, F, Q
from django.db.models.functions import Substr
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from access import roles
from access import selectors as access_selectors
from access.models import AccessRequest, Dataset
from access.roles import has_role
from audit.models import Checkpoint, Entry, LedgerHead, PendingEntry
from audit.services.integrity import last_verification
from audit.services.witnessing import witness_quorum_status
from governance import selectors
from governance.errors import GovernanceError, NotPermitted
from governance.models import BreakGlassReview, ComplianceViolation, PromotionRequest, RegisteredModel
from governance.services import compliance
from web import embedded_scheduler
from web.console.base import denied, is_oversight
from web.console.tables import Column, TableSpec, csv_response, table, wants_csv

# Who signs checkpoints and runs the other periodic tasks, as web.embedded_scheduler.state() says:
# (label, whether it is a warning). Without a broker and without the embedded scheduler nothing does.
SCHEDULER_LABELS = {
    "celery_beat": ("periodic tasks: celery beat", False),
    "running": ("periodic tasks: this server (embedded scheduler, no broker)", False),
    "standby": ("periodic tasks: another process of this server (embedded scheduler)", False),
}
SCHEDULER_OFF = ("no scheduler runs here: without a broker nothing signs checkpoints (EMBEDDED_SCHEDULER)", True)
# Rows a dashboard queue shows; its heading counts them all.
QUEUE_ROWS = 8
CHART_DAYS = 14
# Chart series are coloured by the stylesheet (.series-0 ... .series-7 in static/console/console.css).
SERIES_COLOURS = 8


# --- charts ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: int  # its colour: .series-N in the stylesheet
    title: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    labels: Sequence[tuple[float, float, str, str]]  # x, y, text, text-anchor
    legend: list[tuple[int, str]]  # series (its colour), name
    table_head: list[str]
    table_rows: list[list[Any]]
    summary: str
    max_value: int


def _domains_by_day(since: datetime) -> dict[str, dict[str, int]]:
    """Events per day per domain (the event type's prefix), from one GROUP BY query."""
    rows = (
        Entry.objects.filter(timestamp__gte=since.strftime("%Y-%m-%dT%H:%M:%S"))
        .annotate(day=Substr("timestamp", 1, 10))
        .values("day", "event_type")
        .annotate(n=Count("seq"))
        .order_by()
    )
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        domain = row["event_type"].split(".", 1)[0]
        day = out.setdefault(row["day"], {})
        day[domain] = day.get(domain, 0) + row["n"]
    return out


def activity_chart(now: datetime) -> Chart:
    start = (now - timedelta(days=CHART_DAYS - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [(start + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(CHART_DAYS)]
    counts = _domains_by_day(start)
    totals: dict[str, int] = {}
    for per_day in counts.values():
        for domain, n in per_day.items():
            totals[domain] = totals.get(domain, 0) + n
    # The biggest domains get their own colour, the rest are "other".
    top = [d for d, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[: SERIES_COLOURS - 1]]
    series = [*top, "other"] if len(totals) > len(top) else top
    colour = {name: i for i, name in enumerate(series)}
    width, height, left, bottom, top_pad = 640, 200, 34, 22, 8
    slot = (width - left) / CHART_DAYS
    day_totals = [sum(counts.get(day, {}).values()) for day in days]
    peak = max(day_totals, default=0) or 1
    scale = (height - bottom - top_pad) / peak
    bars: list[Bar] = []
    rows: list[list[Any]] = []
    for i, day in enumerate(days):
        per_day = counts.get(day, {})
        stacked: dict[str, int] = {}
        for domain, n in per_day.items():
            key = domain if domain in colour else "other"
            stacked[key] = stacked.get(key, 0) + n
        y = float(height - bottom)
        for name in series:
            n = stacked.get(name, 0)
            if not n:
                continue
            h = n * scale
            y -= h
            bars.append(Bar(left + i * slot + 2, round(y, 1), round(slot - 4, 1), round(h, 1), colour[name],
                            f"{day}: {n} {name}"))
        rows.append([day, *[stacked.get(name, 0) for name in series], sum(stacked.values())])
    labels = [(left + i * slot + slot / 2, height - 6, day[5:], "middle") for i, day in enumerate(days)
              if i % 2 == (CHART_DAYS - 1) % 2]
    labels += [(left - 4, top_pad + 10, str(peak), "end"), (left - 4, height - bottom, "0", "end")]
    return Chart(width, height, bars, labels, [(colour[n], n) for n in series], ["day", *series, "total"], rows,
                 f"Ledger events per day over the last {CHART_DAYS} days, by domain; {sum(day_totals)} in all.", peak)


def promotions_chart() -> Chart:
    """Promotion requests per environment, stacked by state (one GROUP BY query)."""
    rows = (
        PromotionRequest.objects.values("environment__name", "environment__order", "state")
        .annotate(n=Count("id"))
        .order_by("environment__order", "environment__name")
    )
    envs: dict[str, dict[str, int]] = {}
    for row in rows:
        envs.setdefault(row["environment__name"], {})[row["state"]] = row["n"]
    states = [s for s in PromotionRequest.State.values if any(s in per for per in envs.values())]
    colour = {s: i % SERIES_COLOURS for i, s in enumerate(states)}
    width, left, row_h = 640, 90, 26
    height = max(1, len(envs)) * row_h + 8
    peak = max((sum(per.values()) for per in envs.values()), default=0) or 1
    scale = (width - left - 40) / peak
    bars: list[Bar] = []
    labels: list[tuple[float, float, str, str]] = []
    table: list[list[Any]] = []
    for i, (env, per) in enumerate(envs.items()):
        x = float(left)
        for state in states:
            n = per.get(state, 0)
            if n:
                w = n * scale
                bars.append(Bar(round(x, 1), i * row_h + 4, round(w, 1), row_h - 8, colour[state],
                                f"{env}: {n} {state}"))
                x += w
        labels.append((left - 6, i * row_h + row_h / 2 + 4, env, "end"))
        labels.append((x + 4, i * row_h + row_h / 2 + 4, str(sum(per.values())), "start"))
        table.append([env, *[per.get(s, 0) for s in states], sum(per.values())])
    total = sum(r[-1] for r in table)
    return Chart(width, height, bars, labels, [(colour[s], s.replace("_", " ")) for s in states],
                 ["environment", *states, "total"], table,
                 f"Promotion requests per environment by state; {total} in all.", peak)


# --- the dashboard ---------------------------------------------------------------------------------------


def _witness_status() -> Any:
    """Witnessing at a glance (None when no witness is configured)."""
    if not settings.LEDGER_WITNESSES:
        return None
    return witness_quorum_status()


def _visible_expiring(user: User, oversight: bool) -> list[Any]:
    expiring = access_selectors.grants_expiring(within=timedelta(days=7))
    if oversight or not expiring:
        return expiring
    shown = access_selectors.grants_visible_to(user).filter(pk__in=[g.pk for g in expiring])
    visible = set(shown.values_list("pk", flat=True))
    return [g for g in expiring if g.pk in visible]


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    now = timezone.now()
    oversight = is_oversight(user)
    context: dict[str, Any] = {"nav": "dashboard", "oversight": oversight, "now": now}
    awaiting_access = access_selectors.requests_awaiting(user)
    expiring = _visible_expiring(user, oversight)
    labels = access_selectors.resource_labels([*awaiting_access, *expiring])
    review_items = access_selectors.review_items_awaiting(user).select_related("campaign", "grant", "grant__user",
                                                                               "grant__group")
    unclassified = access_selectors.datasets_awaiting_classification(user)
    items_shown = list(review_items[:QUEUE_ROWS])
    review_labels = access_selectors.resource_labels([i.grant for i in items_shown]) if items_shown else {}
    context.update(
        # A data steward's (and any reviewer's) own review work: access-review items and unclassified datasets.
        review_items=[(i, review_labels.get((i.grant.resource_type, i.grant.resource_id), "")) for i in items_shown],
        review_items_total=review_items.count() if len(items_shown) == QUEUE_ROWS else len(items_shown),
        unclassified=list(unclassified[:QUEUE_ROWS]),
        unclassified_total=unclassified.count(),
        promotions_awaiting=selectors.requests_awaiting(user),
        access_awaiting=[(r, labels.get((r.resource_type, r.resource_id), "")) for r in awaiting_access],
        grants_expiring=[(g, labels.get((g.resource_type, g.resource_id), "")) for g in expiring],
    )
    if oversight:
        head = LedgerHead.objects.filter(pk=1).first()
        checkpoint = Checkpoint.objects.order_by("-id").first()
        open_violations = [
            {"kind": v["kind"], "n": v["n"], "label": v["kind"].replace("_", " ")}
            for v in ComplianceViolation.objects.filter(acknowledged_at__isnull=True)
            .values("kind").annotate(n=Count("id")).order_by("kind")
        ]
        context.update(
            verification=last_verification(),
            witnesses=_witness_status(),
            checkpoint=checkpoint,
            checkpoint_age=(now - checkpoint.created_at) if checkpoint else None,
            scheduler=SCHEDULER_LABELS.get(embedded_scheduler.state(), SCHEDULER_OFF),
            entries=head.tree_size if head else 0,
            pending=PendingEntry.objects.count(),
            open_violations=open_violations,
            open_violations_total=sum(v["n"] for v in open_violations),
            overdue_reviews=list(
                BreakGlassReview.objects.filter(
                    Q(state=BreakGlassReview.State.OVERDUE) | Q(state=BreakGlassReview.State.OPEN, due_at__lt=now)
                ).select_related("request__version__model", "request__environment").order_by("due_at")[:20]
            ),
            activity=activity_chart(now),
            promotions=promotions_chart(),
        )
    return render(request, "console/dashboard.html", context)


# --- violations -------------------------------------------------------------------------------------------

VIOLATIONS_TABLE = TableSpec(
    name="violations",
    columns=(
        Column("id", "#", ("id",), lambda v: v.pk, desc_first=True),
        Column("detected", "Detected", ("detected_at",), lambda v: v.detected_at, desc_first=True),
        Column("kind", "Kind", ("kind",), lambda v: v.kind),
        Column("reverted", "Reverted", value=lambda v: v.reverted),
        Column("subject", "Subject", ("subject_type", "subject_id"), lambda v: f"{v.subject_type}:{v.subject_id}"),
        Column("summary", "Summary", ("summary",), lambda v: v.summary),
        Column("status", "Status", (F("acknowledged_at").asc(nulls_first=True),),
               lambda v: "acknowledged" if v.acknowledged_at else "open"),
        Column("acknowledged_by", "Acknowledged by",
               value=lambda v: v.acknowledged_by.get_username() if v.acknowledged_by_id else ""),
        Column("acknowledged_at", "Acknowledged", value=lambda v: v.acknowledged_at),
        Column("acknowledgement", "Acknowledgement", value=lambda v: v.acknowledgement),
    ),
    default_sort="-detected",
)
STATUS_FILTERS = {"open": Q(acknowledged_at__isnull=True), "acknowledged": Q(acknowledged_at__isnull=False), "all": Q()}


def subject_links(violations: Sequence[ComplianceViolation]) -> dict[int, str]:
    """Each violation's subject's console page, by violation id, when it has one (no entry: shown as text).

    Model versions link to their model's page (its timeline), a broken ledger to its first bad entry. One
    query per kind of subject on the page, whatever its length.
    """
    by_type: dict[str, set[str]] = {}
    for v in violations:
        by_type.setdefault(v.subject_type, set()).add(v.subject_id)
    model_names = by_type.get("registered_model", set()) | {
        i.rpartition("/")[0] for i in by_type.get("model_version", ())}
    models = dict(RegisteredModel.objects.filter(name__in=model_names).values_list("name", "pk")) \
        if model_names else {}
    datasets = dict(Dataset.objects.filter(name__in=by_type["dataset"]).values_list("name", "pk")) \
        if "dataset" in by_type else {}

    def ids(kind: str, model: Any) -> set[str]:
        wanted = [int(i) for i in by_type.get(kind, ()) if i.isascii() and i.isdigit() and len(i) < 18]
        return {str(pk) for pk in model.objects.filter(pk__in=wanted).values_list("pk", flat=True)} if wanted else set()

    requests, access_requests = ids("promotion_request", PromotionRequest), ids("access_request", AccessRequest)
    links: dict[int, str] = {}
    for v in violations:
        kind, ident = v.subject_type, v.subject_id
        url = None
        if kind == "registered_model" and ident in models:
            url = reverse("console-model", args=[models[ident]])
        elif kind == "model_version" and ident.rpartition("/")[0] in models:
            url = reverse("console-model", args=[models[ident.rpartition("/")[0]]])
        elif kind == "promotion_request" and ident in requests:
            url = reverse("console-request", args=[int(ident)])
        elif kind == "access_request" and ident in access_requests:
            url = reverse("console-access-request", args=[int(ident)])
        elif kind == "dataset" and ident in datasets:
            url = reverse("console-dataset", args=[datasets[ident]])
        elif kind == "environment":
            url = reverse("console-environments")
        elif kind == "ledger":
            seq = (v.details or {}).get("first_bad_seq")
            url = reverse("console-entry", args=[seq]) if isinstance(seq, int) and seq >= 0 \
                else reverse("console-ledger")
        if url is not None:
            links[v.pk] = url
    return links


@login_required
def violations(request: HttpRequest) -> HttpResponseBase:
    if not is_oversight(request.user):
        return denied(request, "Compliance violations are for InfoSec and auditors: you are not permitted to see them.")
    status = request.GET.get("status", "open")
    if status not in STATUS_FILTERS:
        status = "open"
    kind = request.GET.get("kind", "")
    qs = ComplianceViolation.objects.filter(STATUS_FILTERS[status]).select_related("acknowledged_by")
    if kind in ComplianceViolation.Kind.values:
        qs = qs.filter(kind=kind)
    else:
        kind = ""
    if wants_csv(request):
        return csv_response(request, VIOLATIONS_TABLE, qs)
    view = table(request, VIOLATIONS_TABLE, qs)
    links = subject_links(list(view.page.object_list))
    return render(request, "console/violations.html", {
        "nav": "violations", "page": view.page, "status": status, "kind": kind, "qs": view.query, "table": view,
        "rows": [(v, links.get(v.pk)) for v in view.page.object_list],
        "kinds": ComplianceViolation.Kind.choices, "may_acknowledge": has_role(request.user, roles.INFOSEC),
        "statuses": list(STATUS_FILTERS),
    })


@login_required
@require_POST
def violation_acknowledge(request: HttpRequest, violation_id: int) -> HttpResponse:
    if not has_role(request.user, roles.INFOSEC):
        return denied(request, "Only InfoSec may acknowledge a compliance violation.")
    back = request.POST.get("next") or ""
    target = back if back.startswith("/console/violations/") and "//" not in back else "/console/violations/"
    violation = ComplianceViolation.objects.filter(pk=violation_id).first()
    if violation is None:
        messages.error(request, f"There is no violation #{violation_id}.")
        return redirect(target)
    try:
        compliance.violation_acknowledge(actor=request.user, violation=violation,  # type: ignore[arg-type]
                    comment=request.POST.get("comment", ""))
    except NotPermitted as exc:
        return denied(request, str(exc))
    except GovernanceError as exc:
        messages.error(request, f"Violation #{violation_id} was not acknowledged: {exc}.")
        return redirect(target)
    messages.success(request, f"Violation #{violation_id} acknowledged; recorded in the ledger.")
    return redirect(target)
