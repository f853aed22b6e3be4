"""Console pages of access governance: datasets and their classification, grants, access requests
and access reviews.

Views only authenticate, look objects up in the viewer's visibility selectors (anything
outside them is a 404), validate the form, call an ``access.services.grants`` service and shape the
result; a refusal from the service is shown as a message and nothing is written.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group, User
from django.db.models import Case, Count, F, OrderBy, Q, QuerySet, Value, When
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from access import roles, selectors
from access.api.common import principal_grantable_by
from access.classification import LEVELS, RESTRICTED
from access.errors import NotPermitted
from access.models import (
    PCI_CATEGORIES,
    PII_CATEGORIES,
    RESOURCE_PERMISSIONS,
    AccessRequest,
    Dataset,
    Grant,
    ReviewCampaign,
    ReviewItem,
    ServiceAccount,
)
from access.resources import (
    MAX_DAYS,
    RESOURCE_MODELS,
    needs_infosec,
    resource_label,
    resource_level,
    resource_owner_id,
)
from access.services.access_requests import (
    access_request_approve,
    access_request_create,
    access_request_reject,
    approval_slot,
    approvals_needed,
    may_request_access,
)
from access.services.datasets import CLASSIFIER_ROLES, PII_MIN_LEVEL, dataset_classify, dataset_field_classify
from access.services.grants import grant_create, grant_revoke, require_may_grant_directly
from access.services.reviews import DEFAULT_REVIEW_LEVELS, review_campaign_start, review_item_decide
from governance.access_hooks import ENVIRONMENT_MAX_DAYS
from governance.models import Environment, Lineage, ModelVersion
from web.console.base import denied, redirect_back, run_action, signed_in_user, viewer_roles
from web.console.tables import Column, TableSpec, csv_response, table, username_of, wants_csv

GRANT_STATUSES = ("active", "lapsed", "expired", "revoked", "all")
SEE_ALL_REVIEWS = frozenset({roles.INFOSEC, roles.AUDITOR})
# Who may open the grant form (the service decides exactly: InfoSec, or the resource's owner).
MAX_DURATION_DAYS = 365
# The deadline the campaign form suggests.
DEFAULT_REVIEW_DAYS = 14


def _by_rank(field: str) -> OrderBy:
    """A classification level ordered by sensitivity (public first), not alphabetically."""
    return Case(*(When(**{field: level}, then=Value(rank)) for rank, level in enumerate(LEVELS)),
                default=Value(len(LEVELS))).asc()


DATASETS_TABLE = TableSpec(
    name="datasets",
    columns=(
        Column("name", "Dataset", ("name",), lambda d: d.name),
        Column("owner", "Owner", ("owner__username",), lambda d: username_of(d.owner)),
        Column("level", "Own level", (_by_rank("level"),), lambda d: d.level, desc_first=True),
        Column("effective", "Effective level", (_by_rank("effective_level"),), lambda d: d.effective_level,
               desc_first=True),
        Column("pii", "PII (dataset)", value=lambda d: ", ".join(d.pii_categories)),
        Column("fields", "Fields", ("field_count",), lambda d: d.field_count, desc_first=True),
        Column("classified", "Classified", ("classified_at",), lambda d: d.classified_at, desc_first=True),
    ),
    default_sort="name",
)
# Sorting by resource orders by its kind and id (the name lives in another table per kind).
GRANTS_TABLE = TableSpec(
    name="grants",
    columns=(
        Column("id", "#", ("id",), lambda r: r["grant"].pk, desc_first=True),
        Column("principal", "Principal", ("user__username", "group__name"), lambda r: r["principal"]),
        Column("permission", "Permission", ("permission",), lambda r: r["grant"].permission),
        Column("resource", "Resource", ("resource_type", "resource_id"), lambda r: r["resource"]),
        Column("expires", "Expires", ("expires_at",), lambda r: r["grant"].expires_at),
        Column("status", "Status", value=lambda r: r["status"]),
        Column("granted_by", "Granted by", ("granted_by__username",), lambda r: username_of(r["grant"].granted_by)),
        Column("justification", "Justification", value=lambda r: r["grant"].justification),
        Column("created", "Granted", ("created_at",), lambda r: r["grant"].created_at, desc_first=True),
        Column("revoked", "Closed", ("revoked_at",), lambda r: r["grant"].revoked_at, desc_first=True),
        Column("revoke_reason", "Close reason", value=lambda r: r["grant"].revoke_reason),
    ),
    default_sort="-id",
)
ACCESS_REQUESTS_TABLE = TableSpec(
    name="access-requests",
    columns=(
        Column("id", "#", ("id",), lambda r: r[0].pk, desc_first=True),
        Column("for", "For", ("principal_user__username",), lambda r: username_of(r[0].principal_user)),
        Column("permission", "Permission", ("permission",), lambda r: r[0].permission),
        Column("resource", "Resource", ("resource_type", "resource_id"), lambda r: r[1]),
        Column("days", "Days", ("duration_days",), lambda r: r[0].duration_days, desc_first=True),
        Column("asked_by", "Asked by", ("requester__username",), lambda r: username_of(r[0].requester)),
        Column("created", "Asked", ("created_at",), lambda r: r[0].created_at, desc_first=True),
        Column("state", "State", ("state",), lambda r: r[0].state),
        Column("decision", "Decision", value=lambda r: r[0].decision_comment),
        Column("justification", "Justification", value=lambda r: r[0].justification),
    ),
    default_sort="-id",
)
REVIEWS_TABLE = TableSpec(
    name="access-reviews",
    columns=(
        Column("name", "Campaign", ("name",), lambda c: c.name),
        Column("started_by", "Started by", ("created_by__username",), lambda c: username_of(c.created_by)),
        Column("deadline", "Deadline", ("deadline",), lambda c: c.deadline, desc_first=True),
        Column("state", "State", ("state",), lambda c: c.state),
        Column("items", "Items", ("item_count",), lambda c: c.item_count, desc_first=True),
        Column("pending", "Pending", ("pending_count",), lambda c: c.pending_count, desc_first=True),
        Column("mine", "Yours pending", ("mine_pending",), lambda c: c.mine_pending, desc_first=True),
        Column("created", "Started", ("created_at",), lambda c: c.created_at, desc_first=True),
    ),
    default_sort="-created",
)
REVIEW_ITEMS_TABLE = TableSpec(
    name="access-review-items",
    columns=(
        Column("grant", "Grant", ("grant_id",), lambda r: r["item"].grant_id),
        Column("principal", "Principal", ("grant__user__username", "grant__group__name"), lambda r: r["principal"]),
        Column("permission", "Permission", ("grant__permission",), lambda r: r["item"].grant.permission),
        Column("resource", "Resource", ("grant__resource_type", "grant__resource_id"), lambda r: r["resource"]),
        Column("expires", "Expires", ("grant__expires_at",), lambda r: r["item"].grant.expires_at),
        Column("reviewer", "Reviewer", ("reviewer__username",), lambda r: username_of(r["item"].reviewer)),
        Column("decision", "Decision", ("decision",), lambda r: r["item"].decision),
        Column("decided_by", "Decided by", value=lambda r: username_of(r["item"].decided_by)),
        Column("comment", "Comment", value=lambda r: r["item"].comment),
    ),
    default_sort="decision",
    page_size=50,
)


def _principal_label(grant: Grant) -> str:
    if grant.user is not None:
        return grant.user.get_username()
    return f"group {grant.group.name}" if grant.group is not None else "?"


def _grant_rows(user: User, grants: list[Grant]) -> list[dict[str, Any]]:
    """Grants with their resource label, status, and whether to offer the viewer a revoke form (a hint:
    the service decides)."""
    resources = selectors.resources_for(grants)
    labels = selectors.resource_labels(grants)
    infosec = roles.INFOSEC in viewer_roles(user)
    now = timezone.now()
    rows = []
    for g in grants:
        resource = resources.get((g.resource_type, g.resource_id))
        status = selectors.grant_status(g, now)
        owner_id = getattr(resource, "owner_id", None)
        rows.append({
            "grant": g,
            "resource": labels[(g.resource_type, g.resource_id)],
            "principal": _principal_label(g),
            "status": status,
            "may_revoke": status in ("active", "lapsed") and (infosec or user.pk in (owner_id, g.granted_by_id)),
        })
    return rows


# --- overview: datasets ---------------------------------------------------------------------------------


@require_GET
@login_required
def access_overview(request: HttpRequest) -> HttpResponseBase:
    user = signed_in_user(request)
    query = request.GET.get("q", "").strip()[:200]
    rows = selectors.datasets_visible_to(user).select_related("owner").annotate(field_count=Count("fields"))
    if query:
        rows = rows.filter(name__icontains=query)
    if wants_csv(request):
        return csv_response(request, DATASETS_TABLE, rows)
    view = table(request, DATASETS_TABLE, rows)
    return render(request, "console/access.html", {
        "nav": "access", "page": view.page, "qs": view.query, "table": view, "q": query,
        "awaiting": len(selectors.requests_awaiting(user)),
        "reviews_due": ReviewItem.objects.filter(
            reviewer=user, decision=ReviewItem.Decision.PENDING, campaign__state=ReviewCampaign.State.OPEN
        ).count(),
    })


@require_GET
@login_required
def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    dataset = get_object_or_404(
        selectors.datasets_visible_to(user).select_related("owner", "classified_by"), pk=pk
    )
    fields = list(dataset.fields.select_related("classified_by").order_by("name"))
    present = set(dataset.pii_categories or [])
    for f in fields:
        present.update(f.pii_categories or [])
    categories = [c for c in PII_CATEGORIES if c in present] + sorted(present - set(PII_CATEGORIES))
    matrix = [
        {"name": f.name, "level": f.level, "marks": [c in (f.pii_categories or []) for c in categories],
         "classified_by": f.classified_by, "classified_at": f.classified_at, "reason": f.classification_reason}
        for f in fields
    ]
    grants = list(
        selectors.grants_visible_to(user)
        .filter(resource_type="dataset", resource_id=dataset.pk)
        .select_related("user", "group", "granted_by")
        .order_by("-created_at", "-id")[:100]
    )
    lineage = list(
        Lineage.objects.filter(dataset=dataset).select_related("version__model").order_by("-created_at")[:100]
    )
    # A hint for the "Request access" link (the service decides): someone with a role who can see the dataset
    # without holding a live grant on it (stewards, auditors, InfoSec; a grantee whose grant lapsed).
    may_request = (
        may_request_access(user) and dataset.owner_id != user.pk
        and not selectors.active_grants().filter(
            Q(user=user) | Q(group__in=user.groups.all()), resource_type="dataset", resource_id=dataset.pk,
        ).exists()
    )
    return render(request, "console/dataset_detail.html", {
        "nav": "access", "dataset": dataset, "categories": categories, "matrix": matrix,
        "own_marks": [c in (dataset.pii_categories or []) for c in categories],
        "grants": _grant_rows(user, grants), "lineage": lineage,
        "permissions": RESOURCE_PERMISSIONS["dataset"],
        "may_grant": roles.INFOSEC in viewer_roles(user) or dataset.owner_id == user.pk,
        # A hint for showing the forms: the service decides (and refuses an inactive account).
        "may_classify": bool(viewer_roles(user) & CLASSIFIER_ROLES),
        "levels": LEVELS, "pii_min_level": PII_MIN_LEVEL,
        "pii_choices": [(c, c in PCI_CATEGORIES, c in (dataset.pii_categories or [])) for c in PII_CATEGORIES],
        "field_choices": [(c, c in PCI_CATEGORIES) for c in PII_CATEGORIES],
        "field_names": [f.name for f in fields],
        "may_request": may_request,
    })


def _linked_levels(dataset: Dataset) -> dict[int, str]:
    """The data classification of each model version linked to ``dataset`` (one query)."""
    return dict(
        ModelVersion.objects.filter(lineage__dataset=dataset).distinct().values_list("pk", "data_classification")
    )


def _propagation_note(request: HttpRequest, dataset: Dataset, before: dict[int, str]) -> None:
    """Tell what the reclassification did to the linked model versions (the service re-derives every one)."""
    after = _linked_levels(dataset)
    effective = Dataset.objects.values_list("effective_level", flat=True).get(pk=dataset.pk)
    if not after:
        messages.info(request, f"Effective level {effective}. No model version is linked to {dataset.name}.")
        return
    changed = sum(1 for pk, level in after.items() if before.get(pk) != level)
    messages.info(request, (
        f"Effective level {effective}. {len(after)} linked model version{'' if len(after) == 1 else 's'} "
        f"re-derived from lineage: {changed} changed classification."
    ))


def _classification_form(request: HttpRequest) -> tuple[str, list[str], str]:
    post = request.POST
    # Passed to the service as typed: it refuses an unknown level or category with a message naming them.
    return post.get("level", ""), post.getlist("pii_categories"), post.get("reason", "")


def _label(level: str, categories: list[str]) -> str:
    return f"{level} (PII: {', '.join(sorted(set(categories)))})" if categories else f"{level}, no PII"


def _unchanged(current: Any, level: str, categories: list[str]) -> bool:
    """Whether the service will find nothing to change (it records nothing then)."""
    return current is not None and current.classified_at is not None and (
        (current.level, sorted(set(current.pii_categories or []))) == (level, sorted(set(categories)))
    )


@require_POST
@login_required
def dataset_classify_view(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    dataset = get_object_or_404(selectors.datasets_visible_to(user), pk=pk)
    level, categories, reason = _classification_form(request)
    unchanged = _unchanged(dataset, level, categories)
    before = _linked_levels(dataset)
    done = run_action(
        request,
        lambda: dataset_classify(actor=user, dataset=dataset, level=level, pii_categories=categories, reason=reason),
        f"Dataset {dataset.name} is already classified {_label(level, categories)}: nothing changed."
        if unchanged else f"Dataset {dataset.name} is classified {_label(level, categories)}.",
    )
    if done and not unchanged:
        _propagation_note(request, dataset, before)
    return HttpResponseRedirect(reverse("console-dataset", args=[dataset.pk]))


@require_POST
@login_required
def dataset_field_classify_view(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    dataset = get_object_or_404(selectors.datasets_visible_to(user), pk=pk)
    field_name = request.POST.get("field_name", "").strip()[:300]
    level, categories, reason = _classification_form(request)
    unchanged = _unchanged(dataset.fields.filter(name=field_name).first(), level, categories)
    before = _linked_levels(dataset)
    done = run_action(
        request,
        lambda: dataset_field_classify(actor=user, dataset=dataset, field_name=field_name, level=level,
                                       pii_categories=categories, reason=reason),
        f"Field {field_name} of {dataset.name} is already classified {_label(level, categories)}: nothing changed."
        if unchanged else f"Field {field_name} of {dataset.name} is classified {_label(level, categories)}.",
    )
    if done and not unchanged:
        _propagation_note(request, dataset, before)
    return HttpResponseRedirect(reverse("console-dataset", args=[dataset.pk]))


# --- grants ---------------------------------------------------------------------------------------------


def _filtered_grants(user: User, params: Any) -> tuple[QuerySet[Grant], dict[str, str]]:
    now = timezone.now()
    filters = {
        "principal": (params.get("principal") or "").strip()[:150],
        "resource_type": params.get("resource_type") or "",
        "resource": (params.get("resource") or "").strip()[:200],
        "expires_within": (params.get("expires_within") or "").strip(),
        "status": params.get("status") or "active",
    }
    rows = selectors.grants_visible_to(user)
    if filters["principal"]:
        rows = rows.filter(Q(user__username__icontains=filters["principal"])
                           | Q(group__name__icontains=filters["principal"]))
    if filters["resource_type"] in RESOURCE_MODELS:
        rows = rows.filter(resource_type=filters["resource_type"])
        if filters["resource"]:
            model = RESOURCE_MODELS[filters["resource_type"]]
            ids = model._default_manager.filter(name__icontains=filters["resource"]).values("pk")
            rows = rows.filter(resource_id__in=ids)  # a subquery of one integer column
    else:
        filters["resource_type"] = ""
    if filters["expires_within"].isdigit() and 0 < int(filters["expires_within"]) <= 3650:
        rows = rows.filter(expires_at__gt=now, expires_at__lte=now + timedelta(days=int(filters["expires_within"])))
    else:
        filters["expires_within"] = ""
    status = filters["status"]
    if status == "active":
        rows = rows.filter(revoked_at__isnull=True, expires_at__gt=now)
    elif status == "lapsed":
        rows = rows.filter(revoked_at__isnull=True, expires_at__lte=now)
    elif status == "expired":
        rows = rows.filter(revoked_at__isnull=False, revoked_at__gte=F("expires_at"))
    elif status == "revoked":
        rows = rows.filter(revoked_at__isnull=False, revoked_at__lt=F("expires_at"))
    else:
        filters["status"] = "all"
    return rows, filters


@require_GET
@login_required
def grants_list(request: HttpRequest) -> HttpResponseBase:
    user = signed_in_user(request)
    rows, filters = _filtered_grants(user, request.GET)
    rows = rows.select_related("user", "group", "granted_by", "revoked_by")
    if wants_csv(request):
        return csv_response(request, replace(GRANTS_TABLE, prepare=lambda chunk: _grant_rows(user, chunk)), rows)
    view = table(request, GRANTS_TABLE, rows)
    page = view.page
    mine = viewer_roles(user)
    return render(request, "console/grants.html", {
        "nav": "access", "page": page, "qs": view.query, "table": view, "filters": filters,
        "statuses": GRANT_STATUSES,
        "resource_types": list(RESOURCE_MODELS), "rows": _grant_rows(user, list(page.object_list)),
        "permissions": sorted({p for ps in RESOURCE_PERMISSIONS.values() for p in ps}),
        # InfoSec grants anything; owners grant on what they own (the service decides).
        "may_grant": bool(mine & {roles.INFOSEC, roles.DATA_STEWARD, roles.MODEL_OWNER})
        or Dataset.objects.filter(owner=user).exists(),
    })


def _principal(text: str) -> User | Group | None:
    text = text.strip()
    if text.startswith("group:"):
        return Group.objects.filter(name=text[len("group:"):].strip()).first()
    return User.objects.filter(username=text).first()


def _resource(user: User, resource_type: str, name: str) -> Any:
    """The named resource, among those the viewer may see (None for an unknown kind)."""
    if resource_type not in RESOURCE_MODELS:
        return None
    return selectors.resource_queryset(resource_type, user).filter(name=name).first()


@require_POST
@login_required
def grant_new(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    post = request.POST
    fallback = reverse("console-grants")
    resource_type = post.get("resource_type", "")
    resource = _resource(user, resource_type, post.get("resource", "").strip()[:200])
    if resource is not None:
        # Who may grant here is settled before the principal is looked up (as the API does): someone
        # who may not grant learns nothing about which names exist.
        try:
            require_may_grant_directly(user, resource)
        except NotPermitted as exc:
            messages.error(request, str(exc))  # as run_action shows a refusal
            return redirect_back(request, fallback)
    # The principal is looked up only on a resource the viewer may grant on (see above).
    principal = _principal(post.get("principal", "")[:200]) if resource is not None else None
    if principal is not None and not principal_grantable_by(principal, user):
        principal = None  # a closed account or a disabled service account: for an owner, no such name
    days = post.get("duration_days", "").strip()
    problems = []
    if resource is None:
        problems.append(f"no {resource_type.replace('_', ' ') or 'resource'} by that name that you can see")
    elif principal is None:
        problems.append("no user (or group:<name>) by that name that you may name here")
    if not days.isdigit() or not 0 < int(days) <= MAX_DURATION_DAYS:
        problems.append(f"the duration is a number of days between 1 and {MAX_DURATION_DAYS}")
    if problems:
        messages.error(request, "Nothing was granted: " + "; ".join(problems) + ".")
        return redirect_back(request, fallback)
    assert principal is not None
    run_action(
        request,
        lambda: grant_create(
            actor=user, principal=principal, resource=resource, permission=post.get("permission", ""),
            expires_at=timezone.now() + timedelta(days=int(days)), justification=post.get("justification", ""),
        ),
        f"Granted {post.get('permission')} on {resource} to {post.get('principal', '').strip()} for {days} days.",
    )
    return redirect_back(request, fallback)


@require_POST
@login_required
def grant_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    grant = get_object_or_404(selectors.grants_visible_to(user), pk=pk)
    run_action(
        request,
        lambda: grant_revoke(actor=user, grant=grant, reason=request.POST.get("comment", "")),
        f"Grant #{grant.pk} is revoked.",
    )
    return redirect_back(request, reverse("console-grants"))


# --- access requests ------------------------------------------------------------------------------------


def _labelled_requests(chunk: list[AccessRequest]) -> list[tuple[AccessRequest, str]]:
    labels = selectors.resource_labels(chunk)
    return [(r, labels[(r.resource_type, r.resource_id)]) for r in chunk]


@require_GET
@login_required
def requests_list(request: HttpRequest) -> HttpResponseBase:
    user = signed_in_user(request)
    visible = selectors.access_requests_visible_to(user)
    awaiting = selectors.requests_awaiting(user)
    if awaiting:
        seen = set(visible.filter(pk__in=[r.pk for r in awaiting]).values_list("pk", flat=True))
        awaiting = [r for r in awaiting if r.pk in seen]
    show = request.GET.get("show", "pending")
    others = visible.exclude(pk__in=[r.pk for r in awaiting]).select_related(
        "requester", "principal_user", "owner_approved_by", "infosec_approved_by"
    )
    if show in AccessRequest.State.values:
        others = others.filter(state=show)
    else:
        show = "all"
    if wants_csv(request):  # the "other requests" table (the awaiting list above it is not paginated)
        return csv_response(request, replace(ACCESS_REQUESTS_TABLE, prepare=_labelled_requests), others)
    view = table(request, ACCESS_REQUESTS_TABLE, others)
    page = view.page
    labels = selectors.resource_labels([*awaiting, *page.object_list])
    return render(request, "console/access_requests.html", {
        "nav": "access", "awaiting": [(r, labels[(r.resource_type, r.resource_id)]) for r in awaiting],
        "others": [(r, labels[(r.resource_type, r.resource_id)]) for r in page.object_list],
        "page": page, "qs": view.query, "table": view, "show": show, "states": [*AccessRequest.State.values, "all"],
        **_request_form(user, request.GET),
    })


def _request_form(user: User, params: Any) -> dict[str, Any]:
    """The "Request access" form: offered to people with a governance role, pre-filled from
    ``?resource=<kind>:<name>`` (the dataset page links here that way)."""
    if not may_request_access(user):
        return {"may_request": False}
    kind, _, name = (params.get("resource") or "").partition(":")
    if kind not in RESOURCE_PERMISSIONS:
        kind, name = "", ""
    accounts = list(
        selectors.service_accounts_visible_to(user).filter(disabled_at__isnull=True).order_by("name")
        .values_list("name", flat=True)[:200]
    )
    return {
        "may_request": True,
        "request_kinds": [(k, k.replace("_", " "), ps) for k, ps in RESOURCE_PERMISSIONS.items()],
        "request_prefill": {"kind": kind, "name": name.strip()[:200], "permission": params.get("permission", "")},
        "request_accounts": accounts,
        "max_days": MAX_DURATION_DAYS,
        "level_max_days": list(MAX_DAYS.items()), "environment_max_days": ENVIRONMENT_MAX_DAYS,
    }


def _reviewers(access_request: AccessRequest, owner: User | None) -> str:
    """Who approves, worded from the request as created (``approval_slot`` decides at approval time)."""
    who = []
    if owner is not None:
        if owner.pk in (access_request.requester_id, access_request.principal_user_id):
            who.append("InfoSec in place of the owner")
        else:
            who.append(f"{owner.get_username()} (the owner)")
    if access_request.needs_infosec:
        who.append("InfoSec")
    return " and ".join(who) or "InfoSec"


@require_POST
@login_required
def request_create(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    post = request.POST
    fallback = reverse("console-access-requests")
    kind = post.get("resource_type", "")
    name = post.get("resource", "").strip()[:200]
    permission = post.get("permission", "")
    days = post.get("duration_days", "").strip()
    account_name = post.get("service_account", "").strip()[:100]
    problems = []
    resource: Any = None
    if kind not in RESOURCE_MODELS:
        problems.append("choose a resource kind: " + ", ".join(k.replace("_", " ") for k in RESOURCE_MODELS))
    elif not name:
        problems.append(f"name the {kind.replace('_', ' ')}")
    else:
        # Requesting is how one comes to see a dataset: any name may be asked for, as in the API.
        resource = selectors.resource_queryset(kind, None).filter(name=name).first()
        if resource is None:
            problems.append(f"no {kind.replace('_', ' ')} named {name!r}")
        if permission not in RESOURCE_PERMISSIONS[kind]:
            article = "an" if kind == "environment" else "a"
            problems.append(f"the permission {permission!r} does not apply to {article} {kind.replace('_', ' ')} "
                            f"(use one of {', '.join(RESOURCE_PERMISSIONS[kind])})")
    if not days.isdigit() or not 0 < int(days) <= MAX_DURATION_DAYS:
        problems.append(f"the duration is a whole number of days between 1 and {MAX_DURATION_DAYS}")
    if not post.get("justification", "").strip():
        problems.append("a justification is required")
    account: ServiceAccount | None = None
    if account_name:
        account = selectors.service_accounts_visible_to(user).filter(name=account_name).first()
        if account is None:
            problems.append(f"no service account named {account_name!r} that you may see")
    if problems:
        messages.error(request, "No access was requested: " + "; ".join(problems) + ".")
        return redirect_back(request, fallback)
    try:
        created = access_request_create(
            actor=user, resource=resource, permission=permission, duration_days=int(days),
            justification=post.get("justification", ""), for_service_account=account,
        )
    except ValueError as exc:  # AccessError and the ledger's input errors: the service wrote nothing
        messages.error(request, str(exc))
        return redirect_back(request, fallback)
    owner = None if isinstance(resource, Environment) else resource.owner
    target = f"service account {account.name}" if account is not None else "you"
    messages.success(request, (
        f"Access request #{created.pk} is recorded: {permission} on {kind}:{resource.name} for {target}, "
        f"{created.duration_days} days. It awaits review by {_reviewers(created, owner)}."
    ))
    return HttpResponseRedirect(fallback)


@require_GET
@login_required
def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One access request: who asked, for whom and what, the approvals its rule needs (recorded or still
    missing) and the decision forms for whoever may decide now. Unknown and invisible requests are one 404."""
    user = signed_in_user(request)
    access_request = get_object_or_404(
        selectors.access_requests_visible_to(user).select_related(
            "requester", "principal_user", "owner_approved_by", "infosec_approved_by"
        ),
        pk=pk,
    )
    resource = selectors.resources_for([access_request]).get((access_request.resource_type, access_request.resource_id))
    slots = approvals_needed(access_request, resource) if resource is not None else []
    pending = access_request.state == AccessRequest.State.PENDING
    # The approving service's own rule (approval_slot), on the classification as it is now.
    may_decide = pending and resource is not None and approval_slot(
        user=user, request=access_request, owner_id=resource_owner_id(resource),
        needs_infosec=access_request.needs_infosec or needs_infosec(resource),
        infosec=roles.INFOSEC in viewer_roles(user),
    ) is not None
    grant = access_request.grants.order_by("pk").first() if access_request.state == AccessRequest.State.APPROVED \
        else None
    return render(request, "console/access_request_detail.html", {
        "nav": "access", "r": access_request,
        "label": resource_label(resource) if resource is not None
        else f"{access_request.resource_type}:#{access_request.resource_id}",
        "resource": resource, "slots": slots, "missing": [s for s in slots if s["by"] is None] if pending else [],
        "may_decide": may_decide, "grant": grant,
        # Approving it will ask for a recent second factor (access_request_approve): said before the click.
        "label_restricted": may_decide and resource is not None and resource_level(resource) == RESTRICTED,
    })


