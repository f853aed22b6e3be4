"""Service accounts: machine principals backed by a Django user that cannot sign in."""
from __future__ import annotations

from django.contrib.auth.models import User
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction

from access import roles
from access.errors import AccessError, NotPermitted
from access.models import (
    ServiceAccount,
)
from access.roles import role_names
from access.services.checks import principal_label
from access.services.inputs import require_active
from audit.ledger import Actor, Subject, record

# Who may create service accounts.
SERVICE_ACCOUNT_CREATORS = frozenset({roles.INFOSEC, roles.MODEL_OWNER})


def may_create_service_account(user: User) -> bool:
    return bool(role_names(user) & SERVICE_ACCOUNT_CREATORS)


@transaction.atomic
def service_account_create(*, actor: User, name: str, description: str = "") -> ServiceAccount:
    """A machine principal backed by a Django user ``svc-<name>`` that cannot sign in. InfoSec or model-owners."""
    require_active(actor)
    if not may_create_service_account(actor):
        raise NotPermitted("only InfoSec or a model-owner may create service accounts")
    name = (name or "").strip() if isinstance(name, str) else ""
    try:
        validate_slug(name)
    except Exception:
        raise AccessError("a service account name is letters, digits, '-' and '_'", code="invalid_name") from None
    if len(name) > 100:
        raise AccessError("a service account name is at most 100 characters", code="invalid_name")
    description = (description or "").strip()
    if len(description) > 300:
        raise AccessError("the description is longer than 300 characters", code="too_long")
    username = f"svc-{name}"
    if ServiceAccount.objects.filter(name=name).exists() or User.objects.filter(username=username).exists():
        raise AccessError(f"a service account or user named {name!r} already exists", code="duplicate")
    try:
        with transaction.atomic():
            backing = User(username=username, is_active=True)
            backing.set_unusable_password()
            backing.save()
            account = ServiceAccount.objects.create(name=name, user=backing, description=description, owner=actor)
    except IntegrityError:
        raise AccessError(f"a service account or user named {name!r} already exists", code="duplicate") from None
    record(
        event_type="access.service_account_created",
        actor=Actor.user(actor),
        subject=Subject("service_account", name),
        payload={"name": name, "owner": principal_label(actor),
                 **({"description": description} if description else {})},
    )
    return account
