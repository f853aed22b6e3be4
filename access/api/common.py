"""Shared pieces of the access-governance API: principal/resource references, labels, paging.

A principal is written ``user:<username>``, ``service:<name>`` or ``group:<name>``; a
resource ``dataset:<name>``, ``registered_model:<name>`` or ``environment:<name>``.
A reference that names nothing the caller may see is a 400 on the field that holds it,
worded exactly like one that names nothing at all, so names cannot be probed. A
principal is resolved only after the caller was found allowed to act on the resource
(``resolve_principal`` with ``visible``), and the access check answers an unknown or
invisible principal as "not allowed" (``find_visible_principal``). In a
list filter it is not an error at all: ``principal_filter`` and ``resource_filter``
match by name inside the caller's visible rows, so an unknown, an invisible and a
visible-but-unused name all answer the same empty page (only the syntax is a 400).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import Group, User
from django.db.models import Q, QuerySet
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from access.models import ServiceAccount
from access.principals import account_ids
from access.resources import Resource
from access.roles import AUDITOR, DATA_STEWARD, INFOSEC, role_names
from access.selectors import grants_visible_to, resource_queryset
from web.api.pagination import StandardPagination

PRINCIPAL_KINDS = ("user", "service", "group")
RESOURCE_KINDS = ("dataset", "registered_model", "environment")
REF_MAX = 250

PRINCIPAL_HELP = "user:<username>, service:<service account name> or group:<group name>"
RESOURCE_HELP = "dataset:<name>, registered_model:<name> or environment:<name>"


def split_ref(value: str, kinds: tuple[str, ...], what: str) -> tuple[str, str]:
    kind, sep, name = value.partition(":")
    if not sep or kind not in kinds or not name.strip():
        raise serializers.ValidationError(f"a {what} is written " + " | ".join(f"{k}:<name>" for k in kinds))
    return kind, name.strip()


class PrincipalField(serializers.CharField):
    """``kind:name``, checked for syntax only (resolving needs the caller, done by ``resolve_principal``)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", REF_MAX)
        kwargs.setdefault("help_text", PRINCIPAL_HELP)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> tuple[str, str]:
        return split_ref(super().to_internal_value(data), PRINCIPAL_KINDS, "principal")


class ResourceField(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", REF_MAX)
        kwargs.setdefault("help_text", RESOURCE_HELP)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> tuple[str, str]:
        return split_ref(super().to_internal_value(data), RESOURCE_KINDS, "resource")


def field_error(field: str, message: str) -> serializers.ValidationError:
    return serializers.ValidationError({field: [message]})


def _find_principal(ref: tuple[str, str]) -> User | Group | None:
    kind, name = ref
    if kind == "user":
        return User.objects.filter(username=name).first()
    if kind == "service":
        account = ServiceAccount.objects.select_related("user").filter(name=name).first()
        return account.user if account is not None else None
    return Group.objects.filter(name=name).first()


def principal_visible_to(principal: User | Group, viewer: User | None) -> bool:
    """Whether ``viewer`` may learn that ``principal`` exists and ask about it.

    A token (``viewer`` None, scope ``access:check``) and InfoSec, auditors and data
    stewards see every principal; anyone else sees themselves and their service accounts
    (``access.principals.account_ids``), the groups they belong to, and the principals of
    the grants they may see (``grants_visible_to``): a user who holds one (or whose group
    does), a group that holds one.
    """
    if viewer is None:
        return True
    if not viewer.is_active:
        return False
    if role_names(viewer) & {INFOSEC, AUDITOR, DATA_STEWARD}:
        return True
    visible = grants_visible_to(viewer)
    if isinstance(principal, Group):
        return viewer.groups.filter(pk=principal.pk).exists() or visible.filter(group=principal).exists()
    if principal.pk in account_ids(viewer):
        return True
    return visible.filter(Q(user=principal) | Q(group__in=principal.groups.all())).exists()


def principal_grantable_by(principal: User | Group, granter: User) -> bool:
    """Whether ``granter`` (who may grant on the resource already: InfoSec or its owner) may name ``principal``.

    InfoSec names any principal (the service then says what is wrong with it); an owner
    names active accounts, enabled service accounts and groups. A closed account or a
    disabled service account is, for an owner, a name that does not exist.
    """
    if INFOSEC in role_names(granter):
        return True
    if isinstance(principal, Group):
        return True
    if not principal.is_active:
        return False
    return not ServiceAccount.objects.filter(user=principal, disabled_at__isnull=False).exists()


def resolve_principal(
    ref: tuple[str, str], *, field: str = "principal", visible: Callable[[User | Group], bool] | None = None,
) -> User | Group:
    """The user, service account's user or group a reference names; a 400 on ``field`` when none does
    or when ``visible`` says the caller may not see it, worded the same for both (nothing to probe)."""
    kind, name = ref
    found = _find_principal(ref)
    if found is None or (visible is not None and not visible(found)):
        raise field_error(field, f"no {kind} named {name!r} that you may name here")
    return found


def find_visible_principal(ref: tuple[str, str], *, viewer: User | None) -> User | Group | None:
    """The principal ``ref`` names if ``viewer`` may see it (``principal_visible_to``), else None: the
    caller answers an unknown and an invisible principal alike."""
    found = _find_principal(ref)
    return found if found is not None and principal_visible_to(found, viewer) else None


def principal_filter(ref: tuple[str, str], prefix: str = "") -> Q:
    """Rows whose principal (``<prefix>user``/``<prefix>group``) is the one ``ref`` names, by name, in the
    same query as the rows: never an error, so the answer cannot tell a missing name from an unused one."""
    kind, name = ref
    if kind == "user":
        return Q(**{f"{prefix}user__username": name})
    if kind == "service":
        return Q(**{f"{prefix}user__service_account__name": name})
    return Q(**{f"{prefix}group__name": name})


def resource_filter(ref: tuple[str, str]) -> Q:
    """Rows on the resource ``ref`` names (``resource_type``/``resource_id``), resolved in a subquery of the
    same statement: an unknown or invisible name matches nothing instead of being an error (see above)."""
    kind, name = ref
    return Q(resource_type=kind, resource_id__in=resource_queryset(kind, None).filter(name=name).values("pk"))


def resolve_resource(ref: tuple[str, str], *, viewer: User | None, field: str = "resource") -> Resource:
    kind, name = ref
    found = resource_queryset(kind, viewer).filter(name=name).first()
    if found is None:
        raise field_error(field, f"no {kind.replace('_', ' ')} named {name!r} that you may see")
    return found


def principal_ref(user: User | None, group: Group | None) -> str:
    """``user:<username>``, ``service:<name>`` or ``group:<name>``. Load ``user__service_account`` with the
    rows (select_related) or this costs a query per user."""
    if group is not None:
        return f"group:{group.name}"
    assert user is not None
    try:
        account = user.service_account
    except ServiceAccount.DoesNotExist:
        return f"user:{user.username}"
    return f"service:{account.name}"


def paginate(request: Request, view: Any, rows: QuerySet[Any], shape: Any) -> Response:
    """Page ``rows`` and shape the page with ``shape(page) -> list``."""
    paginator = StandardPagination()
    page = paginator.paginate_queryset(rows, request, view=view)
    return paginator.get_paginated_response(shape(list(page or [])))
