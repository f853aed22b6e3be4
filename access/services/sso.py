"""Single sign-on: accounts linked to an OpenID provider, roles synchronised from its groups claim,
step-up, and accounts disabled after a long absence (docs/identity.md).

The OIDC backend (``access.oidc``) verifies the ID token and calls ``external_identity_sign_in`` with
what it proved: the issuer, the subject and the groups. The account is found by ``(issuer, subject)``
only (``access.models.ExternalIdentity``), never by email or username. New accounts are created
through ``user_register`` (actor ``system:oidc``); roles change through
``user_role_add_by_system`` / ``user_role_remove_by_system`` (component ``oidc``), so every change is an
``auth.role_added`` / ``auth.role_removed`` entry naming the provider in its reason.

Which roles the provider manages: exactly the roles that appear as values of ``OIDC_ROLE_MAP``. Any
other role (say ``break-glass`` given by hand by InfoSec) is left alone at sign-in. The rules of
``access.services.roles`` still apply (the sensitive roles are a person's, never a service account's).
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from access.errors import InvalidState, NotPermitted, ServiceError
from access.lock_objects import users_lock
from access.models import ExternalIdentity
from access.principals import same_person
from access.roles import INFOSEC
from access.services.accounts import account_closed_at
from access.services.roles import user_register, user_role_add_by_system, user_role_remove_by_system
from audit.ledger import Actor, Subject, record

COMPONENT = "oidc"
DISABLED_EVENT = "auth.account_disabled"
ENABLED_EVENT = "auth.account_enabled"
_USERNAME_BAD = re.compile(r"[^\w.@+-]")
_REASON_MAX = 500


class SignInRefused(NotPermitted):
    """The provider vouched for the person, but this product refuses the sign-in (the message says why).

    ``account`` is the refused account when one is known (a disabled one), for the failure signal.
    """

    code = "sign_in_refused"

    def __init__(self, message: str, *, account: User | None = None) -> None:
        super().__init__(message)
        self.account = account


@dataclass(frozen=True)
class SignIn:
    user: User
    created: bool
    roles_changed: bool


def sso_enabled() -> bool:
    """Single sign-on is on iff ``OIDC_RP_CLIENT_ID`` is set (read each time: tests override settings)."""
    return bool(getattr(settings, "OIDC_RP_CLIENT_ID", ""))


def oidc_actor() -> Actor:
    return Actor.system(COMPONENT)


def _username_candidates(*, issuer: str, subject: str, preferred: str) -> Iterable[str]:
    """The provider's preferred username when usable, then it with a stable suffix, then a pseudonym."""
    digest = hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()
    cleaned = _USERNAME_BAD.sub("", preferred or "")[:130]
    if cleaned and not cleaned.lower().startswith("erased-"):
        yield cleaned
        yield f"{cleaned}-{digest[:8]}"
    yield f"sso-{digest[:16]}"


def _register(*, issuer: str, subject: str, username: str, email: str, full_name: str) -> User:
    for candidate in _username_candidates(issuer=issuer, subject=subject, preferred=username):
        if User.objects.filter(username__iexact=candidate).exists():
            continue
        try:
            return user_register(actor=oidc_actor(), username=candidate, email=email, full_name=full_name)
        except ServiceError:
            # A bad email or name from the provider must not stop the sign-in: register without them.
            try:
                return user_register(actor=oidc_actor(), username=candidate)
            except ServiceError:
                continue
    raise SignInRefused("no account could be created for this sign-in; ask InfoSec")


def groups_roles(groups: Iterable[str]) -> set[str]:
    """The product roles the IdP groups map to (``OIDC_ROLE_MAP``)."""
    mapping: dict[str, str] = settings.OIDC_ROLE_MAP
    return {mapping[g] for g in groups if g in mapping}


def managed_roles() -> set[str]:
    """The roles the provider manages: the values of ``OIDC_ROLE_MAP`` (all other roles are left alone)."""
    return set(settings.OIDC_ROLE_MAP.values())


