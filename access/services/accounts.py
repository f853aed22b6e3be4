"""Closing a person's account, and when an account was closed (the start of its retention clock).

Retention of a person's personal data starts when their account is closed, never
while it is active (docs/retention.md). "Closed" is known from the ledger: an
inactive account with an ``auth.account_closed`` entry, closed at that entry's
time. A service account's user is closed when the service account was disabled
(``ServiceAccount.disabled_at``); it is not closed through this service.
"""
from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import User
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction

from access.errors import AccessError, InvalidState, NotPermitted
from access.lock_objects import users_lock
from access.principals import same_person
from access.roles import INFOSEC
from access.services.checks import principal_label
from audit.ledger import Actor, Subject, record
from audit.models import Entry, PendingEntry

CLOSED_EVENT = "auth.account_closed"
_REASON_MAX = 500


def _service_account_disabled_at(user: User) -> tuple[bool, datetime | None]:
    """(whether ``user`` is a service account's user, when that account was disabled)."""
    try:
        account = user.service_account
    except ObjectDoesNotExist:
        return False, None
    return True, account.disabled_at


def _recorded_closure(user_id: int) -> datetime | None:
    stamps = [
        model.objects.filter(event_type=CLOSED_EVENT, subject_type="user", subject_id=str(user_id))
        .order_by("-timestamp").values_list("timestamp", flat=True).first()
        for model in (Entry, PendingEntry)
    ]
    found = [datetime.fromisoformat(s) for s in stamps if s]
    return max(found, default=None)


def account_closed_at(user: User) -> datetime | None:
    """When ``user``'s account was closed, or None while it counts as open.

    An active person's account is open whatever the ledger says; an inactive one is
    closed at its latest ``auth.account_closed`` entry (None when none was recorded:
    deactivated without a recorded closure, so no retention clock runs). A service
    account's user is closed at the service account's ``disabled_at``.
    """
    is_service, disabled_at = _service_account_disabled_at(user)
    if is_service:
        return disabled_at
    if user.is_active:
        return None
    return _recorded_closure(user.pk)


def _check_reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise AccessError("a reason is required to close an account")
    reason = reason.strip()
    if len(reason) > _REASON_MAX or any(ord(c) < 0x20 and c not in "\n\t" for c in reason):
        raise AccessError(f"the reason must be at most {_REASON_MAX} characters without control characters")
    return reason


def _close(*, actor: Actor, account: User, reason: str, locked_pks: list[int]) -> User:
    # Rows locked in pk order (the account, and the acting person when one acts), so a
    # closure and a concurrent role change or closure of the actor serialise.
    rows = users_lock(locked_pks)
    locked = rows.get(account.pk)
    if locked is None:
        raise InvalidState("no such account")
    if _service_account_disabled_at(locked)[0]:
        raise InvalidState(f"{principal_label(locked)} is a service account's user: disable the service account")
    if not locked.is_active and _recorded_closure(locked.pk) is not None:
        raise InvalidState(f"the account {principal_label(locked)} is already closed")
    locked.is_active = False
    locked.save(update_fields=["is_active"])
    record(event_type=CLOSED_EVENT, actor=actor, subject=Subject("user", str(locked.pk)),
           payload={"account": principal_label(locked), "reason": reason})
    account.is_active = False
    return locked


@transaction.atomic
def user_account_close(*, actor: User, account: User, reason: str) -> User:
    """``user`` (active InfoSec) closes ``account``: it can no longer sign in, and the retention of its
    personal data starts now.

    Records ``auth.account_closed`` (the account as ``user:<id>`` and the reason; nothing
    personal) in the same transaction. Raises ``NotPermitted`` unless ``user`` is active
    InfoSec (read from the database, not a cached role) and ``account`` is not their own
    person (``access.principals.same_person``): a second InfoSec closes an InfoSec's account.
    Raises ``InvalidState`` for a service account's user (disable the service account
    instead) and for an account already closed; ``AccessError`` for a bad reason.
    An account deactivated without a recorded closure may be closed, which starts its clock.
    Nothing is written when it raises.
    """
    reason = _check_reason(reason)
    users_lock([actor.pk, account.pk])
    fresh = User.objects.filter(pk=actor.pk, is_active=True).first()
    if fresh is None or not fresh.groups.filter(name=INFOSEC).exists():
        raise NotPermitted("only InfoSec may close accounts")
    if same_person(actor, account):
        raise NotPermitted("nobody closes their own account; ask another InfoSec")
    return _close(actor=Actor.user(actor), account=account, reason=reason, locked_pks=[actor.pk, account.pk])


@transaction.atomic
def user_account_close_by_system(*, component: str, account: User, reason: str) -> User:
    """Close ``account`` for code acting for nobody (an offboarding feed, ``close_account`` without
    ``--actor``), recorded as ``system:<component>``; the same refusals as ``user_account_close``
    except the InfoSec check. Never call it on behalf of a person.
    """
    if not isinstance(component, str) or not component.strip():
        raise AccessError("a system component name is required")
    reason = _check_reason(reason)
    return _close(actor=Actor.system(component.strip()), account=account, reason=reason, locked_pks=[account.pk])
