"""Services for roles (Django groups). Each writes its ledger entry in its own transaction.

Who may change roles is decided here, so the admin, commands and any later caller
inherit it: a person changes roles only as active InfoSec, never on themselves (nor
on a service account they own: ``access.principals.same_person``), and with a reason.
The ``infosec`` and ``break-glass`` roles are a person's: they are never given to a
service account's user. Code that acts for nobody (the demo seed, provisioning) uses
``user_role_add_by_system`` / ``user_role_remove_by_system``, recorded as a system actor.
"""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, Group, User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from access.errors import NotPermitted, ServiceError
from access.lock_objects import users_lock
from access.principals import same_person
from access.roles import BREAK_GLASS, INFOSEC, ROLES
from audit.ledger import Actor, Subject, record

# Roles that carry authority over everyone else's access: only people hold them, so a bot
# cannot be made into an InfoSec officer or a break-glass holder by whoever owns it.
SENSITIVE_ROLES = frozenset({INFOSEC, BREAK_GLASS})
_REASON_MAX = 2000


def _role(role: str) -> Group:
    if role not in ROLES:
        raise ServiceError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    return Group.objects.get(name=role)


def _lock_users(*users: AbstractBaseUser) -> None:
    # Serialise role changes of one user (two concurrent adds record one entry) and, when a
    # person acts, their own row too: a concurrent removal of the actor's InfoSec role is
    # then either seen by the check below or waits for this change. Locked in pk order.
    users_lock(int(u.pk) for u in users)


def _clean_reason(reason: object, *, required: bool) -> str:
    if reason is None:
        reason = ""
    if not isinstance(reason, str):
        raise ServiceError("the reason must be text")
    reason = reason.strip()
    if required and not reason:
        raise ServiceError("a reason is required to change a role")
    if len(reason) > _REASON_MAX or any(ord(c) < 0x20 and c not in "\n\t" for c in reason):
        raise ServiceError(f"the reason must be at most {_REASON_MAX} characters without control characters")
    return reason


def _is_service_account_user(target: AbstractBaseUser) -> bool:
    try:
        target.service_account  # type: ignore[attr-defined]  # noqa: B018
    except ObjectDoesNotExist:
        return False
    return True


def _authorise(*, user: User, target: AbstractBaseUser) -> None:
    """Refuse (``NotPermitted``) unless ``user`` is active InfoSec acting on someone else.

    Reads the actor's roles from the database (under the lock taken by the caller), not a
    cached ``role_names``: a role removed a moment ago counts at once.
    """
    fresh = User.objects.filter(pk=user.pk, is_active=True).first()
    if fresh is None or not fresh.groups.filter(name=INFOSEC).exists():
        raise NotPermitted("only InfoSec may change roles")
    if same_person(user, target):
        raise NotPermitted("nobody changes their own roles (nor their service accounts'); ask another InfoSec")


def _change(*, actor: Actor, target: AbstractBaseUser, role: str, add: bool, reason: str) -> bool:
    group = _role(role)
    if add and role in SENSITIVE_ROLES and _is_service_account_user(target):
        raise NotPermitted(f"the {role} role is a person's: it is never given to a service account")
    if add and not User.objects.filter(pk=target.pk, is_active=True).exists():
        raise ServiceError("the account is closed or inactive: it is given no role")
    members = target.groups  # type: ignore[attr-defined]
    if members.filter(pk=group.pk).exists() == add:
        return False
    if add:
        members.add(group)
    else:
        members.remove(group)
    payload = {"role": role, **({"reason": reason} if reason else {})}
    record(event_type="auth.role_added" if add else "auth.role_removed", actor=actor,
           subject=Subject("user", str(target.pk)), payload=payload)
    return True


@transaction.atomic
def user_role_add(*, actor: User, target: AbstractBaseUser, role: str, reason: str) -> bool:
    """``user`` (active InfoSec) gives ``target`` the role, with a reason recorded in ``auth.role_added``.

    Refuses with ``NotPermitted`` (nothing written) anyone but active InfoSec, a change on the
    actor's own person (their account or a service account they own), and ``infosec`` /
    ``break-glass`` for a service account's user; ``ServiceError`` for an unknown role, a missing
    or bad reason, or an inactive target. Returns False (and records nothing) if ``target``
    already has the role.
    """
    reason = _clean_reason(reason, required=True)
    _lock_users(actor, target)
    _authorise(user=actor, target=target)
    return _change(actor=Actor.user(actor), target=target, role=role, add=True, reason=reason)


@transaction.atomic
def user_role_remove(*, actor: User, target: AbstractBaseUser, role: str, reason: str) -> bool:
    """``user`` (active InfoSec) takes the role from ``target``; the same rules as ``user_role_add``.

    Returns False (and records nothing) if ``target`` did not have it.
    """
    reason = _clean_reason(reason, required=True)
    _lock_users(actor, target)
    _authorise(user=actor, target=target)
    return _change(actor=Actor.user(actor), target=target, role=role, add=False, reason=reason)


def _system_actor(component: str) -> Actor:
    if not isinstance(component, str) or not component.strip():
        raise ServiceError("a system component name is required")
    return Actor.system(component.strip())


