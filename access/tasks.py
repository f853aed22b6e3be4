"""Celery tasks of the access domain: they take ids (or nothing), call services, and are idempotent."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from access.errors import AccessError, InvalidState
from access.models import ReviewCampaign
from access.services.checks import check_denials_summarise
from access.services.grants import grants_expire
from access.services.reviews import review_campaign_close
from access.services.sessions import sessions_expire_sweep
from access.services.sso import user_account_disable_inactive
from governance.errors import GovernanceError
from governance.models import Lineage, ModelVersion
from governance.services.lineage import LINEAGE_ACTOR, lineage_link_from_mlflow

logger = logging.getLogger(__name__)

_TASK: dict[str, Any] = {"soft_time_limit": 600, "time_limit": 660, "acks_late": True}


# --- catalog and lineage ---------------------------------------------------------------------------------


@shared_task(name="access.tasks.lineage_reconcile", **_TASK)
def lineage_reconcile() -> dict[str, int]:
    """Safety net: link every mirrored version to the catalogued datasets its MLflow inputs name, and
    re-derive the classification of every version with lineage (each version in its own transaction).

    The sync and the catalog services do this as things change; this catches anything
    they missed. Nothing is recorded for a version already up to date.
    """
    with_lineage = set(Lineage.objects.values_list("version_id", flat=True))
    counts = {"versions": 0, "linked": 0, "reclassified": 0, "unknown_inputs": 0, "errors": 0}
    for pk, datasets in ModelVersion.objects.order_by("pk").values_list("pk", "datasets").iterator():
        if not datasets and pk not in with_lineage:
            continue
        counts["versions"] += 1
        version = ModelVersion.objects.get(pk=pk)
        try:
            report = lineage_link_from_mlflow(version=version, actor=LINEAGE_ACTOR)
        except (AccessError, GovernanceError) as exc:
            counts["errors"] += 1
            logger.warning("lineage of %s could not be reconciled: %s", version, exc)
            continue
        counts["linked"] += len(report.linked)
        counts["reclassified"] += report.reclassified
        counts["unknown_inputs"] += len(report.unknown)
    return counts


# --- grants and access reviews (access.services.grants, access.services.reviews) -------------------------------
# Expiry runs every 30 seconds from the beat schedule, so a lapsed grant leaves guardian within a minute;
# access.services.checks.check already denies it from its expires_at on.

EXPIRE_BATCH = 1000
_SWEEP: dict[str, Any] = {"retry_backoff": True, "max_retries": 3, "acks_late": True}


def _in_batches(service: Callable[..., int]) -> int:
    """Call ``service(limit=EXPIRE_BATCH)`` (one transaction each) until a batch comes back short; the total."""
    total = 0
    while True:
        done = service(limit=EXPIRE_BATCH)
        total += done
        if done < EXPIRE_BATCH:
            return total


@shared_task(name="access.tasks.expire_grants", autoretry_for=(OperationalError,), soft_time_limit=25, time_limit=30,
             **_SWEEP)
def expire_grants() -> int:
    """Close every lapsed grant (``access.grant_expired``) and remove its guardian permission, in batches of
    ``EXPIRE_BATCH`` (one transaction each). Returns how many were closed; running it twice does no harm."""
    return _in_batches(grants_expire)


@shared_task(name="access.tasks.close_review", autoretry_for=(OperationalError,), soft_time_limit=120, time_limit=180,
             **_SWEEP)
def close_review(campaign_id: int) -> str:
    """Close one access review if it is due (grants nobody certified are revoked). Idempotent."""
    campaign = ReviewCampaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        return "missing"
    try:
        review_campaign_close(campaign=campaign)
    except InvalidState as exc:  # closed already (or concurrently), or not due yet
        return f"nothing to do ({exc.code})"
    return "closed"


@shared_task(name="access.tasks.close_due_reviews", autoretry_for=(OperationalError,), soft_time_limit=240,
             time_limit=300, **_SWEEP)
def close_due_reviews() -> int:
    """Close every open access review past its deadline, each in its own transaction. Returns how many."""
    due = ReviewCampaign.objects.filter(state=ReviewCampaign.State.OPEN, deadline__lte=timezone.now())
    return sum(close_review.run(pk) == "closed" for pk in list(due.order_by("pk").values_list("pk", flat=True)))


# --- console sessions (access.services.sessions) --------------------------------------------------------------------


@shared_task(name="access.tasks.expire_sessions", autoretry_for=(OperationalError,), soft_time_limit=50,
             time_limit=58, **_SWEEP)
def expire_sessions() -> int:
    """End every signed-in console session past its idle timeout or lifetime (``auth.session_expired``, one
    per session, each in its own transaction), in batches of ``EXPIRE_BATCH``. Returns how many were ended;
    running it twice (or beside requests presenting those sessions) records nothing twice."""
    return _in_batches(sessions_expire_sweep)


# --- denied access checks (access.services.checks) -------------------------------------------------------------------


@shared_task(name="access.tasks.summarise_denials", autoretry_for=(OperationalError,), soft_time_limit=240,
             time_limit=300, **_SWEEP)
def summarise_denials() -> int:
    """Close every denial window whose interval is over (``access.check_denials_summarised`` when it counted
    repeats), in batches of ``EXPIRE_BATCH``. Returns how many were closed; running it twice does no harm."""
    return _in_batches(check_denials_summarise)


# --- single sign-on (access.services.sso) -------------------------------------------------------------------


@shared_task(name="access.tasks.disable_inactive_accounts", autoretry_for=(OperationalError,), soft_time_limit=240,
             time_limit=300, acks_late=True, max_retries=3, retry_backoff=True)
def disable_inactive_accounts() -> int:
    """Disable accounts linked to the identity provider and not signed in for OIDC_INACTIVE_DAYS (idempotent)."""
    return user_account_disable_inactive()
