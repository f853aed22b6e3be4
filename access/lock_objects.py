"""Every row lock (``select_for_update``) the access domain takes, one function per thing locked.

Lock order: a transaction that needs several of these takes them in this order, each kind in
primary-key order, so two writers can wait for each other but never deadlock:

1. ``review_campaign_lock`` (closing a review), then ``review_items_lock`` / ``review_item_lock``;
2. ``access_request_lock`` (approving a request locks it before the resource it asks for);
3. model versions trained on a dataset (governance's lineage, through ``access.signals``): before the
   dataset, so a reclassification and a new lineage link serialise on the dataset row;
4. resources: ``resource_lock`` / ``resources_lock`` (in ``(resource_type, id)`` order) and
   ``dataset_lock``. Every grant change locks the resource first, so "does another active grant still
   back this guardian row?" cannot race a concurrent grant on the same resource;
5. ``grant_lock`` / ``grants_lock`` (pk order);
6. ``api_token_lock``.

``users_lock`` (role changes, closing an account) and ``denial_window_lock`` (a denied check, in a
transaction of its own) are taken by services that lock nothing else of access. The ledger's own locks
(``audit.ledger.record``) always come last.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet

from access.errors import AccessError
from access.models import AccessRequest, ApiToken, Dataset, DenialWindow, Grant, ReviewCampaign, ReviewItem
from access.resources import RESOURCE_MODELS, Resource


def review_campaign_lock(campaign: ReviewCampaign) -> ReviewCampaign:
    return ReviewCampaign.objects.select_for_update().get(pk=campaign.pk)


def review_items_lock(campaign: ReviewCampaign) -> list[ReviewItem]:
    """Every item of ``campaign`` (pk order), with its grant and the grant's principal."""
    return list(
        campaign.items.select_for_update(of=("self",)).select_related("grant__user", "grant__group").order_by("pk")
    )


def review_item_lock(item: ReviewItem) -> ReviewItem:
    return ReviewItem.objects.select_for_update().get(pk=item.pk)


def access_request_lock(request: AccessRequest) -> AccessRequest:
    return AccessRequest.objects.select_for_update().get(pk=request.pk)


def resource_lock(resource_type: str, resource_id: int) -> Resource:
    model = RESOURCE_MODELS[resource_type]
    found = model._default_manager.select_for_update().filter(pk=resource_id).first()
    if found is None:
        raise AccessError(f"{resource_type} #{resource_id} does not exist", code="not_found")
    return found


def resources_lock(keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], Resource]:
    """Lock several resources in a fixed order (type, id), so concurrent sweeps cannot deadlock."""
    by_type: dict[str, set[int]] = defaultdict(set)
    for resource_type, resource_id in keys:
        by_type[resource_type].add(resource_id)
    found: dict[tuple[str, int], Resource] = {}
    for resource_type in sorted(by_type):
        model = RESOURCE_MODELS[resource_type]
        rows = model._default_manager.select_for_update().filter(pk__in=by_type[resource_type]).order_by("pk")
        for obj in rows:
            found[(resource_type, obj.pk)] = obj
    return found


def dataset_lock(dataset: Dataset) -> Dataset:
    return Dataset.objects.select_for_update().get(pk=dataset.pk)


def grant_lock(grant: Grant) -> Grant:
    return Grant.objects.select_for_update(of=("self",)).select_related("user", "group").get(pk=grant.pk)


def grants_lock(filtered: QuerySet[Grant]) -> list[Grant]:
    """The grants of ``filtered`` (pk order), with their principals."""
    return list(filtered.select_for_update(of=("self",)).select_related("user", "group").order_by("pk"))


def api_token_lock(token: ApiToken) -> ApiToken:
    return ApiToken.objects.select_for_update().select_related("service_account").get(pk=token.pk)


def users_lock(pks: Iterable[int]) -> dict[int, User]:
    """Lock these users' rows in pk order (a role change or closure and a concurrent one of the actor)."""
    return {u.pk: u for u in User.objects.select_for_update().filter(pk__in=sorted(set(pks))).order_by("pk")}


def denial_window_lock(**key: Any) -> DenialWindow | None:
    """The denial window of (principal, resource_type, resource_id, permission), when there is one."""
    return DenialWindow.objects.select_for_update().filter(**key).first()


def closed_denial_window_lock(pk: int, closed_before: datetime) -> DenialWindow | None:
    """Denial window ``pk`` if its interval is still over (not reopened or closed meanwhile)."""
    return DenialWindow.objects.select_for_update().filter(pk=pk, first_at__lte=closed_before).first()
