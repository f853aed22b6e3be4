"""Reads of the governance domain."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db.models import Q

from governance.models import (
    Environment,
    FreezeWindow,
    LiveDeployment,
    ModelVersion,
    PromotionPolicy,
    PromotionRequest,
)
from governance.policy import DEFAULT_RULES, Policy, parse_policy


def user_groups(user: User) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


def policy_for(*, environment: Environment, model_id: int | None) -> tuple[Policy, PromotionPolicy | None]:
    """The model's own policy for the environment, else the environment's default, else the built-in one."""
    rows = {
        p.model_id: p
        for p in PromotionPolicy.objects.filter(environment=environment).filter(
            Q(model__isnull=True) | Q(model_id=model_id)
        )
    }
    row = rows.get(model_id) or rows.get(None)
    return parse_policy(row.rules if row else DEFAULT_RULES), row


def active_freeze(*, environment: Environment, at: datetime) -> FreezeWindow | None:
    return FreezeWindow.objects.filter(environment=environment, starts_at__lte=at, ends_at__gt=at).first()


def previous_environment(environment: Environment) -> Environment | None:
    return Environment.objects.filter(order__lt=environment.order).order_by("-order").first()


def live_version(*, model_id: int, environment: Environment) -> LiveDeployment | None:
    return LiveDeployment.objects.select_related("version").filter(model_id=model_id, environment=environment).first()


def deployed_since(*, version: ModelVersion, environment: Environment) -> datetime | None:
    """When ``version`` was last deployed to ``environment`` and not rolled back, if ever."""
    return (
        PromotionRequest.objects.filter(version=version, environment=environment, state=PromotionRequest.State.DEPLOYED)
        .order_by("-deployed_at")
        .values_list("deployed_at", flat=True)
        .first()
    )


def requests_awaiting(user: User) -> list[PromotionRequest]:
    """Pending requests this user may approve: in one of the policy's approval groups, and not
    their own request or their own model version (separation of duties)."""
    candidates = (
        PromotionRequest.objects.filter(state=PromotionRequest.State.PENDING)
        .exclude(requested_by=user)
        .exclude(version__creator=user.get_username())
        .select_related("version__model", "environment", "requested_by")
    )
    mine = user_groups(user)
    policies: dict[tuple[int, int], Policy] = {}
    awaiting = []
    for request in candidates:
        key = (request.environment_id, request.version.model_id)
        if key not in policies:
            policies[key], _ = policy_for(environment=request.environment, model_id=request.version.model_id)
        if mine & set(policies[key].approval_groups):
            awaiting.append(request)
    return awaiting


@dataclass(frozen=True)
class Admission:
    allowed: bool
    reason: str
    promotion_id: int | None = None
    mode: str | None = None  # "live", "canary" or "shadow"


def admission_check(*, model_name: str, version: int, environment_name: str) -> Admission:
    """May ``model_name`` version ``version`` run in ``environment_name``? Two indexed queries."""
    live = (
        LiveDeployment.objects.filter(model__name=model_name, environment__name=environment_name)
        .values_list("version__version", "promotion_id")
        .first()
    )
    if live is not None and live[0] == version:
        return Admission(True, "live under an approved promotion", live[1], "live")
    rollout = (
        PromotionRequest.objects.filter(
            version__model__name=model_name,
            version__version=version,
            environment__name=environment_name,
            state=PromotionRequest.State.DEPLOYING,
        )
        .exclude(strategy=PromotionRequest.Strategy.FULL)
        .values_list("id", "strategy")
        .first()
    )
    if rollout is not None:
        return Admission(True, f"{rollout[1]} rollout of an approved promotion", rollout[0], rollout[1])
    if live is None:
        return Admission(False, f"no version of {model_name} is approved for {environment_name}")
    return Admission(False, f"version {live[0]} is the approved version of {model_name} in {environment_name}")
