"""Console page of Kubernetes admission decisions (``/console/admission/``, docs/admission.md).

The recent decisions of the admission webhook, one row per coalesced window (a workload, model, version,
decision and rule over ``ADMISSION_RECORD_INTERVAL``, with how many times it was decided), filterable by
environment, namespace and decision. Read-only: decisions are the webhook's, recorded by
``governance.services.admission``; rows come through ``selectors.admission_decisions_visible_to``.
"""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.views.decorators.http import require_GET

from governance import selectors
from governance.models import Environment
from web.console.base import denied, signed_in_user, viewer_roles
from web.console.tables import Column, TableSpec, csv_response, table, wants_csv

DECISIONS = {"refused": False, "allowed": True}

ADMISSION_TABLE = TableSpec(
    name="admission-decisions",
    columns=(
        Column("last", "Last decided", ("last_at", "id"), lambda d: d.last_at, desc_first=True),
        Column("environment", "Environment", ("environment__order",), lambda d: d.environment.name),
        Column("namespace", "Namespace", ("namespace",), lambda d: d.namespace),
        Column("workload", "Workload", ("kind", "name"), lambda d: f"{d.kind}/{d.name}"),
        Column("model", "Model", ("model", "version"), lambda d: f"{d.model}/{d.version}" if d.model else ""),
        Column("decision", "Decision", ("allowed",), lambda d: "allowed" if d.allowed else "refused"),
        Column("rule", "Rule", ("rule",), lambda d: d.rule),
        Column("count", "Times", ("count",), lambda d: d.count, desc_first=True),
        Column("first", "First decided", ("first_at",), lambda d: d.first_at, desc_first=True),
        Column("message", "Message", value=lambda d: d.message),
    ),
    default_sort="-last",
)


@login_required
@require_GET
def admission_decisions(request: HttpRequest) -> HttpResponseBase:
    user = signed_in_user(request)
    if not viewer_roles(user):
        return denied(request, "Admission decisions are for people with a governance role: you have none.")
    environment = (request.GET.get("environment") or "")[:50]
    namespace = (request.GET.get("namespace") or "").strip()[:63]
    decision = request.GET.get("decision") or ""
    qs = selectors.admission_decisions_visible_to(user)
    names = list(Environment.objects.order_by("order").values_list("name", flat=True))
    if environment in names:
        qs = qs.filter(environment__name=environment)
    else:
        environment = ""
    if namespace:
        qs = qs.filter(namespace=namespace)
    if decision in DECISIONS:
        qs = qs.filter(allowed=DECISIONS[decision])
    else:
        decision = ""
    if wants_csv(request):
        return csv_response(request, ADMISSION_TABLE, qs)
    view = table(request, ADMISSION_TABLE, qs)
    return render(request, "console/admission.html", {
        "nav": "environments", "page": view.page, "table": view, "qs": view.query, "environments": names,
        "environment": environment, "namespace": namespace, "decision": decision, "decisions": list(DECISIONS),
    })
