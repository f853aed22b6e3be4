"""Registered models: ownership (#13: MLflow grants no rights). Ownership is assigned only here;
MLflow's ``owner`` tag is compared with it (drift), never obeyed.
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from access import roles
from access.roles import role_names
from audit.ledger import Actor, Subject, record
from governance import lock_objects
from governance.errors import GovernanceError, NotPermitted
from governance.models import (
    ComplianceViolation,
    RegisteredModel,
)
from governance.services.common import account_ref, require_text
from governance.services.compliance import violation_record
from governance.services.model_versions import is_service_account

#: The registered-model tag naming who MLflow users think owns the model: compared, never trusted.
OWNER_TAG = "owner"


def may_set_owner(user: User, model: RegisteredModel) -> bool:
    """InfoSec, or the model's current owner handing it over."""
    if not user.is_active:
        return False
    return roles.INFOSEC in role_names(user) or (model.owner_id is not None and model.owner_id == user.pk)


@transaction.atomic
def model_owner_set(*, actor: User, model: RegisteredModel, owner: User, reason: str) -> RegisteredModel:
    """Make ``owner`` (an active person's account) the owner of ``model``; InfoSec or the current owner.

    Records ``model.owner_set`` with ``user:<id>`` references. Setting the owner it already
    has changes and records nothing. A later MLflow ``owner`` tag that disagrees is drift
    (``model_ownership_drift_check``), never a change of owner.
    """
    reason = require_text(reason, "reason")
    model = lock_objects.registered_models_lock().get(pk=model.pk)
    if not may_set_owner(actor, model):
        raise NotPermitted("only InfoSec or the model's current owner may assign its owner")
    if not isinstance(owner, User) or owner.pk is None or not owner.is_active:
        raise GovernanceError("the new owner must be an active account", code="invalid_owner")
    if is_service_account(owner):
        raise GovernanceError("a service account cannot own a model: name the person accountable for it",
                              code="invalid_owner")
    if model.owner_id == owner.pk:
        return model
    previous = model.owner_id
    model.owner = owner
    model.save(update_fields=["owner"])
    record(
        event_type="model.owner_set",
        actor=Actor.user(actor),
        subject=Subject("registered_model", model.name),
        payload={"model": model.name, "owner": account_ref(owner),
                 "previous_owner": account_ref(previous) if previous is not None else None, "reason": reason},
    )
    model_ownership_drift_check(model=model, previous_tags=model.tags, actor=Actor.user(actor))
    return model


@transaction.atomic
def model_ownership_drift_check(
    *, model: RegisteredModel, previous_tags: dict[str, Any] | None = None, actor: Actor | None = None
) -> ComplianceViolation | None:
    """Record ``ownership_drift`` when MLflow's ``owner`` tag names someone other than the owner assigned here.

    Nothing is recorded while the model has no owner here (there is nothing to disagree with) or
    the tag agrees. Recorded once per owner, and again only when the tag's value changes. The
    tag's value is free text that can name a person: it stays out of the violation.
    """
    claimed = str((model.tags or {}).get(OWNER_TAG) or "")
    if not claimed or model.owner_id is None:
        return None
    owner = User.objects.filter(pk=model.owner_id).first()
    if owner is None or claimed == owner.get_username():
        return None
    tag_changed = previous_tags is not None and str(previous_tags.get(OWNER_TAG) or "") != claimed
    latest = (
        ComplianceViolation.objects.filter(
            kind=ComplianceViolation.Kind.OWNERSHIP_DRIFT, subject_type="registered_model", subject_id=model.name
        ).order_by("-pk").first()
    )
    if latest is not None and latest.details.get("owner") == account_ref(owner) and not tag_changed:
        return None
    return violation_record(
        kind=ComplianceViolation.Kind.OWNERSHIP_DRIFT,
        subject=Subject("registered_model", model.name),
        summary=f"MLflow's '{OWNER_TAG}' tag of {model.name} does not name its owner here ({account_ref(owner)}). "
        "The tag grants nothing; correct it in MLflow, or hand the model over here if the owner changed.",
        details={"model": model.name, "owner": account_ref(owner), "tag": OWNER_TAG},
        actor=actor,
    )
