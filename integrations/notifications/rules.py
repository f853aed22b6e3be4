"""What the ledger tells whom: one ledger entry (or one expiring grant) → the people to notify, and what to say.

The recipients come from the domains' own selectors, so a notification reaches exactly the people the console
would show the object to and let act on it: a pending promotion goes to those ``governance.selectors.
requests_awaiting`` lists it for (never its requester), an access request to those ``access.selectors.
requests_awaiting`` lists it for (a person with no role on the dataset is not told of it), a decision to the
requester, a break-glass review to the policy's reviewers, violations and integrity failures to InfoSec.
Nobody is told of their own action.

What is said holds no third party's personal data and no secret: object numbers, model and environment
names, resource labels, the kind of event and a link, never a requester's, grantee's or approver's name,
e-mail or comment (``integrations.notifications`` tests check). The text is cleaned of control characters
(a model name from MLflow could carry a newline into an e-mail header otherwise).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.urls import reverse

from access import roles
from access import selectors as access_selectors
from access.models import AccessRequest, Grant
from access.principals import same_person
from access.resources import resource_label
from access.roles import role_names
from audit.models import Entry
from governance import selectors as gov_selectors
from governance.models import BreakGlassReview, PromotionRequest

#: category → (what the preferences page calls it, its channel unless the person chose another).
CATEGORIES: dict[str, tuple[str, str]] = {
    "promotion_waiting": ("A promotion waits for your approval", "email"),
    "decision": ("A decision on your promotion or access request", "email"),
    "break_glass": ("A break-glass promotion needs your review (or its review is overdue)", "email"),
    "access_waiting": ("An access request waits for your approval", "email"),
    "grant_expiring": ("A grant of yours, or on what you own, expires within 7 days", "email"),
    "violation": ("A compliance violation (InfoSec)", "email"),
    "integrity": ("A ledger integrity failure (InfoSec)", "email"),
}
CHANNELS = ("email", "chat", "none")

_PROMOTION_WAITING = {"promotion.requested", "promotion.evidence_changed"}
_PROMOTION_DECIDED = {
    "promotion.approved": "was approved", "promotion.rejected": "was rejected",
    "promotion.changes_requested": "was sent back with changes requested", "promotion.withdrawn": "was withdrawn",
    "promotion.expired": "expired without a decision",
}
_ACCESS_DECIDED = {"access.request_rejected": "was rejected", "access.request_withdrawn": "was withdrawn"}
#: The event types the ``notifications`` stream reads (everything else is passed over).
EVENT_TYPES = frozenset({*_PROMOTION_WAITING, *_PROMOTION_DECIDED, *_ACCESS_DECIDED, "access.request_created",
                         "access.request_approved", "promotion.break_glass", "compliance.violation"})
GRANT_EXPIRY_WINDOW = timedelta(days=7)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


@dataclass(frozen=True)
class Planned:
    """Tell ``recipients`` (user ids) ``text``, linking to the console ``path``."""

    recipients: frozenset[int]
    category: str
    text: str
    path: str


def clean(text: str, limit: int = 480) -> str:
    """One line of printable text (no header injection through a name carried into a subject)."""
    return _CONTROL.sub(" ", text).strip()[:limit]


def people() -> QuerySet[User]:
    """Active accounts of people (service accounts read no mail)."""
    return User.objects.filter(is_active=True, service_account__isnull=True)


def _role_members(*names: str) -> set[int]:
    return set(people().filter(groups__name__in=names).values_list("pk", flat=True))


def _actor_pk(entry: Entry) -> int | None:
    return int(entry.actor_id) if entry.actor_type == "user" and entry.actor_id.isdigit() else None


def _promotion(entry: Entry) -> PromotionRequest | None:
    if entry.subject_type != "promotion_request" or not entry.subject_id.isdigit():
        return None
    return PromotionRequest.objects.select_related("version__model", "environment").filter(
        pk=int(entry.subject_id)).first()


def _promotion_label(request: PromotionRequest) -> str:
    return f"promotion #{request.pk} of {request.version.model.name} v{request.version.version} to " \
        f"{request.environment.name}"


def _access_request(entry: Entry) -> AccessRequest | None:
    request_id = entry.payload.get("request_id")
    return AccessRequest.objects.filter(pk=request_id).first() if isinstance(request_id, int) else None


def _access_label(request: AccessRequest | Grant) -> str:
    labels = access_selectors.resource_labels([request])
    return f"{request.permission} on {labels[(request.resource_type, request.resource_id)]}"


def _candidates(exclude: Iterable[int | None]) -> list[User]:
    """Every person who might be eligible (the selectors decide); few hundred at most in this product."""
    return list(people().filter(groups__isnull=False).exclude(pk__in=[i for i in exclude if i is not None])
                .distinct().order_by("pk"))


def _promotion_waiting(entry: Entry, actor: int | None) -> list[Planned]:
    request = _promotion(entry)
    if request is None or request.state != PromotionRequest.State.PENDING:
        return []  # decided meanwhile (a catch-up after an outage): nothing waits any more
    approvers = {u.pk for u in _candidates([actor, request.requested_by_id])
                 if any(r.pk == request.pk for r in gov_selectors.requests_awaiting(u))
                 and gov_selectors.promotion_requests_visible_to(u).filter(pk=request.pk).exists()}
    again = " again (its evidence changed)" if entry.event_type == "promotion.evidence_changed" else ""
    return [Planned(frozenset(approvers), "promotion_waiting",
                    f"{_promotion_label(request).capitalize()} waits for your approval{again}.",
                    reverse("console-request", args=[request.pk]))]


def _promotion_decided(entry: Entry, actor: int | None) -> list[Planned]:
    request = _promotion(entry)
    if request is None:
        return []
    requester = request.requested_by_id
    if actor is not None and same_person(actor, requester):
        return []
    return [Planned(frozenset({requester}), "decision",
                    f"Your {_promotion_label(request)} {_PROMOTION_DECIDED[entry.event_type]}.",
                    reverse("console-request", args=[request.pk]))]


def _break_glass_reviewers(request: PromotionRequest, actor: int | None) -> set[int]:
    review = BreakGlassReview.objects.filter(request=request).first()
    if review is None:
        return set()
    policy, _ = gov_selectors.policy_for(environment=request.environment, model_id=request.version.model_id)
    groups = set(policy.approval_groups) or {roles.INFOSEC}
    out = set()
    for user in _candidates([actor, request.requested_by_id, request.version.registered_by_id]):
        if not role_names(user) & groups or same_person(user, request.requested_by_id):
            continue
        if request.version.registered_by_id is not None and same_person(user, request.version.registered_by_id):
            continue
        if gov_selectors.break_glass_reviews_visible_to(user).filter(pk=review.pk).exists():
            out.add(user.pk)
    return out


def _break_glass(entry: Entry, actor: int | None) -> list[Planned]:
    request = _promotion(entry)
    if request is None:
        return []
    return [Planned(frozenset(_break_glass_reviewers(request, actor)), "break_glass",
                    f"Break-glass {_promotion_label(request)} needs your post-hoc review.",
                    reverse("console-breakglass"))]


def _access_waiting(entry: Entry, actor: int | None) -> list[Planned]:
    request = _access_request(entry)
    if request is None or request.state != AccessRequest.State.PENDING:
        return []
    approvers = {u.pk for u in _candidates([actor, request.requester_id, request.principal_user_id])
                 if any(r.pk == request.pk for r in access_selectors.requests_awaiting(u))
                 and access_selectors.access_requests_visible_to(u).filter(pk=request.pk).exists()}
    return [Planned(frozenset(approvers), "access_waiting",
                    f"Access request #{request.pk} ({_access_label(request)}) waits for your approval.",
                    reverse("console-access-request", args=[request.pk]))]


def _access_decided(entry: Entry, actor: int | None) -> list[Planned]:
    request = _access_request(entry)
    if request is None or (actor is not None and same_person(actor, request.requester_id)):
        return []
    outcome = _ACCESS_DECIDED.get(entry.event_type, "was approved")
    return [Planned(frozenset({request.requester_id}), "decision",
                    f"Your access request #{request.pk} ({_access_label(request)}) {outcome}.",
                    reverse("console-access-request", args=[request.pk]))]


def _violation(entry: Entry, actor: int | None) -> list[Planned]:
    payload = entry.payload
    kind = str(payload.get("kind", ""))
    number = payload.get("violation_id")
    infosec = _role_members(roles.INFOSEC) - {actor}
    category = "integrity" if kind == "integrity" else "violation"
    what = "Ledger integrity check failed" if kind == "integrity" else \
        f"Compliance violation ({kind.replace('_', ' ')})"
    planned = [Planned(frozenset(infosec), category, f"{what}: violation #{number} on {entry.subject_type} "
                       f"{entry.subject_id}.", reverse("console-violations"))]
    if kind == "overdue_break_glass_review":
        request = _promotion(entry)
        if request is not None:
            planned.append(Planned(frozenset(_break_glass_reviewers(request, actor)), "break_glass",
                                   f"The post-hoc review of break-glass {_promotion_label(request)} is overdue.",
                                   reverse("console-breakglass")))
    return planned


def plan(entry: Entry) -> list[Planned]:
    """Who hears of ``entry``, and what (empty lists of recipients are allowed; the caller skips them)."""
    actor = _actor_pk(entry)
    kind = entry.event_type
    if kind in _PROMOTION_WAITING:
        return _promotion_waiting(entry, actor)
    if kind in _PROMOTION_DECIDED:
        return _promotion_decided(entry, actor)
    if kind == "promotion.break_glass":
        return _break_glass(entry, actor)
    if kind == "access.request_created" or (kind == "access.request_approved" and not entry.payload.get("final")):
        return _access_waiting(entry, actor)  # an owner's approval: now InfoSec's turn
    if kind == "access.request_approved" or kind in _ACCESS_DECIDED:
        return _access_decided(entry, actor)
    if kind == "compliance.violation":
        return _violation(entry, actor)
    return []


def plan_grant_expiring(grant: Grant) -> Planned:
    """The grantee (a person, or the members of a group) and the resource's owner hear that ``grant`` expires.

    The owner is not told who holds it (the grantee is a third party to them): the grant's number and what it
    is on, with a link to the grants page."""
    recipients: set[int] = set()
    if grant.user_id is not None:
        recipients.add(grant.user_id)
    if grant.group_id is not None:
        recipients |= set(people().filter(groups=grant.group_id).values_list("pk", flat=True))
    resource = access_selectors.resources_for([grant]).get((grant.resource_type, grant.resource_id))
    owner = getattr(resource, "owner_id", None)
    if owner is not None:
        recipients.add(owner)
    label = resource_label(resource) if resource is not None else f"{grant.resource_type}:#{grant.resource_id}"
    when = grant.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    return Planned(frozenset(recipients & set(people().values_list("pk", flat=True))), "grant_expiring",
                   f"Grant #{grant.pk} ({grant.permission} on {label}) expires on {when} UTC.",
                   reverse("console-grants"))


def entry_time(entry: Entry) -> datetime:
    return datetime.fromisoformat(entry.timestamp.replace("Z", "+00:00"))
