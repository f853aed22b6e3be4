"""Identity links: InfoSec vouches that an MLflow identity is an account. A version's registrant is an
account only through such a link, or the report of a pipeline's API token. Ledger payloads name
accounts as ``user:<id>``; MLflow identities are personal.
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from audit.ledger import Actor, Subject, record
from governance import lock_objects
from governance.errors import GovernanceError, InvalidState
from governance.models import (
    IdentityLink,
    ModelVersion,
)
from governance.services.common import account_ref, require_infosec, require_text
from governance.services.model_versions import model_version_registrant_link

MAX_IDENTITY = 256


def _identity(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise GovernanceError("an MLflow identity (the registry's user id) is required", code="required")
    identity = str(value).strip()
    if len(identity) > MAX_IDENTITY or any(ord(c) < 0x20 or ord(c) == 0x7F for c in identity):
        raise GovernanceError(f"an MLflow identity has at most {MAX_IDENTITY} printable characters",
                              code="invalid_identity")
    return identity


@transaction.atomic
def identity_link_create(*, actor: User, mlflow_identity: str, account: User, reason: str) -> IdentityLink:
    """InfoSec vouches that MLflow identity ``mlflow_identity`` is ``account``.

    Records ``mlflow.identity_linked`` (the identity as personal data of ``account``), then links
    the mirrored versions created by that identity that have no registrant yet. The link is only
    as strong as the MLflow server's authentication of ``user_id``.
    """
    require_infosec(actor, "link MLflow identities to accounts")
    identity = _identity(mlflow_identity)
    reason = require_text(reason, "reason")
    if not isinstance(account, User) or account.pk is None or not account.is_active:
        raise GovernanceError("the linked account must be an active account", code="invalid_account")
    try:
        with transaction.atomic():
            link = IdentityLink.objects.create(mlflow_identity=identity, account=account, reason=reason,
                                               created_by=actor)
    except IntegrityError:
        raise InvalidState("this MLflow identity is already linked; remove that link first", code="duplicate") from None
    record(
        event_type="mlflow.identity_linked",
        actor=Actor.user(actor),
        subject=Subject("identity_link", str(link.pk)),
        payload={"link_id": link.pk, "mlflow_identity": identity, "account": account_ref(account),
                 "reason": reason},
        data_subject=account_ref(account),
    )
    for version in ModelVersion.objects.filter(creator=identity, registered_by__isnull=True).order_by("pk"):
        model_version_registrant_link(version=version, account=account, via_link=link, actor=Actor.user(actor))
    return link


@transaction.atomic
def identity_link_remove(*, actor: User, link: IdentityLink, reason: str) -> None:
    """InfoSec removes a link. Versions already linked keep their registrant (it was true when linked)."""
    require_infosec(actor, "remove MLflow identity links")
    reason = require_text(reason, "reason")
    locked = lock_objects.identity_links_lock().filter(pk=link.pk).first()
    if locked is None:
        raise InvalidState("this identity link no longer exists", code="gone")
    link = locked
    record(
        event_type="mlflow.identity_unlinked",
        actor=Actor.user(actor),
        subject=Subject("identity_link", str(link.pk)),
        payload={"link_id": link.pk, "account": account_ref(link.account_id), "reason": reason},
    )
    link.delete()
