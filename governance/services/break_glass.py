"""Break-glass promotions (emergency, without approvals), their budget and their post-hoc reviews.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ParamSpec, TypeVar, cast

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from access import roles
from access.authn import require_recent_mfa
from access.principals import account_ids, same_person
from access.roles import role_names
from access.services.checks import principal_label
from audit.ledger import Actor, Subject, record
from governance import lock_objects, selectors
from governance.errors import GovernanceError, InvalidState, NotPermitted
from governance.models import (
    BreakGlassReview,
    ComplianceViolation,
    Environment,
    ModelVersion,
    PromotionRequest,
)
from governance.services.common import State, base_payload, lock_promotion, promotion_subject, require_text, who
from governance.services.compliance import violation_record
from governance.services.deployments import roll_back, unjustified_reason
from governance.services.evidence import evaluate, evidence_doc
from governance.services.promotions import (
    check_deploy_grant,
    deploy_after_commit,
    mark_withdrawn,
    records_deploy_to_denial,
)

_P = ParamSpec("_P")
_R = TypeVar("_R")


BREAK_GLASS_BUDGET_EXCEEDED = "break_glass_budget_exceeded"


@dataclass(frozen=True)
class _BudgetExceeded:
    """What a refusal for an exhausted break-glass budget reports to InfoSec (no personal data)."""

    scope: str  # "person" or "environment"
    used: int
    limit: int
    window_days: int


class BreakGlassBudgetExceeded(NotPermitted):
    def __init__(self, message: str, *, budget: _BudgetExceeded) -> None:
        super().__init__(message, code=BREAK_GLASS_BUDGET_EXCEEDED)
        self.budget = budget


def _alerts_break_glass_budget(service: Callable[_P, _R]) -> Callable[_P, _R]:
    """Outside the service's transaction: a break-glass refused for an exhausted budget raises a
    ``break_glass_budget_exceeded`` compliance violation (InfoSec's alert) in its own transaction,
    after the refused promotion rolled back and left nothing."""

    @functools.wraps(service)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return service(*args, **kwargs)
        except BreakGlassBudgetExceeded as exc:
            user = cast(User, kwargs["actor"])
            version = cast(ModelVersion, kwargs["version"])
            environment = cast(Environment, kwargs["environment"])
            budget = exc.budget
            violation_record(
                kind=ComplianceViolation.Kind.BREAK_GLASS_BUDGET_EXCEEDED,
                subject=Subject("environment", environment.name),
                summary=f"break-glass of {version.ref} to {environment.name} refused: the {budget.scope}'s budget "
                f"of {budget.limit} per {budget.window_days} days is used up",
                details={"model": version.model.name, "version": version.version, "environment": environment.name,
                         "person": principal_label(user), "scope": budget.scope, "used": budget.used,
                         "limit": budget.limit, "window_days": budget.window_days},
                actor=Actor.user(user),
            )
            raise

    return wrapper


def _check_break_glass_budget(user: User, environment: Environment, now: datetime) -> None:
    """At most ``BREAK_GLASS_MAX_PER_PERSON`` break-glass promotions per person (their service accounts
    count as them) and ``BREAK_GLASS_MAX_PER_ENVIRONMENT`` per environment in the last
    ``BREAK_GLASS_WINDOW_DAYS`` days, whatever became of them. Locks the environment and the person's
    account rows first, so two concurrent break-glasses cannot both take the last one."""
    accounts = account_ids(user)
    lock_objects.environments_lock().filter(pk=environment.pk).exists()
    list(lock_objects.accounts_lock().filter(pk__in=accounts).order_by("pk").values_list("pk", flat=True))
    window = int(settings.BREAK_GLASS_WINDOW_DAYS)
    used_in_window = PromotionRequest.objects.filter(is_break_glass=True, created_at__gte=now - timedelta(days=window))
    checks = (
        ("person", int(settings.BREAK_GLASS_MAX_PER_PERSON), used_in_window.filter(requested_by_id__in=accounts)),
        ("environment", int(settings.BREAK_GLASS_MAX_PER_ENVIRONMENT), used_in_window.filter(environment=environment)),
    )
    for scope, limit, rows in checks:
        used = rows.count()
        if used >= limit:
            where = "you have" if scope == "person" else f"{environment.name} has had"
            raise BreakGlassBudgetExceeded(
                f"break-glass refused: {where} used {used} of {limit} break-glass promotions allowed per "
                f"{window} days; InfoSec is alerted. Use the ordinary approval path",
                budget=_BudgetExceeded(scope=scope, used=used, limit=limit, window_days=window),
            )


@_alerts_break_glass_budget
@records_deploy_to_denial
@transaction.atomic
def promotion_break_glass(
    *, actor: User, version: ModelVersion, environment: Environment, justification: str
) -> PromotionRequest:
    """Emergency promotion without approvals; opens a post-hoc review with a deadline.

    Limited by a per-person and a per-environment budget (``_check_break_glass_budget``): beyond it the
    promotion is refused with ``break_glass_budget_exceeded``, nothing of it is written, and a compliance
    violation of that kind alerts InfoSec."""
    justification = require_text(justification, "justification")
    if roles.BREAK_GLASS not in role_names(actor):
        raise NotPermitted("only members of the break-glass group may promote without approval")
    # Before anything is locked, counted or written: an emergency still needs a recent second factor.
    require_recent_mfa(actor=actor, action="a break-glass promotion")
    check_deploy_grant(actor, version, environment)  # access catalog: restricted data
    live = selectors.live_version(model_id=version.model_id, environment=environment)
    if live is not None and live.version_id == version.pk:
        raise GovernanceError(f"{version.ref} is already live in {environment.name}", code="already_live")
    open_request = lock_objects.promotion_requests_lock().filter(
        version=version, environment=environment, state__in=[State.PENDING, State.APPROVED, State.DEPLOYING]
    ).first()
    if open_request is not None and open_request.state != State.PENDING:
        raise GovernanceError(
            f"promotion #{open_request.pk} for {version.ref} to {environment.name} is already {open_request.state}",
            code="duplicate",
        )
    _check_break_glass_budget(actor, environment, timezone.now())
    if open_request is not None:
        # An emergency must not wait for someone to withdraw the ordinary request: it is superseded.
        mark_withdrawn(open_request, Actor.user(actor), "superseded by a break-glass promotion")
    policy, _ = selectors.policy_for(environment=environment, model_id=version.model_id)
    results, digest = evaluate(version, environment, policy)
    now = timezone.now()
    request = PromotionRequest.objects.create(
        version=version, environment=environment, requested_by=actor, reason=justification, is_break_glass=True,
        state=State.APPROVED, decided_at=now, evidence=evidence_doc(version, results), evidence_digest=digest,
    )
    review = BreakGlassReview.objects.create(
        request=request, due_at=now + timedelta(hours=policy.break_glass_review_hours)
    )
    record(
        event_type="promotion.break_glass",
        actor=Actor.user(actor),
        subject=promotion_subject(request),
        payload={**base_payload(request), "justification": justification, "review_due_at": review.due_at.isoformat(),
                 "gates": request.evidence["gates"], "break_glass": True},
    )
    deploy_after_commit(request)
    return request


class Outcome:
    """What a break-glass review concludes."""

    JUSTIFIED = "justified"
    UNJUSTIFIED = "unjustified"
    ALL = (JUSTIFIED, UNJUSTIFIED)


@transaction.atomic
def break_glass_review_approve(*, actor: User, review: BreakGlassReview, comment: str) -> BreakGlassReview:
    """Conclude a break-glass review as justified (``break_glass_review_conclude``)."""
    return break_glass_review_conclude(actor=actor, review=review, outcome=Outcome.JUSTIFIED, comment=comment)


@transaction.atomic
def break_glass_review_conclude(
    *, actor: User, review: BreakGlassReview, outcome: str, comment: str
) -> BreakGlassReview:
    """Conclude an open or overdue break-glass review: ``justified`` (state ``approved``) or ``unjustified``.

    Reviewers: the environment's approval groups (InfoSec where the policy names none); never, as a
    person, whoever used break-glass or registered the version. ``unjustified`` raises an
    ``unjustified_break_glass`` compliance violation and, when the policy's
    ``rollback_unjustified_break_glass`` is on, takes the release back through the rollback path of
    ``promotion_rollback`` (the policy authorises it: the reviewer needs no rollback role) if it is
    the live one, or withdraws it if it has not started deploying. Otherwise (already replaced, or
    deploying) nothing is rolled back and the violation says so.
    """
    if outcome not in Outcome.ALL:
        raise GovernanceError(f"the outcome must be one of {', '.join(Outcome.ALL)}", code="invalid_outcome")
    comment = require_text(comment, "comment")
    require_recent_mfa(actor=actor, action="concluding a break-glass review")
    review = lock_objects.break_glass_reviews_lock().select_related(
        "request__version__model", "request__environment"
    ).get(pk=review.pk)
    if review.state in (BreakGlassReview.State.APPROVED, BreakGlassReview.State.UNJUSTIFIED):
        raise InvalidState(f"this break-glass review is already concluded ({review.state})")
    request = review.request
    if same_person(actor, request.requested_by_id):
        raise NotPermitted(f"{who(actor, request.requested_by_id)} used break-glass, so you cannot review it",
                           code="self_approval")
    registered_by = request.version.registered_by_id
    if registered_by is not None and same_person(actor, registered_by):
        raise NotPermitted(f"{who(actor, registered_by)} registered this model version, so you cannot review its "
                           "release", code="self_approval")
    policy, _ = selectors.policy_for(environment=request.environment, model_id=request.version.model_id)
    # An environment whose policy names no approvers (dev) is reviewed by InfoSec.
    reviewers = set(policy.approval_groups) or {roles.INFOSEC}
    if not role_names(actor) & reviewers:
        raise NotPermitted(
            "break-glass reviews must come from: " + ", ".join(sorted(reviewers)), code="not_in_required_group"
        )
    late = review.state == BreakGlassReview.State.OVERDUE
    review.state = (BreakGlassReview.State.APPROVED if outcome == Outcome.JUSTIFIED
                    else BreakGlassReview.State.UNJUSTIFIED)
    review.reviewed_by = actor
    review.comment = comment
    review.reviewed_at = timezone.now()
    review.save(update_fields=["state", "reviewed_by", "comment", "reviewed_at"])
    if outcome == Outcome.JUSTIFIED:
        record(
            event_type="promotion.break_glass_reviewed",
            actor=Actor.user(actor),
            subject=promotion_subject(request),
            payload={**base_payload(request), "comment": comment, "late": late},
        )
        return review
    undone = _undo_break_glass(request, user=actor, comment=comment) if policy.rollback_unjustified_break_glass \
        else "the policy does not roll back unjustified break-glass"
    reverted = undone in ("rolled_back", "withdrawn")
    record(
        event_type="promotion.break_glass_found_unjustified",
        actor=Actor.user(actor),
        subject=promotion_subject(request),
        payload={**base_payload(request), "comment": comment, "late": late, "reverted": reverted},
    )
    violation_record(
        kind=ComplianceViolation.Kind.UNJUSTIFIED_BREAK_GLASS,
        subject=promotion_subject(request),
        summary=f"break-glass promotion #{request.pk} of {request.version.ref} to {request.environment.name} "
        "was found unjustified" + (f" and {undone.replace('_', ' ')}" if reverted else f" ({undone})"),
        details={**base_payload(request), "reviewer": principal_label(actor), "outcome": undone},
        reverted=reverted,
        actor=Actor.user(actor),
    )
    return review


def _undo_break_glass(request: PromotionRequest, *, user: User, comment: str) -> str:
    """Take back an unjustified break-glass release where that can still be done cleanly; the outcome."""
    reason = unjustified_reason(request, comment)
    request = lock_promotion(request)
    if request.state == State.APPROVED:
        # Not deploying yet: the deploy task refuses a request that is no longer approved.
        mark_withdrawn(request, Actor.user(user), reason)
        return "withdrawn"
    if request.state == State.DEPLOYING:
        # The alias may be moving right now (break-glass deploys in full): the deploy task refuses to move
        # it from now on, and promotion_alias_applied rolls back a move that completes anyway.
        return "to be rolled back: the promotion is deploying; it is stopped, or rolled back as soon as its " \
            "deployment completes"
    if request.state != State.DEPLOYED:
        return f"not rolled back: the promotion is {request.state}"
    live = lock_objects.live_deployments_lock().select_related("environment").filter(
        model_id=request.version.model_id, environment=request.environment
    ).first()
    if live is None or live.promotion_id != request.pk:
        return "not rolled back: another promotion has replaced it"
    roll_back(live, actor=user, reason=reason)
    return "rolled_back"


@transaction.atomic
def break_glass_reviews_flag_overdue(*, now: datetime | None = None) -> int:
    """Mark open reviews past their deadline overdue, each a compliance violation. Idempotent."""
    now = now or timezone.now()
    overdue = list(
        lock_objects.break_glass_reviews_lock()
        .select_related("request__version__model", "request__environment")
        .filter(state=BreakGlassReview.State.OPEN, due_at__lt=now)
    )
    for review in overdue:
        review.state = BreakGlassReview.State.OVERDUE
        review.save(update_fields=["state"])
        request = review.request
        violation_record(
            kind=ComplianceViolation.Kind.OVERDUE_BREAK_GLASS_REVIEW,
            subject=promotion_subject(request),
            summary=f"break-glass promotion #{request.pk} of {request.version.ref} to "
            f"{request.environment.name} was not reviewed by {review.due_at:%Y-%m-%d %H:%M} UTC",
            details={**base_payload(request), "due_at": review.due_at.isoformat()},
        )
    return len(overdue)
