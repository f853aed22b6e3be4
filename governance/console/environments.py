"""Console page of environments: their promotion policies (summarised in words) and freeze windows.

Anyone signed in with a governance role may read it; InfoSec edits a policy (an environment's
default, or one model's) as JSON and declares freeze windows. Writes go through the same
services as the API (``environment_services.policy_set``, ``environment_services.freeze_window_create``), which stay the
authority: the page only checks the input's syntax and offers the forms to InfoSec.

On a *protected* environment the same forms propose the change instead
(``change_requests.change_request_create``); the page lists pending proposals to InfoSec and
auditors, and offers a second InfoSec member approve and reject, and the proposer withdraw
(``governance.services.change_requests``, the authority on who may).
"""
from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from access import roles
from access.principals import person_id
from audit import canonical
from governance import selectors
from governance.errors import GovernanceError
from governance.models import Environment, FreezeWindow, GovernanceChangeRequest, PromotionPolicy, RegisteredModel
from governance.policy import DEFAULT_RULES, Policy, PolicyError, parse_policy
from governance.services import change_requests
from governance.services import environments as environment_services
from web.console.base import denied, run_action, signed_in_user, viewer_roles

# A policy document is a few hundred characters; this bounds what is parsed from a form.
MAX_POLICY_CHARS = 20_000
# Where a refused policy edit is kept (per environment and model) so the form shows it again.
DRAFTS_KEY = "console_policy_drafts"


# --- reading ---------------------------------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def summarise(policy: Policy) -> list[str]:
    """The policy in words, one line per aspect, e.g. "Approvals: 1 from model-risk and 1 from infosec"."""
    approvals = (
        " and ".join(f"{rule.count} from {rule.group}" for rule in policy.approvals)
        if policy.approvals else "none (approved as soon as the gates pass)"
    )
    gates = ", ".join(gate.name for gate in policy.gates) if policy.gates else "none"
    lines = [
        f"Approvals: {approvals}",
        f"Gates: {gates}",
        f"Approvals expire after {_plural(policy.approval_expiry_days, 'day')}; "
        f"pending requests after {_plural(policy.request_expiry_days, 'day')}",
        f"Break-glass review within {_plural(policy.break_glass_review_hours, 'hour')}",
    ]
    if policy.revert_out_of_band:
        lines.append("MLflow alias changes made outside governance are reverted")
    return lines


def _pretty(rules: Any) -> str:
    return json.dumps(rules, indent=2, ensure_ascii=False)


def _described(rules: Any, *, key: str, drafts: dict[str, str]) -> dict[str, Any]:
    """A policy for the page: its words, and the text its edit form starts with."""
    try:
        words = summarise(parse_policy(rules))
        problem = ""
    except PolicyError as exc:
        # Stored outside the service (say, an old admin edit): show it rather than fail the page.
        words, problem = [], str(exc)
    return {"summary": words, "problem": problem, "text": drafts.get(key, _pretty(rules)), "key": key,
            "draft": key in drafts}


def _draft_key(environment: str, model: str | None) -> str:
    return f"{environment}/{model or ''}"


