"""Console pages of promotion governance: models, the approvals inbox, promotion requests and
break-glass reviews.

Views only authenticate, look objects up in the viewer's visibility selectors (anything
outside them is a 404), call a service and shape the result. Every action is a POST with a
CSRF token whose refusal (a domain error) is shown as a message with nothing written.
"""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.db.models import Max, Prefetch, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from access import roles
from audit.models import Entry, PendingEntry
from audit.receipt_verify import ReceiptError, verify_receipt
from audit.receipts import ProofPending
from audit.signing import key_lifetimes
from governance import selectors
from governance.access_hooks import model_levels
from governance.errors import GovernanceError
from governance.models import (
    Approval,
    Attestation,
    BreakGlassReview,
    DeploymentReceipt,
    Environment,
    Lineage,
    LiveDeployment,
    ModelVersion,
    PromotionRequest,
    RegisteredModel,
)
from governance.services import break_glass, deployments, registered_models
from governance.services import promotions as promotion_services
from web.console.base import (
    actor_refs,
    display_names,
    redirect_back,
    refusal_message,
    run_action,
    signed_in_user,
    viewer_roles,
)
from web.console.tables import Column, TableSpec, csv_response, table, username_of, wants_csv

State = PromotionRequest.State
Strategy = PromotionRequest.Strategy
OPEN_STATES = (State.PENDING, State.APPROVED, State.DEPLOYING)
# Roles that may take part in deciding promotions or reviewing break-glass releases; the service decides exactly.
DECIDING_ROLES = frozenset({roles.APPROVER, roles.MODEL_RISK, roles.INFOSEC})


def _live_in(index: int) -> Callable[[dict[str, Any]], Any]:
    """The CSV cell of the ``index``-th environment's live version (columns built per request)."""
    return lambda row: row["current"][index]


# The "In <environment>" columns are added per request (the environments are data).
MODELS_TABLE = TableSpec(
    name="models",
    columns=(
        Column("name", "Model", ("name",), lambda r: r["model"].name),
        Column("owner", "Owner", ("owner__username",), lambda r: username_of(r["model"].owner)),
        Column("latest", "Latest version", ("latest_version",), lambda r: r["model"].latest_version, desc_first=True),
        Column("level", "Effective classification", value=lambda r: r["level"]),
    ),
    default_sort="name",
)
PROMOTIONS_TABLE = TableSpec(
    name="promotion-requests",
    columns=(
        Column("id", "Request", ("id",), lambda r: r.pk, desc_first=True),
        Column("model", "Model", ("version__model__name", "version__version"),
               lambda r: f"{r.version.model.name} v{r.version.version}"),
        Column("break_glass", "Break-glass", value=lambda r: r.is_break_glass),
        Column("to", "To", ("environment__order", "environment__name"), lambda r: r.environment.name),
        Column("by", "Requested by", ("requested_by__username",), lambda r: username_of(r.requested_by)),
        Column("created", "When", ("created_at",), lambda r: r.created_at, desc_first=True),
        Column("state", "State", ("state",), lambda r: r.state),
        Column("reason", "Reason", value=lambda r: r.reason),
    ),
    default_sort="-id",
)
BREAKGLASS_TABLE = TableSpec(
    name="break-glass-reviews",
    columns=(
        Column("promotion", "Promotion", ("request_id",), lambda rv: rv.request_id, desc_first=True),
        Column("model", "Model", ("request__version__model__name", "request__version__version"),
               lambda rv: f"{rv.request.version.model.name} v{rv.request.version.version}"),
        Column("to", "To", ("request__environment__order", "request__environment__name"),
               lambda rv: rv.request.environment.name),
        Column("by", "By", ("request__requested_by__username",), lambda rv: username_of(rv.request.requested_by)),
        Column("justification", "Justification", value=lambda rv: rv.request.reason),
        Column("due", "Due", ("due_at",), lambda rv: rv.due_at),
        Column("review", "Review", ("state",), lambda rv: rv.state),
        Column("reviewed_by", "Reviewed by", value=lambda rv: username_of(rv.reviewed_by)),
        Column("comment", "Review comment", value=lambda rv: rv.comment),
    ),
    # Soonest due first: what needs a reviewer next.
    default_sort="due",
)


