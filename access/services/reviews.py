"""Access reviews: a campaign certifies or revokes every active grant on sensitive resources by a deadline."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from access import roles
from access.classification import CONFIDENTIAL, LEVELS, RESTRICTED
from access.errors import AccessError, InvalidState, NotPermitted
from access.lock_objects import grants_lock, resources_lock, review_campaign_lock, review_item_lock, review_items_lock
from access.models import (
    Grant,
    ReviewCampaign,
    ReviewItem,
)
from access.principals import account_ids, person_ids
from access.resources import (
    RESOURCE_MODELS,
    grant_levels,
    resource_label,
)
from access.roles import has_role
from access.services.grants import (
    grant_principal_label,
    grant_revoke,
    revoke_locked,
)
from access.services.inputs import TEXT_MAX, require_active, require_aware, require_text
from audit.canonical import format_timestamp
from audit.ledger import Actor, Subject, record

DEFAULT_REVIEW_LEVELS = (CONFIDENTIAL, RESTRICTED)


REVIEW_DEADLINE_REASON = "not certified by the review deadline"


def _review_subject(campaign: ReviewCampaign) -> Subject:
    return Subject("access_review", str(campaign.pk))


@transaction.atomic
def review_campaign_start(
    *, actor: User, name: str, deadline: datetime, levels: Sequence[str] = DEFAULT_REVIEW_LEVELS,
) -> ReviewCampaign:
    """Open an access review of every active grant on resources at ``levels``. InfoSec only.

    A resource's level: datasets their effective level, models their versions' highest
    data classification, environments their ``max_data_classification`` (so the default
    levels take the environments that may run models trained on confidential data or
    above). Reviewer: the resource's owner; environments, ownerless models and a grant
    to the owner themselves go to the campaign's creator.
    """
    require_active(actor)
    if not has_role(actor, roles.INFOSEC):
        raise NotPermitted("only InfoSec may start an access review")
    name = require_text(name, "name", max_length=200)
    deadline = require_aware(deadline, "deadline")
    now = timezone.now()
    if deadline <= now:
        raise AccessError("the review deadline must be in the future", code="invalid_deadline")
    wanted = tuple(dict.fromkeys(levels))
    if isinstance(levels, str) or not wanted or any(level not in LEVELS for level in wanted):
        raise AccessError(f"levels must be a non-empty list of {', '.join(LEVELS)}", code="invalid_level")
    active = list(Grant.objects.filter(revoked_at__isnull=True, expires_at__gt=now).order_by("pk"))
    info = grant_levels(active)
    campaign = ReviewCampaign.objects.create(name=name, created_by=actor, deadline=deadline)
    # An owner does not review a grant to themselves nor to a service account they own.
    persons = person_ids({g.user_id for g in active} | {owner for _, owner in info.values()})
    items = []
    for grant in active:
        level, owner_id = info.get((grant.resource_type, grant.resource_id), (None, None))
        if level not in wanted:
            continue
        holder = persons.get(grant.user_id) if grant.user_id is not None else None
        reviewer_id = owner_id if owner_id is not None and persons.get(owner_id) != holder else actor.pk
        items.append(ReviewItem(campaign=campaign, grant=grant, reviewer_id=reviewer_id))
    ReviewItem.objects.bulk_create(items, batch_size=1000)
    record(
        event_type="access.review_started",
        actor=Actor.user(actor),
        subject=_review_subject(campaign),
        payload={"campaign_id": campaign.pk, "name": name, "deadline": format_timestamp(deadline), "items": len(items)},
    )
    return campaign


def _holds_through(user: User, grant: Grant) -> bool:
    """Whether the person behind ``user`` holds ``grant``: to one of their accounts, or to a group
    one of their accounts belongs to."""
    mine = account_ids(user)
    if grant.user_id is not None:
        return grant.user_id in mine
    assert grant.group_id is not None  # a grant is to a user or a group
    return User.groups.through.objects.filter(group_id=grant.group_id, user_id__in=mine).exists()


@transaction.atomic
def review_item_decide(*, actor: User, review_item: ReviewItem, decision: str, comment: str = "") -> ReviewItem:
    """Certify or revoke one grant of an open campaign, before its deadline: the item's reviewer or InfoSec.
    Revoking revokes the grant at once (``grant_revoke``)."""
    require_active(actor)
    if decision not in (ReviewItem.Decision.CERTIFIED, ReviewItem.Decision.REVOKED):
        raise AccessError("the decision is 'certified' or 'revoked'", code="invalid_decision")
    comment = (comment or "").strip()
    if len(comment) > TEXT_MAX:
        raise AccessError(f"the comment is longer than {TEXT_MAX} characters", code="too_long")
    review_item = review_item_lock(review_item)
    campaign = ReviewCampaign.objects.get(pk=review_item.campaign_id)  # read after the lock: a close may just have run
    now = timezone.now()
    if campaign.state != ReviewCampaign.State.OPEN:
        raise InvalidState(f"access review {campaign.name} is closed")
    if now >= campaign.deadline:
        raise InvalidState(f"the deadline of access review {campaign.name} has passed", code="deadline_passed")
    if review_item.decision != ReviewItem.Decision.PENDING:
        raise InvalidState(f"this grant was already {review_item.decision} in {campaign.name}", code="already_decided")
    if review_item.reviewer_id != actor.pk and not has_role(actor, roles.INFOSEC):
        raise NotPermitted("only the item's reviewer or InfoSec may decide it")
    grant = Grant.objects.get(pk=review_item.grant_id)
    if _holds_through(actor, grant):
        raise NotPermitted("you cannot review your own access (nor that of a service account you own or a group "
                           "you or it belong to)", code="self_review")
    if decision == ReviewItem.Decision.REVOKED and grant.revoked_at is None and grant.expires_at > now:
        reason = f"revoked in access review {campaign.name}" + (f": {comment}" if comment else "")
        grant_revoke(actor=actor, grant=grant, reason=reason[:300])
    review_item.decision = decision
    review_item.decided_by = actor
    review_item.decided_at = now
    review_item.comment = comment
    review_item.save(update_fields=["decision", "decided_by", "decided_at", "comment"])
    record(
        event_type="access.review_decided",
        actor=Actor.user(actor),
        subject=_review_subject(campaign),
        payload={"campaign_id": campaign.pk, "grant_id": grant.pk, "decision": decision,
                 **({"comment": comment} if comment else {})},
    )
    return review_item


@transaction.atomic
def review_campaign_close(*, campaign: ReviewCampaign, now: datetime | None = None) -> ReviewCampaign:
    """At or after the deadline: revoke every grant still pending review, close the campaign and keep a report.
    System (the ``close_due_reviews`` task)."""
    now = now or timezone.now()
    campaign = review_campaign_lock(campaign)
    if campaign.state != ReviewCampaign.State.OPEN:
        raise InvalidState(f"access review {campaign.name} is already closed")
    if now < campaign.deadline:
        raise InvalidState(f"access review {campaign.name} is not due until {format_timestamp(campaign.deadline)}",
                           code="not_due")
    items = review_items_lock(campaign)
    pending = [i for i in items if i.decision == ReviewItem.Decision.PENDING]
    resources = resources_lock((i.grant.resource_type, i.grant.resource_id) for i in pending)
    # Labels for the report, also of resources that are not locked (decided items).
    labels = {key: resource_label(r) for key, r in resources.items()}
    decided_keys = {(i.grant.resource_type, i.grant.resource_id) for i in items} - set(labels)
    for key in decided_keys:
        found = RESOURCE_MODELS[key[0]]._default_manager.filter(pk=key[1]).first()
        labels[key] = resource_label(found) if found is not None else f"{key[0]}:#{key[1]}"
    grants = {
        g.pk: g
        for g in grants_lock(Grant.objects.filter(pk__in=[i.grant_id for i in pending]))
    }
    outcomes: list[dict[str, Any]] = []
    counts = {"certified": 0, "revoked": 0, "auto_revoked": 0, "already_ended": 0}
    for item in items:
        grant = grants.get(item.grant_id, item.grant)
        key = (grant.resource_type, grant.resource_id)
        if item.decision == ReviewItem.Decision.PENDING:
            resource = resources.get(key)
            if resource is not None and grant.revoked_at is None and grant.expires_at > now:
                revoke_locked(grant, resource, now=now, by=None, reason=REVIEW_DEADLINE_REASON,
                               actor=Actor.system("access-review"))
                outcome = "auto_revoked"
            else:
                outcome = "already_ended"
            item.decision = ReviewItem.Decision.REVOKED
            item.decided_at = now
            item.comment = REVIEW_DEADLINE_REASON if outcome == "auto_revoked" else "the grant had already ended"
            item.save(update_fields=["decision", "decided_at", "comment"])
        else:
            outcome = str(item.decision)
        counts[outcome] += 1
        outcomes.append({
            "item_id": item.pk, "grant_id": grant.pk, "principal": grant_principal_label(item.grant),
            "resource": labels[key],
            "permission": grant.permission, "reviewer_id": item.reviewer_id, "decided_by_id": item.decided_by_id,
            "outcome": outcome, "comment": item.comment,
        })
    campaign.state = ReviewCampaign.State.CLOSED
    campaign.closed_at = now
    campaign.report = {
        "closed_at": format_timestamp(now), "deadline": format_timestamp(campaign.deadline), "items": len(items),
        **counts,
        "outcomes": outcomes,
    }
    campaign.save(update_fields=["state", "closed_at", "report"])
    record(
        event_type="access.review_closed",
        actor=Actor.system("access-review"),
        subject=_review_subject(campaign),
        payload={"campaign_id": campaign.pk, "certified": counts["certified"], "revoked": counts["revoked"],
                 "auto_revoked": counts["auto_revoked"]},
    )
    return campaign