@transaction.atomic
def user_role_add_by_system(*, component: str, target: AbstractBaseUser, role: str, reason: str = "") -> bool:
    """Give ``target`` the role for code acting for nobody (the demo seed, provisioning scripts).

    Recorded with actor ``system:<component>``; never call it on behalf of a person (use
    ``user_role_add``). The sensitive roles still go to people only.
    """
    actor = _system_actor(component)
    reason = _clean_reason(reason, required=False)
    _lock_users(target)
    return _change(actor=actor, target=target, role=role, add=True, reason=reason)


@transaction.atomic
def user_role_remove_by_system(*, component: str, target: AbstractBaseUser, role: str, reason: str = "") -> bool:
    """Take the role from ``target`` for code acting for nobody; see ``user_role_add_by_system``."""
    actor = _system_actor(component)
    reason = _clean_reason(reason, required=False)
    _lock_users(target)
    return _change(actor=actor, target=target, role=role, add=False, reason=reason)


_FULL_NAME_MAX = 300


@transaction.atomic
def user_register(
    *, actor: Actor, username: str, email: str = "", full_name: str = "", password: str | None = None
) -> User:
    """Create a person's account and record ``auth.user_registered``.

    Username, email and full name are personal data: the ledger entry holds only
    references to them, encrypted under the key of data subject ``user:<id>``
    (see docs/pii.md). Without a password the account cannot log in with one.
    Error messages never repeat the values.
    """
    if not isinstance(username, str) or not username.strip():
        raise ServiceError("a username is required")
    username = username.strip()
    field = User._meta.get_field("username")
    try:
        field.run_validators(username)
    except ValidationError:
        raise ServiceError(
            f"the username must be at most {field.max_length} letters, digits and @/./+/-/_ characters"
        ) from None
    if username.lower().startswith("erased-"):
        # Erasure renames accounts erased-<pk> (audit.pii.data_subject_erase): nobody may look like one.
        raise ServiceError("usernames starting with 'erased-' are reserved for erased accounts")
    email = (email or "").strip()
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise ServiceError("the email address is not valid") from None
    full_name = " ".join((full_name or "").split())
    if len(full_name) > _FULL_NAME_MAX:
        raise ServiceError(f"the full name is longer than {_FULL_NAME_MAX} characters")
    first_name, _, last_name = full_name.partition(" ")
    if len(first_name) > 150 or len(last_name) > 150:
        raise ServiceError("the first and last names must be at most 150 characters each")
    if User.objects.filter(username=username).exists():
        raise ServiceError("this username is already taken")
    user = User(username=username, email=email, first_name=first_name, last_name=last_name)
    if password is None:
        user.set_unusable_password()
    else:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise ServiceError("the password is not acceptable: " + " ".join(exc.messages)) from None
        user.set_password(password)
    try:
        with transaction.atomic():
            user.save(force_insert=True)
    except IntegrityError:  # registered concurrently
        raise ServiceError("this username is already taken") from None
    payload = {
        "username": username,
        **({"email": email} if email else {}),
        **({"full_name": full_name} if full_name else {}),
    }
    record(
        event_type="auth.user_registered",
        actor=actor,
        subject=Subject("user", str(user.pk)),
        payload=payload,
        data_subject=f"user:{user.pk}",
    )
    return user


FIRST_ADMIN_COMPONENT = "create_first_admin"


class FirstAdminRefused(ServiceError):
    """An InfoSec member or a superuser already exists: the first administrator is made once, on an empty install."""


def _administrators_exist() -> bool:
    return User.objects.filter(groups__name=INFOSEC).exists() or User.objects.filter(is_superuser=True).exists()


@transaction.atomic
def first_admin_create(*, username: str, email: str = "", full_name: str = "", password: str) -> User:
    """Create the first InfoSec account of an install, recorded as ``system:create_first_admin``.

    Refused (``FirstAdminRefused``, nothing written) once any account holds the ``infosec`` role or
    is a superuser, whether active or not: from then on InfoSec gives roles (``user_role_add``). Two
    concurrent calls are serialised by a row lock on the ``infosec`` group, so exactly one succeeds.
    Writes ``auth.user_registered`` (username, email and name only as references under the key of
    ``user:<id>``, docs/pii.md) and ``auth.role_added`` (role and reason; no personal data) in this
    transaction. A password is required (``validate_password``); it is never recorded.
    """
    if not isinstance(password, str) or not password:
        raise ServiceError("a password is required for the first administrator")
    Group.objects.select_for_update().get(name=INFOSEC)
    if _administrators_exist():
        raise FirstAdminRefused(
            "an InfoSec member or a superuser already exists: the first administrator is created only on an "
            "empty install; ask InfoSec to give the role instead"
        )
    actor = _system_actor(FIRST_ADMIN_COMPONENT)
    user = user_register(actor=actor, username=username, email=email, full_name=full_name, password=password)
    _change(actor=actor, target=user, role=INFOSEC, add=True,
            reason="first administrator of the install (manage.py create_first_admin)")
    return user