@require_GET
@login_required
def environments(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    mine = viewer_roles(user)
    if not mine:
        return denied(request, "The environments page is for people with a governance role: you have none.")
    # Pop only when present, so a plain visit does not rewrite the session.
    drafts: dict[str, str] = request.session.pop(DRAFTS_KEY, None) or {}
    now = timezone.now()
    envs = list(Environment.objects.prefetch_related("kubernetes_namespaces").order_by("order"))
    # Three queries whatever the number of environments, policies and freezes.
    defaults: dict[int, PromotionPolicy] = {}
    overrides: dict[int, list[PromotionPolicy]] = defaultdict(list)
    for policy in selectors.policies_visible_to(user).select_related("model").order_by("model__name"):
        if policy.model_id is None:
            defaults[policy.environment_id] = policy
        else:
            overrides[policy.environment_id].append(policy)
    freezes: dict[int, list[FreezeWindow]] = defaultdict(list)
    for freeze in FreezeWindow.objects.filter(ends_at__gt=now).select_related("created_by").order_by(
        "starts_at", "pk"
    ):
        freezes[freeze.environment_id].append(freeze)
    pending = _pending_changes(user, envs)
    rows = []
    for env in envs:
        default = defaults.get(env.pk)
        rows.append({
            "environment": env,
            "default": _described(default.rules if default else DEFAULT_RULES,
                                  key=_draft_key(env.name, None), drafts=drafts),
            "built_in": default is None,
            "overrides": [
                {"policy": p, "model": p.model.name if p.model else "",
                 **_described(p.rules, key=_draft_key(env.name, p.model.name if p.model else None), drafts=drafts)}
                for p in overrides.get(env.pk, [])
            ],
            "new_override": drafts.get(_draft_key(env.name, "+"), ""),
            "freezes": [{"freeze": f, "active": f.starts_at <= now} for f in freezes.get(env.pk, [])],
            "changes": pending.get(env.pk, []),
        })
    return render(request, "console/environments.html", {
        "nav": "environments",
        "rows": rows,
        "may_edit": roles.INFOSEC in mine,
        "now": now,
    })


def _pending_changes(user: Any, envs: list[Environment]) -> dict[int, list[dict[str, Any]]]:
    """Pending change requests by environment, for those who may read them, with what the viewer
    may do on each. Two queries whatever their number (the requests, and the policies for the
    rules' digests), none for those who may not read them."""
    if not change_requests.may_see_change_requests(user):
        return {}
    rows = list(change_requests.change_requests_visible_to(user).filter(
        state=GovernanceChangeRequest.State.PENDING).select_related("proposed_by__service_account").order_by(
        "created_at", "pk"))
    if not rows:
        return {}
    digests = change_requests.state_digests(envs, every_environment=envs)
    me = person_id(user)
    infosec = roles.INFOSEC in viewer_roles(user)
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for change in rows:
        mine = person_id(change.proposed_by) == me
        out[change.environment_id].append({
            "request": change,
            "text": _pretty(change.change),
            "stale": digests.get(change.environment_id) != change.base_digest,
            "may_decide": infosec and not mine,
            "may_withdraw": mine,
        })
    return out


# --- InfoSec's actions -------------------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_rules(text: str) -> Any:
    """The JSON document of a policy form. Only the syntax is checked here: ``environment_services.policy_set``
    decides whether it is a valid policy."""
    text = text.strip()
    if not text:
        raise GovernanceError("the policy is empty: give a JSON object, e.g. {\"approvals\": [], \"gates\": []}")
    if len(text) > MAX_POLICY_CHARS:
        raise GovernanceError(f"the policy is longer than {MAX_POLICY_CHARS} characters")
    try:
        # NaN and Infinity are not JSON, though Python's parser takes them; the depth bound keeps
        # 20,000 brackets from ending in a RecursionError.
        return canonical.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise GovernanceError(f"the policy is not valid JSON: {exc}") from None


def _back(environment: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("console-environments") + f"#env-{environment}")


def _forbidden_unless_infosec(request: HttpRequest, what: str) -> HttpResponse | None:
    # The service refuses anyone else too (and stays the authority); refusing here first keeps
    # everyone else's POST to a 403 page, as for the other InfoSec-only console actions.
    if roles.INFOSEC not in viewer_roles(request.user):
        return denied(request, f"Only InfoSec may {what}.")
    return None


@require_POST
@login_required
def policy_edit(request: HttpRequest, name: str) -> HttpResponse:
    user = signed_in_user(request)
    refused = _forbidden_unless_infosec(request, "change promotion policies")
    if refused is not None:
        return refused
    environment = get_object_or_404(Environment, name=name)
    model_name = request.POST.get("model", "").strip()[:256]
    text = request.POST.get("rules", "")
    target = f"the policy of {model_name} in {environment.name}" if model_name else \
        f"the default policy of {environment.name}"

    done = f"{target[0].upper()}{target[1:]} is saved and recorded in the ledger."
    if environment.protected:
        done = f"{environment.name} is protected: the change to {target} is proposed, and applies once a second " \
               f"InfoSec member approves it."

    def save() -> None:
        model: RegisteredModel | None = None
        if model_name:
            # As the API: a model the viewer may see, by name.
            model = selectors.models_visible_to(user).filter(name=model_name).first()
            if model is None:
                raise GovernanceError(f"no model {model_name!r}, or you may not see it")
        rules = parse_rules(text)
        if environment.protected:
            change_requests.change_request_create(
                actor=user, environment=environment, kind=GovernanceChangeRequest.Kind.POLICY_SET,
                change={"rules": rules}, model=model, reason=request.POST.get("reason", "")[:5000])
        else:
            environment_services.policy_set(actor=user, environment=environment, rules=rules, model=model)

    if not run_action(request, save, done):
        # Keep what was typed so a typo does not cost the whole edit.
        key = _draft_key(environment.name, model_name or None)
        if request.POST.get("new") == "1":
            key = _draft_key(environment.name, "+")
        request.session[DRAFTS_KEY] = {key: text[:MAX_POLICY_CHARS]}
    return _back(environment.name)


def parse_utc(text: str, what: str) -> datetime:
    """A ``datetime-local`` value ("2026-12-20T00:00"), read as UTC."""
    text = text.strip()
    if not text:
        raise GovernanceError(f"give the freeze window's {what} (UTC)")
    try:
        moment = datetime.fromisoformat(text[:40])
    except ValueError:
        raise GovernanceError(f"the {what} must be a date and time such as 2026-12-20T00:00 (UTC)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@require_POST
@login_required
def freeze_create(request: HttpRequest, name: str) -> HttpResponse:
    user = signed_in_user(request)
    refused = _forbidden_unless_infosec(request, "declare freeze windows")
    if refused is not None:
        return refused
    environment = get_object_or_404(Environment, name=name)

    def declare() -> None:
        # Only the form's parsing here: the service decides the window (order, not over, reason).
        starts_at = parse_utc(request.POST.get("starts_at", ""), "start")
        ends_at = parse_utc(request.POST.get("ends_at", ""), "end")
        reason = request.POST.get("reason", "")
        if environment.protected:
            change_requests.change_request_create(
                actor=user, environment=environment, kind=GovernanceChangeRequest.Kind.FREEZE_WINDOW_CREATE,
                change={"starts_at": starts_at, "ends_at": ends_at, "reason": reason})
        else:
            environment_services.freeze_window_create(actor=user, environment=environment, starts_at=starts_at,
                                                      ends_at=ends_at,
                                                      reason=reason)

    done = f"Freeze window declared for {environment.name}: promotions to it are refused during the window."
    if environment.protected:
        done = f"{environment.name} is protected: the freeze window is proposed, and applies once a second " \
               f"InfoSec member approves it."
    run_action(request, declare, done)
    return _back(environment.name)


@require_POST
@login_required
def protection(request: HttpRequest, name: str) -> HttpResponse:
    """Protect an environment at once, or propose removing its protection (a second InfoSec member decides)."""
    user = signed_in_user(request)
    refused = _forbidden_unless_infosec(request, "change an environment's protection")
    if refused is not None:
        return refused
    environment = get_object_or_404(Environment, name=name)
    if request.POST.get("protected") == "1":
        run_action(request, lambda: environment_services.environment_protect(actor=user, environment=environment),
                   f"{environment.name} is protected: its rules now change only with a second InfoSec member.")
    else:
        run_action(request, lambda: change_requests.change_request_create(
            actor=user, environment=environment, kind=GovernanceChangeRequest.Kind.ENVIRONMENT_PROTECTION,
            change={"protected": False}, reason=request.POST.get("reason", "")[:5000],
        ), f"Removing the protection of {environment.name} is proposed: a second InfoSec member decides.")
    return _back(environment.name)


_DECISIONS = {
    "approve": ("comment", "Change request #{pk} is approved and applied."),
    "reject": ("comment", "Change request #{pk} is rejected."),
    "withdraw": ("reason", "Change request #{pk} is withdrawn."),
}


@require_POST
@login_required
def change_decide(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    """Approve, reject or withdraw a change request; the service decides who may."""
    user = signed_in_user(request)
    if not change_requests.may_see_change_requests(user):
        return denied(request, "Only InfoSec decides change requests of protected environments.")
    # Unknown and invisible look the same.
    change = get_object_or_404(change_requests.change_requests_visible_to(user), pk=pk)
    field, done = _DECISIONS[decision]
    text = request.POST.get(field, "")
    service = {"approve": change_requests.change_request_approve, "reject": change_requests.change_request_reject}
    if decision == "withdraw":
        run_action(request, lambda: change_requests.change_request_withdraw(actor=user, change_request=change,
                                                                            reason=text),
                   done.format(pk=pk))
    else:
        run_action(request, lambda: service[decision](actor=user, change_request=change, comment=text),
                   done.format(pk=pk))
    return _back(change.environment.name)
