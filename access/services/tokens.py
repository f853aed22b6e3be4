"""API tokens for service accounts: issue, revoke, authenticate.

A token reads ``mlg_<prefix>_<secret>``: the prefix (public, shown in lists and
logs) finds the row, the SHA-256 of the whole token must match, and the token
itself is returned once by ``api_token_create`` and never stored. Issuing and
revoking are ledger events; ``last_used_at`` is telemetry (written at most once a
minute per token, not audited).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from access import roles
from access.errors import AccessError, InvalidState, NotPermitted
from access.lock_objects import api_token_lock
from access.models import ApiToken, ServiceAccount
from audit.canonical import format_timestamp
from audit.ledger import Actor, Subject, record

# The scopes a token can carry; a stable vocabulary (names are part of the API).
SCOPES: dict[str, str] = {
    "ledger:read": "Read ledger entries, proofs, checkpoints and verifier keys.",
    "events:write": "Send runtime events (deployment lifecycle, monitoring alerts, incidents).",
    "models:read": "Read registered models, versions and lineage.",
    "promotions:read": "Read promotion requests, environments, policies; run admission checks.",
    "promotions:write": "Request, withdraw and report deployment progress of promotions.",
    "access:read": "Read datasets, classifications, grants, access requests and reviews.",
    "access:write": "Create access requests and act on grants within the account's rights.",
    "access:check": "Ask whether a principal may use a resource.",
    "exports:read": "Start and download audit exports (with the auditor or InfoSec role).",
    "attestations:write": "Upload CI attestations (DSSE envelopes, Sigstore bundles) for model versions.",
}
PREFIX = "mlg_"
MAX_DAYS = 365
DEFAULT_DAYS = 90
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    plaintext: str  # shown once; never stored


def _digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def _may_manage(user: User, account: ServiceAccount) -> bool:
    if not user.is_active:
        return False
    return account.owner_id == user.pk or user.groups.filter(name=roles.INFOSEC).exists()


def _check_scopes(scopes: object) -> list[str]:
    if not isinstance(scopes, list | tuple) or not scopes:
        raise AccessError("scopes must be a non-empty list", code="invalid_scopes")
    unknown = sorted({str(s) for s in scopes} - set(SCOPES))
    if unknown:
        raise AccessError(
            f"unknown scope(s): {', '.join(unknown)}; known: {', '.join(sorted(SCOPES))}", code="invalid_scopes"
        )
    return sorted({str(s) for s in scopes})


@transaction.atomic
def api_token_create(
    *,
    actor: User,
    service_account: ServiceAccount,
    name: str,
    scopes: list[str],
    expires_in_days: int = DEFAULT_DAYS,
    now: datetime | None = None,
) -> IssuedToken:
    """Issue a token to ``service_account`` (its owner or InfoSec). The plaintext is in the result only."""
    if not _may_manage(actor, service_account):
        raise NotPermitted("only the service account's owner or InfoSec may issue its tokens")
    if service_account.disabled_at is not None:
        raise InvalidState(f"service account {service_account.name!r} is disabled")
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > 100:
        raise AccessError("a token name is 1 to 100 characters", code="invalid_name")
    clean_scopes = _check_scopes(scopes)
    if isinstance(expires_in_days, bool) or not isinstance(expires_in_days, int) \
            or not 1 <= expires_in_days <= MAX_DAYS:
        raise AccessError(f"expires_in_days must be a whole number from 1 to {MAX_DAYS}", code="invalid_expiry")
    now = now or timezone.now()
    prefix = secrets.token_hex(6)
    plaintext = f"{PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        service_account=service_account,
        name=name,
        prefix=prefix,
        digest=_digest(plaintext),
        scopes=clean_scopes,
        created_by=actor,
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days),
    )
    record(
        event_type="access.api_token_created",
        actor=Actor.user(actor),
        subject=Subject("service_account", service_account.name),
        payload={
            "service_account": service_account.name,
            "token_id": token.pk,
            "name": name,
            "prefix": prefix,
            "scopes": clean_scopes,
            "expires_at": format_timestamp(token.expires_at),
        },
    )
    return IssuedToken(token=token, plaintext=plaintext)


@transaction.atomic
def api_token_revoke(*, actor: User, token: ApiToken, reason: str, now: datetime | None = None) -> ApiToken:
    token = api_token_lock(token)
    if not _may_manage(actor, token.service_account):
        raise NotPermitted("only the service account's owner or InfoSec may revoke its tokens")
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason or len(reason) > 500:
        raise AccessError("a reason (1 to 500 characters) is required to revoke a token", code="invalid_reason")
    if token.revoked_at is not None:
        raise InvalidState("the token is already revoked")
    token.revoked_at = now or timezone.now()
    token.revoked_by = actor
    token.revoke_reason = reason
    token.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
    record(
        event_type="access.api_token_revoked",
        actor=Actor.user(actor),
        subject=Subject("service_account", token.service_account.name),
        payload={"service_account": token.service_account.name, "token_id": token.pk, "prefix": token.prefix,
                 "reason": reason},
    )
    return token


def api_token_authenticate(plaintext: str, *, now: datetime | None = None) -> ApiToken | None:
    """The live token this plaintext is, or None (unknown, wrong, expired, revoked, account disabled)."""
    if not plaintext.startswith(PREFIX) or len(plaintext) > 200:
        return None
    prefix, _, _ = plaintext[len(PREFIX):].partition("_")
    token = (
        ApiToken.objects.select_related("service_account", "service_account__user")
        .filter(prefix=prefix)
        .first()
    )
    if token is None or not hmac.compare_digest(token.digest, _digest(plaintext)):
        return None
    now = now or timezone.now()
    account = token.service_account
    if token.revoked_at is not None or token.expires_at <= now or account.disabled_at is not None:
        return None
    if not account.user.is_active:
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