_REQUEST_ACTIONS = {
    "approve": (access_request_approve, "Access request #{pk}: your approval is recorded."),
    "reject": (access_request_reject, "Access request #{pk} is rejected."),
}


@require_POST
@login_required
def request_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    user = signed_in_user(request)
    if action not in _REQUEST_ACTIONS:
        raise Http404("no such action")
    access_request = get_object_or_404(selectors.access_requests_visible_to(user), pk=pk)
    service, success = _REQUEST_ACTIONS[action]
    run_action(
        request,
        lambda: service(actor=user, access_request=access_request, comment=request.POST.get("comment", "")),
        success.format(pk=pk),
    )
    return redirect_back(request, reverse("console-access-requests"))


# --- access reviews -------------------------------------------------------------------------------------


def _review_items_visible(user: User) -> QuerySet[ReviewItem]:
    """Every item for InfoSec and auditors; otherwise the items the viewer reviews."""
    if viewer_roles(user) & SEE_ALL_REVIEWS:
        return ReviewItem.objects.all()
    return ReviewItem.objects.filter(reviewer=user)


def _campaigns_visible(user: User) -> QuerySet[ReviewCampaign]:
    if viewer_roles(user) & SEE_ALL_REVIEWS:
        return ReviewCampaign.objects.all()
    return ReviewCampaign.objects.filter(pk__in=ReviewItem.objects.filter(reviewer=user).values("campaign_id"))