# --- models ---------------------------------------------------------------------------------------------


@require_GET
@login_required
def models_list(request: HttpRequest) -> HttpResponseBase:
    user = signed_in_user(request)
    query = request.GET.get("q", "").strip()[:200]
    rows = selectors.models_visible_to(user).select_related("owner").annotate(latest_version=Max("versions__version"))
    if query:
        rows = rows.filter(name__icontains=query)
    environments = list(Environment.objects.order_by("order"))

    def shaped(models: list[RegisteredModel]) -> list[dict[str, Any]]:
        """Each model with its classification and live version per environment (two queries per batch)."""
        ids = [m.pk for m in models]
        live: dict[int, dict[int, int]] = defaultdict(dict)
        for model_id, env_id, version in LiveDeployment.objects.filter(model_id__in=ids).values_list(
            "model_id", "environment_id", "version__version"
        ):
            live[model_id][env_id] = version
        levels = model_levels(ids) if ids else {}
        return [
            {"model": m, "level": levels.get(m.pk, ""), "current": [live[m.pk].get(env.pk) for env in environments]}
            for m in models
        ]

    if wants_csv(request):
        per_env = tuple(
            Column(f"env-{env.pk}", f"In {env.name}", value=_live_in(i))
            for i, env in enumerate(environments)
        )
        return csv_response(request, replace(MODELS_TABLE, columns=MODELS_TABLE.columns + per_env, prepare=shaped),
                            rows)
    view = table(request, MODELS_TABLE, rows)
    return render(request, "console/models.html", {
        "nav": "models", "page": view.page, "qs": view.query, "table": view,
        "rows": shaped(list(view.page.object_list)), "environments": environments, "q": query,
    })


def _rollback_target(live: LiveDeployment | None, promotions: list[PromotionRequest]) -> ModelVersion | None:
    """The version a rollback would put back, when the service would find one: the live promotion is
    deployed and its previous version still has a deployed promotion in the environment.

    Read from the promotions already loaded, so the page's queries do not grow with the environments.
    """
    if live is None or live.promotion.state != State.DEPLOYED:
        return None
    restored = live.promotion.previous_version
    if restored is None:
        return None
    if any(p.version_id == restored.pk and p.state == State.DEPLOYED for p in promotions):
        return restored
    return None


def _timeline(model: RegisteredModel, environments: list[Environment]) -> list[dict[str, Any]]:
    """Each environment with its promotions (newest first), what is live there now and what a
    rollback would restore."""
    promotions = list(
        PromotionRequest.objects.filter(version__model=model)
        .select_related("version", "environment", "requested_by", "previous_version", "break_glass_review",
                        "break_glass_review__reviewed_by")
        .prefetch_related(Prefetch("approvals", queryset=Approval.objects.select_related("approver")))
        .order_by("-created_at", "-id")
    )
    by_env: dict[int, list[PromotionRequest]] = defaultdict(list)
    for p in promotions:
        by_env[p.environment_id].append(p)
    live = {
        d.environment_id: d
        for d in LiveDeployment.objects.filter(model=model).select_related(
            "version", "promotion", "promotion__previous_version"
        )
    }
    return [
        {
            "environment": env,
            "live": live.get(env.pk),
            "promotions": by_env.get(env.pk, []),
            "rollback_to": _rollback_target(live.get(env.pk), by_env.get(env.pk, [])),
        }
        for env in environments
    ]


@require_GET
@login_required
def model_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    model = get_object_or_404(selectors.models_visible_to(user).select_related("owner"), pk=pk)
    versions = list(
        ModelVersion.objects.filter(model=model)
        .prefetch_related(Prefetch("lineage", queryset=Lineage.objects.select_related("dataset").order_by("role")))
        .order_by("-version")[:100]
    )
    environments = list(Environment.objects.order_by("order"))
    # Uploaded attestations (what they claim, unverified: each environment's gate verifies them).
    attestations = list(Attestation.objects.filter(version__model=model).select_related("version")
                        .order_by("-created_at", "-id")[:50])
    return render(request, "console/model_detail.html", {
        "nav": "models",
        "model": model,
        "level": model_levels([model.pk])[model.pk],
        "versions": versions,
        "attestations": attestations,
        "timeline": _timeline(model, environments),
        "can_roll_back": deployments.may_roll_back(user, model),
        "can_request": promotion_services.may_request_promotion(user, model),
        "can_set_owner": registered_models.may_set_owner(user, model),
        "strategies": Strategy.values,
    })


