"""Authentication events in the ledger, and the local password change (docs/identity.md "Authentication events").

Every function here writes one ledger entry in its own transaction (or none, as each says). They are called by
the receivers of Django's and django-axes' signals (``access.auth_events``, ``access.authn.store_on_login``),
by the console's password page, by ``manage.py changepassword`` and by the API's token authentication.

What never reaches a hashed body: a password (no function takes one to record), the username of an unknown
account (its entries' subject is ``login:<pseudonym>``, ``audit.pii.pseudonym``), and a client address: it is
the ``origin`` field, personal data of the account (a commitment in the body, the value encrypted under the
account's key, revealable by InfoSec and shredded with the account's other personal data), or, where there is
no account to hold it (a failed attempt against an unknown username), its keyed hash ``origin_hash``.
"""
from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from access.errors import AccessError, InvalidState, NotPermitted
from access.lock_objects import users_lock
from access.models import ApiToken, ApiTokenAddress
from audit.canonical import format_timestamp
from audit.context import Authentication
from audit.ledger import Actor, Recorded, Subject, record
from audit.pii import DataSubjectErased, pseudonym

LOGIN_SUCCEEDED = "auth.login_succeeded"
LOGIN_FAILED = "auth.login_failed"
LOCKED_OUT = "auth.locked_out"
LOGGED_OUT = "auth.logged_out"
PASSWORD_CHANGED = "auth.password_changed"  # noqa: S105 (an event type's name)
TOKEN_NEW_ADDRESS = "auth.token_first_use_from_address"  # noqa: S105 (an event type's name)

#: Failed and locked-out attempts are observed by the sign-in machinery, not done by anyone we know.
LOGIN_ACTOR = Actor.system("login")
_CHANNELS = ("console", "admin", "api", "other")
_USERNAME_MAX = 150  # Django's username length; longer input is nobody's and is cut before hashing


def login_pseudonym(username: str) -> str:
    """The keyed hash standing for a username nobody has: NFKC-normalised, trimmed and case-folded first, so
    that ``Alice`` and ``alice `` count as one target."""
    normalised = unicodedata.normalize("NFKC", username).strip().casefold()[:_USERNAME_MAX]
    return pseudonym("login-username", normalised)


def address_pseudonym(address: str) -> str:
    """The keyed hash of a client address, where no account can hold the address itself."""
    return pseudonym("client-address", address)


def _channel(value: str) -> str:
    return value if value in _CHANNELS else "other"


def _record_with_origin(*, event_type: str, actor: Actor, subject: Subject, payload: dict[str, Any],
                        origin: str | None, data_subject: str | None = None) -> Recorded:
    """Record with ``origin`` as personal data; without it when the data subject was erased (their personal
    data can never be recorded again, but the event itself still must be)."""
    if origin is None:
        return record(event_type=event_type, actor=actor, subject=subject, payload=payload)
    try:
        with transaction.atomic():  # a savepoint: the refusal happens before anything is written, but be sure
            return record(event_type=event_type, actor=actor, subject=subject, payload={**payload, "origin": origin},
                          data_subject=data_subject)
    except DataSubjectErased:
        return record(event_type=event_type, actor=actor, subject=subject, payload=payload)


def _account(username: str | None) -> User | None:
    # The lookup Django's ModelBackend makes (exact username), so "known" means what the sign-in meant.
    if not username:
        return None
    return User.objects.filter(username=username).first()


def _attempt_subject(username: str, origin: str | None) -> tuple[Subject, dict[str, Any], str | None]:
    """(subject, extra payload, origin to record as personal data) of an attempt with ``username``."""
    account = _account(username)
    if account is not None:
        return Subject("user", str(account.pk)), {}, origin
    extra = {"origin_hash": address_pseudonym(origin)} if origin else {}
    return Subject("login", login_pseudonym(username)), extra, None


@transaction.atomic
def login_success_record(*, user: User, authentication: Authentication, origin: str | None) -> Recorded:
    """Record ``auth.login_succeeded`` for ``user``, who just signed in as ``authentication`` says, from
    ``origin`` (the client's address, or None when unknown). ``amr``/``acr`` are recorded for SSO sign-ins."""
    payload: dict[str, Any] = {"method": authentication.method}
    if authentication.method == "oidc":
        payload["amr"] = list(authentication.amr)
        if authentication.acr:
            payload["acr"] = authentication.acr
    return _record_with_origin(event_type=LOGIN_SUCCEEDED, actor=Actor.user(user),
                               subject=Subject("user", str(user.pk)), payload=payload, origin=origin)


@transaction.atomic
def login_failure_record(*, username: str, origin: str | None, channel: str) -> Recorded:
    """Record ``auth.login_failed``: a password sign-in as ``username`` failed.

    A known account is the subject (``user:<id>``) and ``origin`` its personal data; an unknown username is
    ``login:<pseudonym>`` and the address only its keyed hash. The caller does not call this for attempts
    refused during a lockout (one ``auth.locked_out`` stands for them)."""
    subject, extra, origin = _attempt_subject(username, origin)
    return _record_with_origin(event_type=LOGIN_FAILED, actor=LOGIN_ACTOR, subject=subject,
                               payload={"channel": _channel(channel), **extra}, origin=origin)


