"""What the service modules share: subjects and payloads of promotion events, text checks, the promotion row lock.

Changes nothing by itself.
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from access import roles
from access.roles import role_names
from audit.ledger import Subject
from governance import lock_objects
from governance.errors import GovernanceError, NotPermitted
from governance.models import (
    ModelVersion,
    PromotionRequest,
)

State = PromotionRequest.State


Strategy = PromotionRequest.Strategy


def promotion_subject(request: PromotionRequest) -> Subject:
    return Subject("promotion_request", str(request.pk))


def version_subject(version: ModelVersion) -> Subject:
    return Subject("model_version", version.ref)


def base_payload(request: PromotionRequest) -> dict[str, Any]:
    return {
        "model": request.version.model.name,
        "version": request.version.version,
        "environment": request.environment.name,
    }


def lock_promotion(request: PromotionRequest) -> PromotionRequest:
    # of=("self",): lock the request only, not the version, model and environment rows it joins.
    return (
        lock_objects.promotion_requests_lock()
        .select_related("version__model", "environment")
        .get(pk=request.pk)
    )


def require_text(value: str, what: str) -> str:
    value = (value or "").strip()
    if not value:
        raise GovernanceError(f"a {what} is required", code="required")
    if len(value) > 5000:
        raise GovernanceError(f"the {what} is longer than 5000 characters", code="too_long")
    return value


def who(user: User, account_id: int) -> str:
    """How a refusal names the account that is ``user`` as a person."""
    return "you" if account_id == user.pk else f"your service account (user:{account_id})"


def require_infosec(user: User, what: str) -> None:
    if roles.INFOSEC not in role_names(user):
        raise NotPermitted(f"only InfoSec may {what}")


def account_ref(account: User | int) -> str:
    return f"user:{account if isinstance(account, int) else account.pk}"