@require_GET
@login_required
def reviews_list(request: HttpRequest) -> HttpResponseBase:
    user = signed_in_user(request)
    rows = _campaigns_visible(user).select_related("created_by").annotate(
        item_count=Count("items"),
        pending_count=Count("items", filter=Q(items__decision=ReviewItem.Decision.PENDING)),
        mine_pending=Count("items", filter=Q(items__decision=ReviewItem.Decision.PENDING, items__reviewer=user)),
    )
    if wants_csv(request):
        return csv_response(request, REVIEWS_TABLE, rows)
    view = table(request, REVIEWS_TABLE, rows)
    return render(request, "console/reviews.html", {
        "nav": "access", "page": view.page, "qs": view.query, "table": view,
        "may_start_review": roles.INFOSEC in viewer_roles(user),
        "levels": LEVELS, "default_levels": DEFAULT_REVIEW_LEVELS,
        "min_deadline": (timezone.localdate() + timedelta(days=1)).isoformat(),
        "default_deadline": (timezone.localdate() + timedelta(days=DEFAULT_REVIEW_DAYS)).isoformat(),
        "time_zone": timezone.get_current_timezone_name(),
    })


def _deadline(text: str) -> tuple[datetime | None, str]:
    """The end of the chosen day (in the console's time zone), or why the date is refused."""
    text = text.strip()
    if not text:
        return None, "a deadline is required"
    try:
        day = date.fromisoformat(text[:10]) if len(text) == 10 else None
    except ValueError:
        day = None
    if day is None:
        return None, f"the deadline {text[:20]!r} is not a date (YYYY-MM-DD)"
    if day <= timezone.localdate():
        # A review due today would close before anyone could act on it: the deadline is a later day.
        return None, "the review deadline must be in the future (a day after today)"
    return timezone.make_aware(datetime.combine(day, time(23, 59, 59))), ""