@transaction.atomic
def login_lockout_record(*, username: str | None, origin: str | None, channel: str, scope: list[str],
                         until: datetime) -> Recorded | None:
    """Record ``auth.locked_out``: ``scope`` (``username`` and/or ``address``) reached the failure limit
    with this attempt and is refused until ``until``. None (nothing written) without a username: only
    password attempts are throttled, and they always carry one."""
    if not username:
        return None
    subject, extra, origin = _attempt_subject(username, origin)
    payload = {"channel": _channel(channel), "scope": sorted(set(scope)), "until": format_timestamp(until), **extra}
    return _record_with_origin(event_type=LOCKED_OUT, actor=LOGIN_ACTOR, subject=subject, payload=payload,
                               origin=origin)


@transaction.atomic
def logout_record(*, user: User, origin: str | None) -> Recorded:
    """Record ``auth.logged_out``: ``user`` signed out from ``origin``."""
    return _record_with_origin(event_type=LOGGED_OUT, actor=Actor.user(user), subject=Subject("user", str(user.pk)),
                               payload={}, origin=origin)


def _set_password(*, actor: Actor, user: User, new_password: str, channel: str) -> User:
    locked = users_lock([user.pk]).get(user.pk)
    if locked is None:
        raise InvalidState("no such account")
    if not isinstance(new_password, str) or not new_password:
        raise AccessError("a new password is required")
    try:
        validate_password(new_password, user=locked)
    except ValidationError as exc:
        raise AccessError(" ".join(exc.messages), code="weak_password") from None
    locked.set_password(new_password)
    locked.save(update_fields=["password"])
    record(event_type=PASSWORD_CHANGED, actor=actor, subject=Subject("user", str(locked.pk)),
           payload={"channel": channel})
    user.password = locked.password
    return locked


@transaction.atomic
def user_password_change(*, actor: User, user: User, old_password: str, new_password: str) -> User:
    """``actor`` changes their own password from ``old_password`` to ``new_password``; records
    ``auth.password_changed`` (no password in it) in the same transaction.

    Raises ``NotPermitted`` for someone else's password (nobody sets another person's password here: an
    InfoSec who could would sign in as them), ``InvalidState`` for an account without a local password
    (signs in through SSO) and ``AccessError`` for a wrong current password or a new one the
    ``AUTH_PASSWORD_VALIDATORS`` refuse. Nothing is written when it raises. The caller rotates the session
    (``update_session_auth_hash``)."""
    if actor.pk != user.pk:
        raise NotPermitted("a password is changed by its owner only")
    locked = users_lock([user.pk]).get(user.pk)
    if locked is None or not locked.is_active:
        raise InvalidState("no such active account")
    if not locked.has_usable_password():
        raise InvalidState("this account signs in through single sign-on: its password is not kept here")
    if not isinstance(old_password, str) or not locked.check_password(old_password):
        raise AccessError("your current password is not correct", code="wrong_password")
    if new_password == old_password:
        raise AccessError("the new password must differ from the current one")
    return _set_password(actor=Actor.user(actor), user=user, new_password=new_password, channel="console")


@transaction.atomic
def user_password_set_by_system(*, component: str, user: User, new_password: str) -> User:
    """Set ``user``'s password for code acting for nobody (``manage.py changepassword`` on the host), recorded
    as ``system:<component>``; the same validation as ``user_password_change``. Never call it for a person."""
    if not isinstance(component, str) or not component.strip():
        raise AccessError("a system component name is required")
    return _set_password(actor=Actor.system(component.strip()), user=user, new_password=new_password,
                         channel="command")


@transaction.atomic
def api_token_address_record(*, token: ApiToken, origin: str) -> Recorded | None:
    """Record ``auth.token_first_use_from_address`` the first time ``token`` is used from ``origin``; None
    (nothing written) when it was seen from there before.

    The addresses seen are kept per token as keyed hashes (``ApiTokenAddress``), never in clear; a unique
    constraint on (token, hash) makes two concurrent first requests from one address write one entry (the
    second waits for the first's insert and finds it). The address in the entry is personal data of the
    service account's own user (``user:<id>``): revealable by InfoSec, shredded when that account is."""
    digest = address_pseudonym(origin)
    try:
        with transaction.atomic():
            ApiTokenAddress.objects.create(token=token, address_hash=digest)
    except IntegrityError:
        return None
    account = token.service_account
    return _record_with_origin(
        event_type=TOKEN_NEW_ADDRESS, actor=Actor.user(account.user), subject=Subject("service_account", account.name),
        payload={"service_account": account.name, "token_id": token.pk, "prefix": token.prefix}, origin=origin,
        data_subject=f"user:{account.user_id}",
    )