def _sync_roles(*, user: User, issuer: str, groups: Iterable[str]) -> bool:
    wanted = groups_roles(groups)
    managed = managed_roles()
    held = set(user.groups.filter(name__in=managed).values_list("name", flat=True))
    reason = f"{settings.OIDC_GROUPS_CLAIM} claim of {issuer}"
    changed = False
    for role in sorted(wanted - held):
        changed |= user_role_add_by_system(component=COMPONENT, target=user, role=role, reason=reason)
    for role in sorted(held - wanted):
        changed |= user_role_remove_by_system(component=COMPONENT, target=user, role=role, reason=reason)
    if changed and hasattr(user, "_access_role_names"):
        del user._access_role_names  # the cached roles of access.roles.role_names
    return changed


@transaction.atomic
def external_identity_sign_in(
    *, issuer: str, subject: str, groups: Iterable[str], username: str = "", email: str = "", full_name: str = "",
    expected_user_id: int | None = None, now: datetime | None = None,
) -> SignIn:
    """The account of the person the provider authenticated as ``(issuer, subject)``, its roles synchronised.

    Call only with claims from a verified ID token (``access.oidc``). Creates the account and its link on
    the first sign-in (``user_register``, actor ``system:oidc``; ``username``, ``email`` and ``full_name`` are
    the provider's profile, used only then). Refuses (``SignInRefused``, nothing written) a disabled
    account, and with ``expected_user_id`` (a step-up) any person but that account's. Then adds the
    mapped roles the claim carries and removes the provider-managed roles it no longer carries, and
    records the sign-in time as ``last_seen_at``.
    """
    if not issuer or not subject:
        raise SignInRefused("the provider's answer names nobody")
    now = now or timezone.now()
    groups = [g for g in groups if isinstance(g, str)]
    link = ExternalIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
    if expected_user_id is not None and (link is None or link.user_id != expected_user_id):
        raise SignInRefused("you confirmed your identity at the provider as a different person than the one "
                            "signed in here; nothing changed: sign in again as yourself")
    created = False
    if link is None:
        user = _register(issuer=issuer, subject=subject, username=username, email=email, full_name=full_name)
        try:
            with transaction.atomic():
                link = ExternalIdentity.objects.create(user=user, issuer=issuer, subject=subject, last_seen_at=now)
        except IntegrityError:  # the same person's first sign-in, twice at once
            raise SignInRefused("this sign-in raced another one of yours; sign in again") from None
        created = True
    users_lock([link.user_id])
    user = User.objects.get(pk=link.user_id)
    if not user.is_active:
        raise SignInRefused("this account is disabled (not used for a long time, or closed); "
                            "ask InfoSec to enable it", account=user)
    changed = _sync_roles(user=user, issuer=issuer, groups=groups)
    ExternalIdentity.objects.filter(pk=link.pk).update(last_seen_at=now)
    return SignIn(user=user, created=created, roles_changed=changed)


@transaction.atomic
def user_step_up_record(*, actor: User, amr: Iterable[str], acr: str, mfa: bool) -> None:
    """Record ``auth.step_up``: ``actor`` authenticated again at the provider (its ``amr``/``acr``, no PII)."""
    record(event_type="auth.step_up", actor=Actor.user(actor), subject=Subject("user", str(actor.pk)),
           payload={"amr": [str(v) for v in amr], "acr": str(acr or ""), "mfa": bool(mfa)})


@transaction.atomic
def user_account_disable_inactive(*, now: datetime | None = None, days: int | None = None) -> int:
    """Disable every active account linked to a provider whose last sign-in through it is older than
    ``days`` (``OIDC_INACTIVE_DAYS``; PCI DSS 8.2.6), each recorded as ``auth.account_disabled`` by
    ``system:oidc``. Idempotent: a disabled account is not disabled (nor recorded) again. Returns the count.

    Only accounts linked to a provider: local break-glass accounts are InfoSec's to close. An account with
    several links counts from its most recent sign-in.
    """
    now = now or timezone.now()
    days = int(days if days is not None else settings.OIDC_INACTIVE_DAYS)
    cutoff = now - timedelta(days=days)
    candidates = sorted(set(
        ExternalIdentity.objects.filter(user__is_active=True, last_seen_at__lt=cutoff).values_list("user_id",
                                                                                                  flat=True)
    ))
    if not candidates:
        return 0
    rows = users_lock(candidates)
    disabled = 0
    for pk in candidates:
        user = rows.get(pk)
        last_seen = max(ExternalIdentity.objects.filter(user_id=pk).values_list("last_seen_at", flat=True),
                        default=None)
        if user is None or not user.is_active or last_seen is None or last_seen >= cutoff:
            continue
        user.is_active = False
        user.save(update_fields=["is_active"])
        record(event_type=DISABLED_EVENT, actor=oidc_actor(), subject=Subject("user", str(pk)),
               payload={"account": f"user:{pk}", "reason": f"no sign-in through the identity provider for {days} "
                        "days", "last_seen_at": last_seen.isoformat(), "inactive_days": days})
        disabled += 1
    return disabled