@require_POST
@login_required
def model_owner_set(request: HttpRequest, pk: int) -> HttpResponse:
    """Hand a model over (InfoSec, or its current owner): the only way a model gets an owner."""
    user = signed_in_user(request)
    model = get_object_or_404(selectors.models_visible_to(user), pk=pk)
    username = request.POST.get("owner", "").strip()

    def hand_over() -> None:
        # The account is named here, inside the product, by someone allowed to hand the model over.
        owner = User.objects.filter(username=username, is_active=True).first()
        if owner is None:
            raise GovernanceError(f"no active account named {username!r}", code="invalid_owner")
        registered_models.model_owner_set(actor=user, model=model, owner=owner, reason=request.POST.get("reason", ""))

    run_action(request, hand_over, f"{model.name} is now owned by {username}.")
    return HttpResponseRedirect(reverse("console-model", args=[model.pk]))


@require_POST
@login_required
def model_rollback(request: HttpRequest, pk: int, environment: str) -> HttpResponse:
    user = signed_in_user(request)
    model = get_object_or_404(selectors.models_visible_to(user), pk=pk)
    env = get_object_or_404(Environment, name=environment)
    run_action(
        request,
        lambda: deployments.promotion_rollback(actor=user, model=model, environment=env,
                                               reason=request.POST.get("reason", "")),
        f"{model.name} is rolled back in {env.name}: the version live before is restored "
        f"and its MLflow alias follows.",
    )
    return HttpResponseRedirect(reverse("console-model", args=[model.pk]))


def parse_canary_steps(text: str) -> list[int] | None:
    """``"5, 25,50,100"`` → ``[5, 25, 50, 100]``; blank → None (the service's default). Only the syntax is
    checked here: whether the steps make a valid rollout is the service's decision."""
    parts = [part.strip() for part in text.split(",")] if text.strip() else []
    if not parts:
        return None
    if len(parts) > 20 or not all(part.isascii() and part.isdigit() and len(part) <= 3 for part in parts):
        raise ValueError(
            "canary steps must be whole traffic percents separated by commas, e.g. 5,25,50,100"
        )
    return [int(part) for part in parts]


def _requested_message(created: PromotionRequest) -> str:
    """What happened to a new request: approved at once (a policy without approval rules), or pending
    and what it still needs: approvals, or gates that failed."""
    head = (f"Promotion #{created.pk} of {created.version.model.name} v{created.version.version} "
            f"to {created.environment.name} is requested")
    if created.state == State.APPROVED:
        return f"{head} and approved at once (the policy needs no approvals); it deploys next."
    status = promotion_services.approval_status(created)
    needs = []
    if status["failed_gates"]:
        needs.append("gates failed: " + ", ".join(status["failed_gates"]))
    if status["unmet_rules"]:
        needs.append("it needs " + ", ".join(status["unmet_rules"]))
    return f"{head} and is {created.state}" + (f" ({'; '.join(needs)})." if needs else ".")


