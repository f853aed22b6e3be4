"""Model versions: the declared data classification and the trusted registrant (#13).
"""
from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from access import roles
from access.classification import LEVELS
from access.models import ServiceAccount
from access.roles import role_names
from audit.ledger import Actor, record
from governance import lock_objects
from governance.errors import GovernanceError, InvalidState, NotPermitted
from governance.models import (
    VIA_API_TOKEN,
    VIA_IDENTITY_LINK,
    IdentityLink,
    ModelVersion,
    PromotionRequest,
)

# promotions as a module, not its names: promotions → registry_mirror → here is an import cycle.
from governance.services import lineage, promotions
from governance.services.common import State, account_ref, require_text, version_subject


def _check_not_classified_by_lineage(version: ModelVersion, level: str) -> None:
    """Access catalog: a version with lineage takes its classification from its datasets."""
    state = lineage.lineage_state(version)
    if state.unknown:  # #13: data nobody catalogued cannot be declared anything
        raise GovernanceError(
            f"{version.ref} was trained on datasets the catalog does not know ({', '.join(state.unknown)}); "
            "register and classify them instead",
            code="uncatalogued_lineage",
        )
    if state.level is None:
        return
    if state.complete:
        raise GovernanceError(
            f"{version.ref} takes its classification ({state.level}) from the datasets it was trained on "
            f"({', '.join(state.datasets)}); reclassify those datasets instead",
            code="classified_by_lineage",
        )
    if LEVELS.index(level) < LEVELS.index(state.level):
        raise GovernanceError(
            f"{version.ref} was trained on {state.level} data ({', '.join(state.datasets)}); "
            f"it cannot be declared {level}",
            code="below_lineage",
        )


@transaction.atomic
def model_version_declare_classification(
    *, actor: User, version: ModelVersion, level: str, reason: str
) -> ModelVersion:
    """Declare the training data's classification (data steward or InfoSec).

    A version with complete lineage takes its classification from its datasets and is
    refused (``classified_by_lineage``); with incomplete lineage, a level below what the
    linked datasets already say is refused (``below_lineage``). See governance.services.lineage.
    """
    reason = require_text(reason, "reason")
    if level not in LEVELS:
        raise GovernanceError(f"classification must be one of {', '.join(LEVELS)}", code="invalid_level")
    groups = role_names(actor)
    if not groups & {roles.DATA_STEWARD, roles.INFOSEC}:
        raise NotPermitted("only a data steward or InfoSec may declare a version's data classification")
    _check_not_classified_by_lineage(version, level)
    previous = version.data_classification
    version.data_classification = level
    version.save(update_fields=["data_classification"])
    record(
        event_type="model.version_classified",
        actor=Actor.user(actor),
        subject=version_subject(version),
        payload={"model": version.model.name, "version": version.version, "level": level,
                 "previous_level": previous or None, "reason": reason},
    )
    for request in PromotionRequest.objects.filter(version=version, state=State.PENDING):
        promotions.promotion_reevaluate(promotion=request, actor=Actor.user(actor))
    return version


def is_service_account(account: User) -> bool:
    return ServiceAccount.objects.filter(user_id=account.pk).exists()


def _reevaluate_version(version: ModelVersion, actor: Actor) -> None:
    for request in PromotionRequest.objects.filter(version=version, state=State.PENDING).order_by("pk"):
        promotions.promotion_reevaluate(promotion=request, actor=actor)


@transaction.atomic
def model_version_registrant_link(
    *, version: ModelVersion, account: User, actor: Actor, via_link: IdentityLink | None = None,
    token_id: int | None = None,
) -> ModelVersion:
    """Set the account the product knows registered ``version`` (through ``via_link`` or an API token).

    First trusted link wins: a version with another registrant is refused (``InvalidState``,
    code ``conflict``); the same one again changes and records nothing. Records
    ``model.version_registrant_linked`` and re-evaluates the version's pending requests.
    """
    if (via_link is None) == (token_id is None):
        raise GovernanceError("a registrant is linked through exactly one of an identity link or an API token")
    version = lock_objects.model_versions_lock(only_self=True).select_related("model").get(pk=version.pk)
    if version.registered_by_id == account.pk:
        return version
    if version.registered_by_id is not None:
        raise InvalidState(
            f"{version.ref} was already reported as registered by another account "
            f"({account_ref(version.registered_by_id)}, {version.registered_via.replace('_', ' ')}); "
            "the first trusted report stands",
            code="conflict",
        )
    via = VIA_IDENTITY_LINK if via_link is not None else VIA_API_TOKEN
    version.registered_by = account
    version.registered_via = via
    version.save(update_fields=["registered_by", "registered_via"])
    record(
        event_type="model.version_registrant_linked",
        actor=actor,
        subject=version_subject(version),
        payload={"model": version.model.name, "version": version.version, "registered_by": account_ref(account),
                 "via": via, **({"link_id": via_link.pk} if via_link is not None else {}),
                 **({"token_id": token_id} if token_id is not None else {})},
    )
    _reevaluate_version(version, actor)
    return version


@transaction.atomic
def model_version_report_registered(
    *, actor: User, version: ModelVersion, token_id: int, run_id: str
) -> ModelVersion:
    """A pipeline's API token reports "I registered this version": its service account becomes the registrant.

    Only a service account's token may report (a person's session is not a pipeline), naming
    the version's MLflow run id (it must be the one the registry mirror holds). The caller
    must be able to see the model (the API answers 404 otherwise). First report wins; a
    different account reporting later is refused 409 (``conflict``).
    """
    if not isinstance(token_id, int) or isinstance(token_id, bool):
        raise NotPermitted("only a pipeline's API token may report that it registered a version")
    if not is_service_account(actor) or not actor.is_active:
        raise NotPermitted("only a service account's API token may report that it registered a version")
    run_id = (run_id or "").strip() if isinstance(run_id, str) else ""
    if not run_id:
        raise GovernanceError("run_id is required: the MLflow run the version was registered from", code="required")
    if run_id != version.run_id:
        raise GovernanceError(f"run_id does not match the MLflow run of {version.ref}", code="run_mismatch")
    return model_version_registrant_link(version=version, account=actor, token_id=token_id, actor=Actor.user(actor))
