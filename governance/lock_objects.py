"""Every row lock of the promotion-governance domain (``SELECT … FOR UPDATE``), in one place.

Each function returns the model's queryset with the lock applied; the caller filters it and reads
the rows inside its transaction (Saleor's ``lock_objects.py``). A service that locks rows of several
kinds takes them in this order, so two services never wait on each other in a cycle:

1. ``change_requests_lock``: a change request, before the environment it changes;
2. ``break_glass_reviews_lock``: a review, before the promotion request it reviews;
3. ``registered_models_lock``, then ``model_versions_lock``: the mirror, a model before its versions
   (and one reconciler per model: ``alias_out_of_band_record`` locks the model first);
4. ``promotion_requests_lock``: the request (``of=("self",)``: not the version, model and environment
   rows it joins), then
5. ``live_deployments_lock``: what is live of the request's model there;
6. ``environments_lock``, then ``accounts_lock``: the break-glass budget (the environment, then the
   person's accounts in primary-key order);
7. the rows locked alone: ``violations_lock``, ``identity_links_lock``,
   ``webhook_refusal_counters_lock``, ``admission_decisions_lock`` (an open admission window, in a
   transaction of its own), ``webhook_deliveries_lock`` (the outbox: a drain claims a delivery in a
   transaction of its own, ``skip_locked`` so that concurrent drains take different rows and never wait).

One path takes 5 before 4: ``promotion_rollback`` locks the live deployment to find the promotion
to roll back, then that promotion. It serialises with ``promotion_alias_applied`` (4, then 5 of the
same model and environment) through the live deployment row only when the deployment completes at
the moment it is rolled back; the database detects such a deadlock and one of the two fails with a
database error and rolls back, never half-applied.
"""
from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import QuerySet

from governance.models import (
    AdmissionDecision,
    BreakGlassReview,
    ComplianceViolation,
    Environment,
    GovernanceChangeRequest,
    IdentityLink,
    LiveDeployment,
    ModelVersion,
    PromotionRequest,
    RegisteredModel,
    WebhookDelivery,
    WebhookRefusalCounter,
)


def change_requests_lock() -> QuerySet[GovernanceChangeRequest]:
    # of=("self",): PostgreSQL cannot lock the nullable side of the outer join to ``model``; the
    # environment's row is locked on its own by the services that change it.
    return GovernanceChangeRequest.objects.select_for_update(of=("self",))


def break_glass_reviews_lock() -> QuerySet[BreakGlassReview]:
    return BreakGlassReview.objects.select_for_update()


def registered_models_lock() -> QuerySet[RegisteredModel]:
    return RegisteredModel.objects.select_for_update()


def model_versions_lock(*, only_self: bool = False) -> QuerySet[ModelVersion]:
    """``only_self``: lock the version's row only, not the rows a ``select_related`` joins."""
    if only_self:
        return ModelVersion.objects.select_for_update(of=("self",))
    return ModelVersion.objects.select_for_update()


def promotion_requests_lock() -> QuerySet[PromotionRequest]:
    # of=("self",): lock the request only, not the version, model and environment rows it joins.
    return PromotionRequest.objects.select_for_update(of=("self",))


def live_deployments_lock() -> QuerySet[LiveDeployment]:
    return LiveDeployment.objects.select_for_update()


def environments_lock() -> QuerySet[Environment]:
    return Environment.objects.select_for_update()


def accounts_lock() -> QuerySet[User]:
    return User.objects.select_for_update()


def violations_lock() -> QuerySet[ComplianceViolation]:
    return ComplianceViolation.objects.select_for_update()


def identity_links_lock() -> QuerySet[IdentityLink]:
    return IdentityLink.objects.select_for_update()


def webhook_refusal_counters_lock() -> QuerySet[WebhookRefusalCounter]:
    return WebhookRefusalCounter.objects.select_for_update()


def webhook_deliveries_lock(*, skip_locked: bool = False) -> QuerySet[WebhookDelivery]:
    """``skip_locked``: rows another drain holds are left out instead of waited for (claiming work)."""
    return WebhookDelivery.objects.select_for_update(skip_locked=skip_locked)


def admission_decisions_lock() -> QuerySet[AdmissionDecision]:
    """Open admission windows (``governance.services.admission``): locked alone, each in its own transaction."""
    # of=("self",): the environment joined for its name is read, not locked (environments come later in the order).
    return AdmissionDecision.objects.select_for_update(of=("self",)).select_related("environment")