@require_POST
@login_required
def review_campaign_start_view(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    if roles.INFOSEC not in viewer_roles(user):
        return denied(request, "Only InfoSec may start an access review.")
    post = request.POST
    name = post.get("name", "")
    deadline, problem = _deadline(post.get("deadline", ""))
    if deadline is None:
        messages.error(request, f"No access review was started: {problem}.")
        return HttpResponseRedirect(reverse("console-reviews"))
    levels = post.getlist("levels")
    started: list[ReviewCampaign] = []
    if run_action(
        request,
        lambda: started.append(review_campaign_start(actor=user, name=name, deadline=deadline, levels=levels)),
        f"Access review {name.strip()} started, due {deadline:%Y-%m-%d}.",
    ):
        items = started[0].items.count()
        messages.info(request, f"{items} grant{'' if items == 1 else 's'} to review.")
        return HttpResponseRedirect(reverse("console-review", args=[started[0].pk]))
    return HttpResponseRedirect(reverse("console-reviews"))


@require_GET
@login_required
def review_detail(request: HttpRequest, pk: int) -> HttpResponseBase:
    user = signed_in_user(request)
    campaign = get_object_or_404(_campaigns_visible(user).select_related("created_by"), pk=pk)
    items = (
        _review_items_visible(user).filter(campaign=campaign)
        .select_related("grant__user", "grant__group", "grant__granted_by", "reviewer", "decided_by")
    )
    infosec = roles.INFOSEC in viewer_roles(user)
    open_campaign = campaign.state == ReviewCampaign.State.OPEN and campaign.deadline > timezone.now()

    def shaped(chunk: list[ReviewItem]) -> list[dict[str, Any]]:
        labels = selectors.resource_labels([i.grant for i in chunk])
        return [
            {"item": i, "resource": labels[(i.grant.resource_type, i.grant.resource_id)],
             "principal": _principal_label(i.grant),
             "may_decide": open_campaign and i.decision == ReviewItem.Decision.PENDING
             and (infosec or i.reviewer_id == user.pk)}
            for i in chunk
        ]

    if wants_csv(request):
        return csv_response(request, replace(REVIEW_ITEMS_TABLE, prepare=shaped), items)
    view = table(request, REVIEW_ITEMS_TABLE, items)
    return render(request, "console/reviews_detail.html", {
        "nav": "access", "campaign": campaign, "rows": shaped(list(view.page.object_list)), "page": view.page,
        "qs": view.query, "table": view,
    })


@require_POST
@login_required
def review_item_decide_view(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    user = signed_in_user(request)
    if decision not in (ReviewItem.Decision.CERTIFIED, ReviewItem.Decision.REVOKED):
        raise Http404("no such decision")
    item = get_object_or_404(_review_items_visible(user), pk=pk)
    fallback = reverse("console-review", args=[item.campaign_id])
    comment = request.POST.get("comment", "").strip()
    if not comment:
        # The console asks every decision for a reason, even where the service makes it optional.
        messages.error(request, "A comment is required: nothing was decided.")
        return redirect_back(request, fallback)
    run_action(
        request,
        lambda: review_item_decide(actor=user, review_item=item, decision=decision, comment=comment),
        f"Grant #{item.grant_id} is {decision} in this review.",
    )
    return redirect_back(request, fallback)