def _clean_reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ServiceError("a reason is required to enable an account")
    reason = reason.strip()
    if len(reason) > _REASON_MAX or any(ord(c) < 0x20 and c not in "\n\t" for c in reason):
        raise ServiceError(f"the reason must be at most {_REASON_MAX} characters without control characters")
    return reason


@transaction.atomic
def user_account_enable(*, actor: User, target: User, reason: str, now: datetime | None = None) -> bool:
    """Active InfoSec enables a disabled account again (``auth.account_enabled``); returns False if it was active.

    Refuses (nothing written): anyone but active InfoSec, one's own person (``NotPermitted``), a missing
    reason (``ServiceError``) and a closed account (``InvalidState``: closure is final, its retention clock
    runs). The account's provider links count as seen now, so the inactivity job does not disable it again
    before its person had a chance to sign in.
    """
    reason = _clean_reason(reason)
    rows = users_lock(sorted({int(actor.pk), int(target.pk)}))
    fresh_actor = rows.get(actor.pk)
    if fresh_actor is None or not fresh_actor.is_active or not fresh_actor.groups.filter(name=INFOSEC).exists():
        raise NotPermitted("only InfoSec may enable an account")
    if same_person(actor, target):
        raise NotPermitted("nobody enables their own account; ask another InfoSec")
    account = rows.get(target.pk)
    if account is None:
        raise InvalidState("no such account")
    if account.is_active:
        return False
    if account_closed_at(account) is not None:
        raise InvalidState("this account was closed: closure is final (its retention clock runs); register anew")
    account.is_active = True
    account.save(update_fields=["is_active"])
    ExternalIdentity.objects.filter(user=account).update(last_seen_at=now or timezone.now())
    record(event_type=ENABLED_EVENT, actor=Actor.user(actor), subject=Subject("user", str(account.pk)),
           payload={"account": f"user:{account.pk}", "reason": reason})
    return True


LINKED_EVENT = "auth.identity_linked"


@transaction.atomic
def external_identity_link(*, component: str, user: User, issuer: str, subject: str) -> bool:
    """Link an existing account to the person ``(issuer, subject)`` at a provider, for code acting for nobody
    (``manage.py oidc_link``: moving local accounts to single sign-on, the demo's seeded people).

    Recorded as ``auth.identity_linked`` by ``system:<component>`` (the account and the issuer; the subject
    stays in the link table). Returns False when exactly this link exists. Refuses (``ServiceError``,
    nothing written): an inactive account, a service account's user, a subject already linked to
    another account, an account already linked to another subject of this issuer.
    """
    issuer, subject = (issuer or "").strip(), (subject or "").strip()
    if not issuer or not subject or len(issuer) > 255 or len(subject) > 255:
        raise ServiceError("an issuer and a subject (at most 255 characters each) are required")
    if not isinstance(component, str) or not component.strip():
        raise ServiceError("a system component name is required")
    account = users_lock([int(user.pk)]).get(user.pk)
    if account is None or not account.is_active:
        raise ServiceError("the account is inactive or gone: it is linked to nobody")
    if hasattr(account, "service_account"):
        raise ServiceError("a service account signs in with tokens, never through a provider")
    existing = ExternalIdentity.objects.filter(issuer=issuer, subject=subject).first()
    if existing is not None:
        if existing.user_id == account.pk:
            return False
        raise ServiceError("this subject of the provider is already linked to another account")
    if ExternalIdentity.objects.filter(issuer=issuer, user=account).exists():
        raise ServiceError("this account is already linked to another subject of this provider")
    ExternalIdentity.objects.create(user=account, issuer=issuer, subject=subject, last_seen_at=timezone.now())
    record(event_type=LINKED_EVENT, actor=Actor.system(component.strip()), subject=Subject("user", str(account.pk)),
           payload={"account": f"user:{account.pk}", "issuer": issuer})
    return True