@require_POST
@login_required
def model_request_promotion(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    model = get_object_or_404(selectors.models_visible_to(user), pk=pk)
    back = HttpResponseRedirect(reverse("console-model", args=[model.pk]))
    chosen = request.POST.get("version", "").strip()
    # The version is looked up among this model's only: another model's version is refused here.
    version = (
        ModelVersion.objects.filter(model=model, pk=int(chosen)).select_related("model").first()
        if chosen.isascii() and chosen.isdigit() and len(chosen) <= 18 else None
    )
    if version is None:
        messages.error(request, f"choose a version of {model.name}")
        return back
    name = request.POST.get("environment", "").strip()
    environment = Environment.objects.filter(name=name).first() if name else None
    if environment is None:
        messages.error(request, "choose an environment" if not name else f"no environment {name[:50]!r}")
        return back
    try:
        steps = parse_canary_steps(request.POST.get("canary_steps", ""))
        # The same arguments as the API's POST /api/v1/promotions: the service decides everything else.
        created = promotion_services.promotion_request(
            actor=user, version=version, environment=environment, reason=request.POST.get("reason", ""),
            strategy=request.POST.get("strategy", Strategy.FULL), canary_steps=steps,
        )
    except ValueError as exc:  # GovernanceError (refusals) and bad canary steps: nothing was written
        messages.error(request, str(exc))
        return back
    messages.success(request, _requested_message(created))
    return HttpResponseRedirect(reverse("console-request", args=[created.pk]))


# --- approvals inbox ------------------------------------------------------------------------------------

_REQUEST_RELATED = ("version__model", "environment", "requested_by")
INBOX_FILTERS = {
    "open": OPEN_STATES,
    "pending": (State.PENDING,),
    "closed": tuple(s for s in State.values if s not in OPEN_STATES),
    "all": tuple(State.values),
}


@require_GET
@login_required
def approvals_inbox(request: HttpRequest) -> HttpResponseBase:
    user = signed_in_user(request)
    visible = selectors.promotion_requests_visible_to(user)
    visible_ids = visible.values("pk")
    awaiting = selectors.requests_awaiting(user)
    if awaiting:
        seen = set(visible.filter(pk__in=[r.pk for r in awaiting]).values_list("pk", flat=True))
        awaiting = [r for r in awaiting if r.pk in seen]
    show = request.GET.get("show", "open")
    if show not in INBOX_FILTERS:
        show = "open"
    others = (
        PromotionRequest.objects.filter(pk__in=visible_ids, state__in=INBOX_FILTERS[show])
        .exclude(pk__in=[r.pk for r in awaiting])
        .select_related(*_REQUEST_RELATED)
    )
    if wants_csv(request):  # the "other requests" table (the awaiting list above it is not paginated)
        return csv_response(request, PROMOTIONS_TABLE, others)
    view = table(request, PROMOTIONS_TABLE, others)
    page, qs = view.page, view.query
    reviews_open = BreakGlassReview.objects.filter(
        request__in=visible_ids, state__in=(BreakGlassReview.State.OPEN, BreakGlassReview.State.OVERDUE)
    ).count()
    return render(request, "console/approvals.html", {
        "nav": "approvals", "awaiting": awaiting, "page": page, "qs": qs, "table": view, "show": show,
        "filters": list(INBOX_FILTERS), "reviews_open": reviews_open,
    })


def _visible_request(user: User, pk: int) -> PromotionRequest:
    return get_object_or_404(
        selectors.promotion_requests_visible_to(user).select_related(
            *_REQUEST_RELATED, "version__model__owner", "previous_version"
        ),
        pk=pk,
    )


def _trail(subject_id: str) -> list[dict[str, Any]]:
    """The ledger entries about a request, integrated ones then those still in the intake queue."""
    rows: list[dict[str, Any]] = []
    integrated = Entry.objects.filter(subject_type="promotion_request", subject_id=subject_id).order_by("seq")
    seen: set[int] = set()
    for e in integrated.values("seq", "pending_id", "timestamp", "event_type", "actor_type", "actor_id",
                               "payload_json")[:200]:
        seen.add(e["pending_id"])
        rows.append({**e, "note": _note(_payload(e["payload_json"]))})
    pending = PendingEntry.objects.filter(subject_type="promotion_request", subject_id=subject_id).order_by("id")
    for p in pending.values("id", "timestamp", "event_type", "actor_type", "actor_id", "payload_json")[:200]:
        if p["id"] not in seen:
            rows.append({**p, "seq": None, "note": _note(_payload(p["payload_json"]))})
    return rows


def _payload(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _note(payload: dict[str, Any]) -> str:
    """The human words of an entry: its comment, reason or justification."""
    for key in ("comment", "reason", "justification"):
        if isinstance(payload.get(key), str):
            return str(payload[key])
    return ""


def _evaluated_at(value: object) -> str:
    """The evidence's ISO timestamp, for the template's ``when`` (which shows an odd value as stored)."""
    return value if isinstance(value, str) else ""


@require_GET
@login_required
def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    promotion = _visible_request(user, pk)
    policy, row = selectors.policy_for(environment=promotion.environment, model_id=promotion.version.model_id)
    status = promotion_services.approval_status(promotion)
    approvals = list(promotion.approvals.select_related("approver").order_by("created_at", "id"))
    mine = viewer_roles(user)
    pending = promotion.state == State.PENDING
    refusal = promotion_services.decision_refusal(user, promotion, policy) if pending else None
    # Who has decided sees no decision forms: a second approval would only be refused as a duplicate.
    decided = pending and promotion_services.has_decided(user, promotion, policy, approvals)
    review = BreakGlassReview.objects.filter(request=promotion).select_related("reviewed_by").first()
    trail = _trail(str(promotion.pk))
    receipt = DeploymentReceipt.objects.filter(promotion=promotion).first()
    return render(request, "console/request_detail.html", {
        "receipt": receipt,
        "receipt_claims": receipt_claims(receipt) if receipt else [],
        "receipt_check": receipt_check(receipt) if receipt else None,
        "nav": "approvals",
        "promotion": promotion,
        "policy": policy,
        "floor_applied": promotion_services.floor_applied(row, promotion.environment),
        "rules": [{"group": r.group, "count": r.count, "have": status["approvals"].get(r.group, 0)}
                  for r in policy.approvals],
        "status": status,
        "gates": promotion.evidence.get("gates", []),
        "evaluated_at": _evaluated_at(promotion.evidence.get("evaluated_at")),
        "approvals": approvals,
        "review": review,
        "trail": trail,
        "names": display_names(actor_refs(trail)),
        # Forms are offered only to those the services would hear (the same predicate); a refusal for who
        # they are (separation of duties, approve_promotion) is explained. Duplicates and gates are left
        # to the service, whose refusal is shown as a message.
        "can_decide": pending and refusal is None and not decided,
        "has_decided": decided,
        "decide_note": str(refusal) if refusal is not None and refusal.code in _EXPLAINED_REFUSALS else "",
        "can_withdraw": promotion.state in (State.PENDING, State.APPROVED)
        and (promotion.requested_by_id == user.pk or roles.INFOSEC in mine),
        "can_review": review is not None and review.state not in CONCLUDED_REVIEW_STATES
        and bool(mine & (set(policy.approval_groups) or {roles.INFOSEC})),
    })


def receipt_claims(receipt: DeploymentReceipt) -> list[tuple[str, str]]:
    """The claim lines of a receipt's note as (key, value), for people (the note is what verifiers read)."""
    text = receipt.note.split("\n\n", 1)[0].split("\n")
    return [(key, value) for key, _, value in (line.partition(" ") for line in text[2:])]


def receipt_check(receipt: DeploymentReceipt) -> dict[str, Any]:
    """The receipt verified as a serving platform would (``audit.receipt_verify``), against the keys this
    server's configuration trusts: ``ok`` with the checkpoint's size, ``pending``, or the ``problem``."""
    try:
        document = selectors.receipt_document(receipt)
    except ProofPending as pending:
        return {"pending": True, "retry_after": pending.retry_after}
    try:
        claims = verify_receipt(document, trusted_keys=[k.line() for k in key_lifetimes()])
    except ReceiptError as exc:
        return {"ok": False, "problem": str(exc)}
    return {"ok": True, "tree_size": claims.tree_size}


@require_GET
@login_required
def request_receipt(request: HttpRequest, pk: int) -> HttpResponse:
    """The receipt as ``GET /api/v1/promotions/{id}/receipt`` serves it, as a download (same visibility)."""
    promotion, receipt = selectors.receipt_of(signed_in_user(request), pk)
    if promotion is None or receipt is None:
        raise Http404("no deployment receipt")
    try:
        document = selectors.receipt_document(receipt)
    except ProofPending as pending:
        messages.info(request, f"The receipt's approval entry is not covered by a signed checkpoint yet; "
                               f"try again in {pending.retry_after} s.")
        return HttpResponseRedirect(reverse("console-request", args=[pk]))
    response = HttpResponse(json.dumps(document, indent=2, ensure_ascii=False) + "\n",
                            content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="receipt-{promotion.pk}.json"'
    return response


#: Refusals the request page explains where its decision forms would be (others just hide them).
_EXPLAINED_REFUSALS = frozenset({"self_approval", promotion_services.NEEDS_APPROVE_PROMOTION})

_ACTIONS: dict[str, tuple[Callable[..., PromotionRequest], str, str]] = {
    # action: (service, name of its text argument, success message)
    "approve": (promotion_services.promotion_approve, "comment", "Your approval is recorded."),
    "reject": (promotion_services.promotion_reject, "comment", "Promotion #{pk} is rejected."),
    "request-changes": (promotion_services.promotion_request_changes, "comment",
                        "Changes requested: promotion #{pk} is sent back to its requester."),
    "withdraw": (promotion_services.promotion_withdraw, "reason", "Promotion #{pk} is withdrawn."),
}


@require_POST
@login_required
def request_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    user = signed_in_user(request)
    if action not in _ACTIONS:
        raise Http404("no such action")
    promotion = _visible_request(user, pk)
    service, argument, success = _ACTIONS[action]
    text = request.POST.get("comment", "")
    if action == "approve":
        # One message: the approval, and what it left to do (rules, gates, soak) or that it deploys now.
        try:
            decided = service(actor=user, promotion=promotion, **{argument: text})
        except ValueError as exc:  # the service's refusal: nothing was written
            refusal_message(request, exc)
        else:
            messages.success(request, f"{success} {promotion_services.approval_outcome(decided)}")
        return HttpResponseRedirect(reverse("console-request", args=[pk]))
    run_action(request, lambda: service(actor=user, promotion=promotion, **{argument: text}), success.format(pk=pk))
    return HttpResponseRedirect(reverse("console-request", args=[pk]))


# --- break-glass reviews ----------------------------------------------------------------------------------


CONCLUDED_REVIEW_STATES = (BreakGlassReview.State.APPROVED, BreakGlassReview.State.UNJUSTIFIED)


def _visible_reviews(user: User) -> QuerySet[BreakGlassReview]:
    return BreakGlassReview.objects.filter(
        request__in=selectors.promotion_requests_visible_to(user).values("pk")
    )


@require_GET
@login_required
def breakglass_list(request: HttpRequest) -> HttpResponseBase:
    user = signed_in_user(request)
    show = request.GET.get("show", "open")
    rows = _visible_reviews(user).select_related(
        "request__version__model", "request__environment", "request__requested_by", "reviewed_by"
    )
    if show != "all":
        show = "open"
        rows = rows.exclude(state__in=CONCLUDED_REVIEW_STATES)
    if wants_csv(request):
        return csv_response(request, BREAKGLASS_TABLE, rows)
    view = table(request, BREAKGLASS_TABLE, rows)
    return render(request, "console/breakglass.html", {
        "nav": "approvals", "page": view.page, "qs": view.query, "table": view, "show": show,
        "may_review": bool(viewer_roles(user) & DECIDING_ROLES),
    })


@require_POST
@login_required
def breakglass_approve(request: HttpRequest, pk: int) -> HttpResponse:
    """Conclude a review: ``outcome`` "justified" (the default, the original approve form) or "unjustified"."""
    user = signed_in_user(request)
    review = get_object_or_404(_visible_reviews(user), pk=pk)
    outcome = request.POST.get("outcome", break_glass.Outcome.JUSTIFIED)
    done = ("found unjustified: a compliance violation is recorded" if outcome == break_glass.Outcome.UNJUSTIFIED
            else "reviewed")
    run_action(
        request,
        lambda: break_glass.break_glass_review_conclude(actor=user, review=review, outcome=outcome,
                                                        comment=request.POST.get("comment", "")),
        f"Break-glass promotion #{review.request_id} is {done}.",
    )
    return redirect_back(request, reverse("console-breakglass"))
