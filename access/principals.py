"""One person, whatever account they act through.

A service account is a machine principal owned by a person. For every "not
yourself" rule (granting, approving access, certifying in a review, approving a
promotion, reviewing a break-glass release) the service accounts a person owns
count as that person: otherwise a single person could create ``alice-bot``,
grant it what they may not grant themselves, and certify that grant.
"""
from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist


def person_id(user: Any) -> int | None:
    """The id of the person behind ``user``: the owner of a service account's user, else the user itself.

    Reads ``user.service_account`` (one query unless ``select_related("service_account")``
    loaded it); None for an anonymous or unsaved user.
    """
    if user is None or getattr(user, "pk", None) is None:
        return None
    try:
        account = user.service_account
    except ObjectDoesNotExist:  # no service account: a person's own account
        return int(user.pk)
    return int(account.owner_id)


def same_person(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` (users, service-account users, or user ids) are the same person."""
    from django.contrib.auth.models import User

    def resolve(x: Any) -> int | None:
        if isinstance(x, int):
            x = User.objects.select_related("service_account").filter(pk=x).first()
        return person_id(x)

    pa, pb = resolve(a), resolve(b)
    return pa is not None and pa == pb
