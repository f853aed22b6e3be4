"""Services for roles (Django groups). Each writes its ledger entry in its own transaction."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, Group, User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from access.roles import ROLES
from audit.ledger import Actor, Subject, record


class ServiceError(ValueError):
    """A request that cannot be carried out as asked; the message says why."""


def _role(role: str) -> Group:
    if role not in ROLES:
        raise ServiceError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    return Group.objects.get(name=role)


def _lock_user(user: AbstractBaseUser) -> None:
    # Serialise role changes of one user, so two concurrent adds record one entry.
    type(user)._default_manager.select_for_update().filter(pk=user.pk).exists()


@transaction.atomic
def user_role_add(*, actor: Actor, user: AbstractBaseUser, role: str, reason: str = "") -> bool:
    """Give ``user`` the role. Returns False (and records nothing) if they already have it."""
    group = _role(role)
    _lock_user(user)
    if user.groups.filter(pk=group.pk).exists():  # type: ignore[attr-defined]
        return False
    user.groups.add(group)  # type: ignore[attr-defined]
    payload = {"role": role, **({"reason": reason} if reason else {})}
    record(event_type="auth.role_added", actor=actor, subject=Subject("user", str(user.pk)), payload=payload)
    return True


@transaction.atomic
def user_role_remove(*, actor: Actor, user: AbstractBaseUser, role: str, reason: str = "") -> bool:
    """Take the role from ``user``. Returns False (and records nothing) if they did not have it."""
    group = _role(role)
    _lock_user(user)
    if not user.groups.filter(pk=group.pk).exists():  # type: ignore[attr-defined]
        return False
    user.groups.remove(group)  # type: ignore[attr-defined]
    payload = {"role": role, **({"reason": reason} if reason else {})}
    record(event_type="auth.role_removed", actor=actor, subject=Subject("user", str(user.pk)), payload=payload)
    return True


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
