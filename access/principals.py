"""One person, whatever account they act through.

A service account is a machine principal owned by a person. For every "not
yourself" rule (granting, approving access, certifying in a review, approving a
promotion, reviewing a break-glass release) the service accounts a person owns
count as that person: otherwise a single person could create ``alice-bot``,
grant it what they may not grant themselves, and certify that grant.

A service account's owner may itself be a service account's user (an owner who
was given a role): the chain is followed to the person at its end, so
``alice-bot-bot`` is alice too.
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Q

from access.models import ServiceAccount

# Ownership chains longer than this are not followed (and cannot be built in practice): a
# cycle in bad data must not loop forever, and the last account reached is taken as the person.
_MAX_HOPS = 8


def person_id(user: Any) -> int | None:
    """The id of the person behind ``user``: the owner of a service account's user, else the user itself.

    Reads ``user.service_account`` (one query per hop unless ``select_related("service_account")``
    loaded it); None for an anonymous or unsaved user.
    """
    if user is None or getattr(user, "pk", None) is None:
        return None
    try:
        account = user.service_account
    except ObjectDoesNotExist:  # no service account: a person's own account
        return int(user.pk)
    current = int(account.owner_id)
    seen = {int(user.pk)}
    for _ in range(_MAX_HOPS):
        if current in seen:
            break
        seen.add(current)
        owner = ServiceAccount.objects.filter(user_id=current).values_list("owner_id", flat=True).first()
        if owner is None:
            break
        current = int(owner)
    return current


def same_person(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` (users, service-account users, or user ids) are the same person."""
    def resolve(x: Any) -> int | None:
        if isinstance(x, int) and not isinstance(x, bool):
            x = User.objects.select_related("service_account").filter(pk=x).first()
        return person_id(x)

    pa, pb = resolve(a), resolve(b)
    return pa is not None and pa == pb


def account_ids(user: Any) -> set[int]:
    """Every user id the person behind ``user`` acts through: their own account and the users of
    the service accounts they own (transitively). Membership answers ``same_person``:
    ``other_id in account_ids(user)``; for queries, ``exclude(requested_by_id__in=...)``.

    One query for a person without service accounts, one more per level of ownership. Not cached:
    a service account created meanwhile must count at once. Empty for an anonymous or unsaved user.
    """
    if user is None or getattr(user, "pk", None) is None:
        return set()
    pk = int(user.pk)
    rows = list(ServiceAccount.objects.filter(Q(user_id=pk) | Q(owner_id=pk)).values_list("user_id", "owner_id"))
    if any(account_user == pk for account_user, _ in rows):  # a service account's user: start from its person
        root = person_id(user)
        assert root is not None
        ids, frontier = {root}, {root}
    else:
        owned = {account_user for account_user, owner in rows if owner == pk}
        ids, frontier = {pk} | owned, owned
    for _ in range(_MAX_HOPS):
        if not frontier:
            break
        found = set(ServiceAccount.objects.filter(owner_id__in=frontier).values_list("user_id", flat=True)) - ids
        ids |= found
        frontier = found
    return ids


def person_ids(user_ids: Any) -> dict[int, int]:
    """``person_id`` of many user ids, in one query per ownership hop: ``{user id: person id}``.

    An id that is no service account's user maps to itself.
    """
    ids = {int(i) for i in user_ids if i is not None}
    out = {i: i for i in ids}
    pending = set(ids)
    for _ in range(_MAX_HOPS):
        owners = dict(ServiceAccount.objects.filter(user_id__in={out[i] for i in pending})
                      .values_list("user_id", "owner_id"))
        moved = {i for i in pending if out[i] in owners and owners[out[i]] != out[i]}
        if not moved:
            break
        for i in moved:
            out[i] = int(owners[out[i]])
        pending = moved
    return out
